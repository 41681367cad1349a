//! Small dense linear algebra in f64 for the Fréchet distance: a cyclic
//! Jacobi eigensolver for symmetric matrices and the square root of a
//! positive semi-definite matrix built on it.
//!
//! Matrices are row-major `Vec<f64>` of side `n`. The sizes here are the
//! embedder's (128), where a Jacobi sweep costs a few milliseconds.

/// Eigenvalues and eigenvectors of the symmetric `n`×`n` matrix `a`
/// (row-major; only its symmetric part is used). Returns the eigenvalues and
/// the eigenvectors as the columns of a row-major matrix `v`, so that
/// `a = v · diag(λ) · vᵀ`. Cyclic Jacobi rotations until the off-diagonal
/// mass is below `1e-22` of the total, or 100 sweeps.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: matrix is not {n}x{n}");
    let mut m: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            0.5 * (a[i * n + j] + a[j * n + i])
        })
        .collect();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off <= 1e-22 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // Rotation angle that zeroes m[p][q] (Golub & Van Loan 8.4).
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// The square root of the symmetric positive semi-definite matrix `a`
/// (`v · diag(√max(λ, 0)) · vᵀ`; negative eigenvalues from rounding are
/// clipped to zero).
pub fn sqrtm_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (lambda, v) = symmetric_eigen(a, n);
    let s: Vec<f64> = lambda.iter().map(|l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| v[i * n + k] * s[k] * v[j * n + k]).sum();
        }
    }
    out
}

/// `a · b` for row-major `n`×`n` matrices.
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..n {
                out[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_2x2() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3 (vectors (1,-1), (1,1)).
        let (mut l, v) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        // Reconstruct: v diag(l) vᵀ = a.
        let rec: Vec<f64> = (0..4)
            .map(|k| {
                let (i, j) = (k / 2, k % 2);
                (0..2).map(|m| v[i * 2 + m] * l[m] * v[j * 2 + m]).sum()
            })
            .collect();
        for (r, a) in rec.iter().zip([2.0, 1.0, 1.0, 2.0]) {
            assert!((r - a).abs() < 1e-12, "{rec:?}");
        }
        l.sort_by(f64::total_cmp);
        assert!(
            (l[0] - 1.0).abs() < 1e-12 && (l[1] - 3.0).abs() < 1e-12,
            "{l:?}"
        );
    }

    #[test]
    fn sqrtm_squares_back() {
        // A random SPD 6x6: b bᵀ + I.
        let n = 6;
        let b: Vec<f64> = (0..n * n)
            .map(|k| ((k * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let s = sqrtm_psd(&a, n);
        let ss = matmul(&s, &s, n);
        for (x, y) in ss.iter().zip(&a) {
            assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        }
    }
}
