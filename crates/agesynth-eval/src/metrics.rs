//! The metrics, as pure functions of features already computed (detections,
//! embeddings, estimated ages), so that each can be checked on a hand-made
//! case.

use agesynth_core::{AgeBins, AgeGroup, Error, Result};

use crate::linalg::{matmul, sqrtm_psd, symmetric_eigen};

/// Fraction of images in which the detector found at least one face; `None`
/// for no image.
pub fn detection_rate(found: &[bool]) -> Option<f64> {
    share(found)
}

/// Fraction of `flags` that are true; `None` when there is none.
pub fn share(flags: &[bool]) -> Option<f64> {
    mean(flags.iter().map(|&f| if f { 1.0 } else { 0.0 }))
}

/// Euclidean distance between two embeddings of the same length.
pub fn l2(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

/// Mean of the values; `None` when there are none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// Verification rate: the fraction of distances strictly below `threshold`
/// (dlib's rule: same person when the L2 distance is < 0.6).
pub fn verification_rate(distances: &[f64], threshold: f64) -> Option<f64> {
    mean(
        distances
            .iter()
            .map(|&d| if d < threshold { 1.0 } else { 0.0 }),
    )
}

/// Fraction of estimated ages whose group (in `bins`) is `target`, and the
/// mean absolute error of the estimates to the group's centre
/// ([`AgeBins::centre`]). `None` for no estimate.
pub fn age_accuracy_and_mae(
    bins: &AgeBins,
    estimates: &[f32],
    target: AgeGroup,
) -> Option<(f64, f64)> {
    if estimates.is_empty() {
        return None;
    }
    let centre = bins.centre(target) as f64;
    let hits = estimates
        .iter()
        .filter(|&&a| bins.group(a).map(|g| g == target).unwrap_or(false))
        .count();
    let mae = estimates
        .iter()
        .map(|&a| (a as f64 - centre).abs())
        .sum::<f64>()
        / estimates.len() as f64;
    Some((hits as f64 / estimates.len() as f64, mae))
}

/// Among the ages of a person's other photos, the index of the one nearest
/// `centre` (ties: the earlier index). `None` when there is none.
pub fn nearest_age(ages: &[f32], centre: f32) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &a) in ages.iter().enumerate() {
        let d = (a - centre).abs();
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

/// Mean and covariance (unbiased, divided by `n − 1`) of feature rows, in
/// f64. Errors for fewer than two rows or rows of different lengths.
pub fn mean_cov(rows: &[Vec<f32>]) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows.len();
    if n < 2 {
        return Err(Error::InvalidInput(format!(
            "a covariance needs at least 2 feature rows, got {n}"
        )));
    }
    let d = rows[0].len();
    if rows.iter().any(|r| r.len() != d) {
        return Err(Error::InvalidInput(
            "feature rows of different lengths".into(),
        ));
    }
    let mut mu = vec![0f64; d];
    for r in rows {
        for (m, &x) in mu.iter_mut().zip(r) {
            *m += x as f64;
        }
    }
    mu.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0f64; d * d];
    let mut c = vec![0f64; d];
    for r in rows {
        for (ci, (&x, m)) in c.iter_mut().zip(r.iter().zip(&mu)) {
            *ci = x as f64 - m;
        }
        for i in 0..d {
            let ci = c[i];
            for j in i..d {
                cov[i * d + j] += ci * c[j];
            }
        }
    }
    for i in 0..d {
        for j in i..d {
            let v = cov[i * d + j] / (n - 1) as f64;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    Ok((mu, cov))
}

/// Fréchet distance between two Gaussians `(μ₁, Σ₁)`, `(μ₂, Σ₂)` of
/// dimension `d`:
/// `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{½} Σ₂ Σ₁^{½})^{½}`,
/// the last trace from the eigenvalues of the symmetric matrix
/// `Σ₁^{½} Σ₂ Σ₁^{½}` (which has the same trace-of-root as `Σ₁ Σ₂`).
pub fn frechet_gaussians(mu1: &[f64], cov1: &[f64], mu2: &[f64], cov2: &[f64], d: usize) -> f64 {
    let dmu: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let tr = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    let s1 = sqrtm_psd(cov1, d);
    let m = matmul(&matmul(&s1, cov2, d), &s1, d);
    let (lambda, _) = symmetric_eigen(&m, d);
    let tr_root: f64 = lambda.iter().map(|l| l.max(0.0).sqrt()).sum();
    (dmu + tr(cov1) + tr(cov2) - 2.0 * tr_root).max(0.0)
}

/// The identity-feature Fréchet distance between two sets of embeddings
/// (rows): the Fréchet distance of the Gaussians fitted to each. This is
/// Fréchet distance on the face-recognition embedder's features, not
/// Inception FID, and is not comparable with published FID numbers. `None`
/// when either set has fewer than two rows.
pub fn frechet_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<Option<f64>> {
    if a.len() < 2 || b.len() < 2 {
        return Ok(None);
    }
    let d = a[0].len();
    if b[0].len() != d {
        return Err(Error::InvalidInput(format!(
            "Fréchet distance between {d}-D and {}-D features",
            b[0].len()
        )));
    }
    let (m1, c1) = mean_cov(a)?;
    let (m2, c2) = mean_cov(b)?;
    Ok(Some(frechet_gaussians(&m1, &c1, &m2, &c2, d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn detection_rate_counts_found_faces() {
        // 3 of 4 images hold a face: 0.75.
        assert_eq!(detection_rate(&[true, false, true, true]), Some(0.75));
        assert_eq!(detection_rate(&[]), None);
    }

    #[test]
    fn l2_and_verification() {
        // (0,0) to (3,4): 5. (1,1,1,1) to (1.5,1.5,1.5,1.5): sqrt(4 * 0.25) = 1.
        assert!(close(l2(&[0.0, 0.0], &[3.0, 4.0]), 5.0, 1e-12));
        assert!(close(l2(&[1.0; 4], &[1.5; 4]), 1.0, 1e-12));
        // Below 0.6 strictly: 0.3 and 0.59 pass, 0.6 and 0.9 fail -> 2/4.
        assert_eq!(verification_rate(&[0.3, 0.59, 0.6, 0.9], 0.6), Some(0.5));
    }

    #[test]
    fn age_accuracy_and_mae_on_paper_bins() {
        let bins = AgeBins::default();
        // Target 20-29 (centre 24.5). Estimates 22 (in), 29.9 (in), 31 (out):
        // accuracy 2/3; errors 2.5, 5.4, 6.5 -> MAE 14.4/3 = 4.8.
        let (acc, mae) = age_accuracy_and_mae(&bins, &[22.0, 29.9, 31.0], AgeGroup(2)).unwrap();
        assert!(close(acc, 2.0 / 3.0, 1e-9), "{acc}");
        assert!(close(mae, 4.8, 1e-5), "{mae}");
        // 50+ (centre 54.5): 70 is in the group, error 15.5.
        let (acc, mae) = age_accuracy_and_mae(&bins, &[70.0], AgeGroup(5)).unwrap();
        assert_eq!(acc, 1.0);
        assert!(close(mae, 15.5, 1e-9));
        assert!(age_accuracy_and_mae(&bins, &[], AgeGroup(0)).is_none());
    }

    #[test]
    fn nearest_age_picks_the_closest_photo() {
        // Centre 24.5: |18-24.5| = 6.5, |27-24.5| = 2.5, |22-24.5| = 2.5 -> the
        // first of the tie, index 1.
        assert_eq!(nearest_age(&[18.0, 27.0, 22.0], 24.5), Some(1));
        assert_eq!(nearest_age(&[], 4.5), None);
    }

    #[test]
    fn frechet_of_hand_made_sets() {
        // a = {(0,0), (2,0), (0,2), (2,2)}: mean (1,1), covariance
        // diag(4/3, 4/3) (squared deviations 1 each, summed 4, over n-1 = 3).
        // b = a shifted by (3,4): same covariance, mean (4,5).
        // Fréchet = |(3,4)|² + tr + tr - 2 tr((Σ Σ)^½) = 25 + 8/3 + 8/3 - 2·8/3 = 25.
        let a = vec![
            vec![0.0, 0.0],
            vec![2.0, 0.0],
            vec![0.0, 2.0],
            vec![2.0, 2.0],
        ];
        let b: Vec<Vec<f32>> = a.iter().map(|r| vec![r[0] + 3.0, r[1] + 4.0]).collect();
        let (mu, cov) = mean_cov(&a).unwrap();
        assert_eq!(mu, vec![1.0, 1.0]);
        assert!(close(cov[0], 4.0 / 3.0, 1e-12) && close(cov[1], 0.0, 1e-12));
        assert!(close(
            frechet_distance(&a, &b).unwrap().unwrap(),
            25.0,
            1e-9
        ));
        // Same set: 0.
        assert!(frechet_distance(&a, &a).unwrap().unwrap().abs() < 1e-9);
        // b scaled by 2 about its mean: covariance 4Σ = diag(16/3, 16/3), so
        // Fréchet = 0 + 8/3 + 32/3 - 2·tr(diag(√(4/3·16/3))) = 40/3 - 2·2·(8/3) = 8/3.
        let c: Vec<Vec<f32>> = a
            .iter()
            .map(|r| vec![2.0 * r[0] - 1.0, 2.0 * r[1] - 1.0])
            .collect();
        let f = frechet_distance(&a, &c).unwrap().unwrap();
        assert!(close(f, 8.0 / 3.0, 1e-9), "{f}");
        // Too few rows: no value.
        assert_eq!(frechet_distance(&a[..1], &a).unwrap(), None);
    }

    #[test]
    fn frechet_of_correlated_gaussians_matches_closed_form() {
        // Σ₁ = [[2,1],[1,2]], Σ₂ = I, equal means: tr(Σ₁^½) = √3 + 1 (eigenvalues
        // 3 and 1), so Fréchet = 4 + 2 - 2(√3 + 1) = 4 - 2√3.
        let f = frechet_gaussians(
            &[0.0, 0.0],
            &[2.0, 1.0, 1.0, 2.0],
            &[0.0, 0.0],
            &[1.0, 0.0, 0.0, 1.0],
            2,
        );
        assert!(close(f, 4.0 - 2.0 * 3f64.sqrt(), 1e-12), "{f}");
    }
}
