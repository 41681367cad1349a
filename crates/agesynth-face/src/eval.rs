//! Measuring the networks on a folder of UTKFace chips: identity
//! verification against mirror images and random pairs, age error per age
//! group, and gender accuracy. Used by the real-data tests and the
//! `face_eval` example.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use agesynth_core::{AgeBins, AgeEstimator, Error, FaceEmbedder, FaceImage, Result};
use candle_core::{Device, Tensor};

use crate::age_gender::FaceApiAgeGender;

/// The labelled chips of a UTKFace folder (`AGE_GENDER_RACE_DATE.jpg.chip.jpg`),
/// sorted by file name; files whose name has no age are skipped.
#[derive(Clone, Debug)]
pub struct Utk {
    files: Vec<(PathBuf, f32)>,
    /// Gender label of each file (0 male, 1 female), where the name has one.
    genders: Vec<Option<u8>>,
}

impl Utk {
    /// Lists the chips of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io("listing", dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.to_ascii_lowercase().ends_with(".jpg") {
                continue;
            }
            if let Some(age) = name.split('_').next().and_then(|a| a.parse::<f32>().ok()) {
                files.push((e.path(), age));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if files.is_empty() {
            return Err(Error::dataset(dir, "no UTKFace chips (AGE_*.jpg)"));
        }
        let genders = files
            .iter()
            .map(|(p, _)| {
                let name = p.file_name()?.to_str()?;
                match name.split('_').nth(1)? {
                    "0" => Some(0),
                    "1" => Some(1),
                    _ => None,
                }
            })
            .collect();
        Ok(Utk { files, genders })
    }

    /// Number of chips.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when there is no chip.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `n` distinct indices drawn with `seed` (deterministic).
    pub fn sample(&self, n: usize, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.files.len()).collect();
        let mut rng = SplitMix(seed);
        let n = n.min(idx.len());
        for i in 0..n {
            let j = i + (rng.next() % (idx.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(n);
        idx
    }

    /// Path and age label of chip `i`.
    pub fn get(&self, i: usize) -> (&Path, f32) {
        (&self.files[i].0, self.files[i].1)
    }

    /// Gender label of chip `i` (UTKFace's second name field: 0 male, 1
    /// female), `None` where the name has no valid one.
    pub fn gender(&self, i: usize) -> Option<u8> {
        self.genders[i]
    }

    /// Decodes chips `idx` as a `(N, 3, H, W)` batch in `[-1, 1]` (all chips
    /// must have the same size).
    pub fn load(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(idx.len());
        for &i in idx {
            let path = &self.files[i].0;
            let img = image::open(path)
                .map_err(|e| Error::image(path, e.to_string()))?
                .to_rgb8();
            let (w, h) = img.dimensions();
            let face = FaceImage::new(w, h, img.into_raw())?;
            parts.push(Tensor::from_vec(
                face.to_chw_f32(),
                (1, 3, h as usize, w as usize),
                device,
            )?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// A small deterministic generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Result of [`verification`].
#[derive(Clone, Debug)]
pub struct VerificationReport {
    /// Faces embedded (each with its mirror image).
    pub faces: usize,
    /// Mirror pairs closer than the threshold.
    pub mirror_accepted: usize,
    /// Mean L2 distance face–mirror.
    pub mirror_mean: f32,
    /// Random pairs of different images.
    pub random_pairs: usize,
    /// Random pairs at or beyond the threshold.
    pub random_rejected: usize,
    /// Mean L2 distance of random pairs.
    pub random_mean: f32,
    /// The threshold used.
    pub threshold: f32,
}

impl fmt::Display for VerificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verification at L2 < {}: mirror pairs accepted {}/{} ({:.1}%, mean distance {:.3}); \
             random pairs rejected {}/{} ({:.1}%, mean distance {:.3})",
            self.threshold,
            self.mirror_accepted,
            self.faces,
            100.0 * self.mirror_accepted as f64 / self.faces.max(1) as f64,
            self.mirror_mean,
            self.random_rejected,
            self.random_pairs,
            100.0 * self.random_rejected as f64 / self.random_pairs.max(1) as f64,
            self.random_mean,
        )
    }
}

/// Embeds `n` chips drawn with `seed` and their mirror images; counts the
/// mirror pairs the embedder accepts and, over `n` random pairs of
/// different chips among them, the pairs it rejects.
pub fn verification(
    emb: &dyn FaceEmbedder,
    utk: &Utk,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<VerificationReport> {
    let idx = utk.sample(n, seed);
    let mut faces = Vec::new();
    let mut mirrors = Vec::new();
    for chunk in idx.chunks(16) {
        let x = utk.load(chunk, device)?;
        let w = x.dim(3)?;
        let rev = Tensor::from_vec((0..w as u32).rev().collect::<Vec<_>>(), w, device)?;
        let xm = x.index_select(&rev, 3)?;
        faces.push(emb.embed(&x)?);
        mirrors.push(emb.embed(&xm)?);
    }
    let faces = Tensor::cat(&faces, 0)?;
    let mirrors = Tensor::cat(&mirrors, 0)?;
    let d_mirror = (&faces - &mirrors)?
        .sqr()?
        .sum(1)?
        .sqrt()?
        .to_vec1::<f32>()?;
    let t = emb.threshold();
    let e = faces.to_vec2::<f32>()?;
    let mut rng = SplitMix(seed ^ 0x5EED);
    let m = e.len();
    let mut d_random = Vec::new();
    while m > 1 && d_random.len() < n {
        let a = (rng.next() % m as u64) as usize;
        let b = (rng.next() % m as u64) as usize;
        if a == b {
            continue;
        }
        let d: f32 = e[a].iter().zip(&e[b]).map(|(x, y)| (x - y) * (x - y)).sum();
        d_random.push(d.sqrt());
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    Ok(VerificationReport {
        faces: d_mirror.len(),
        mirror_accepted: d_mirror.iter().filter(|&&d| d < t).count(),
        mirror_mean: mean(&d_mirror),
        random_pairs: d_random.len(),
        random_rejected: d_random.iter().filter(|&&d| d >= t).count(),
        random_mean: mean(&d_random),
        threshold: t,
    })
}

/// Result of [`age_mae`].
#[derive(Clone, Debug)]
pub struct AgeReport {
    /// Faces estimated.
    pub faces: usize,
    /// Mean absolute error in years.
    pub mae: f32,
    /// Mean estimate minus label.
    pub bias: f32,
    /// MAE of always answering the mean label (a baseline).
    pub mae_of_mean: f32,
    /// Per age group: label, count, MAE, bias.
    pub groups: Vec<(String, usize, f32, f32)>,
}

impl fmt::Display for AgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "age on {} chips: MAE {:.2} years, bias {:+.2} (MAE of answering the mean label: {:.2})",
            self.faces, self.mae, self.bias, self.mae_of_mean
        )?;
        for (label, n, mae, bias) in &self.groups {
            if *n == 0 {
                writeln!(f, "  {label:>6}:    0 chips")?;
            } else {
                writeln!(
                    f,
                    "  {label:>6}: {n:4} chips, MAE {mae:6.2}, bias {bias:+6.2}"
                )?;
            }
        }
        Ok(())
    }
}

/// Estimates the ages of `n` chips drawn with `seed` and reports the error
/// overall and per age group of [`AgeBins::default`].
pub fn age_mae(
    est: &dyn AgeEstimator,
    utk: &Utk,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<AgeReport> {
    let idx = utk.sample(n, seed);
    let mut pairs = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(32) {
        let ages = est.estimate(&utk.load(chunk, device)?)?.to_vec1::<f32>()?;
        for (&i, a) in chunk.iter().zip(ages) {
            pairs.push((utk.get(i).1, a));
        }
    }
    Ok(age_report(&pairs))
}

/// The age error of (label, estimate) pairs, overall and per age group of
/// [`AgeBins::default`].
fn age_report(pairs: &[(f32, f32)]) -> AgeReport {
    let bins = AgeBins::default();
    let count = pairs.len().max(1) as f32;
    let mae = pairs.iter().map(|(l, a)| (a - l).abs()).sum::<f32>() / count;
    let bias = pairs.iter().map(|(l, a)| a - l).sum::<f32>() / count;
    let mean_label = pairs.iter().map(|(l, _)| l).sum::<f32>() / count;
    let mae_of_mean = pairs
        .iter()
        .map(|(l, _)| (l - mean_label).abs())
        .sum::<f32>()
        / count;
    let mut groups = Vec::new();
    for g in 0..bins.len() {
        let sel: Vec<_> = pairs
            .iter()
            .filter(|(l, _)| bins.group(*l).map(|x| x.0 == g).unwrap_or(false))
            .collect();
        let k = sel.len().max(1) as f32;
        groups.push((
            bins.label(agesynth_core::AgeGroup(g)),
            sel.len(),
            sel.iter().map(|(l, a)| (a - l).abs()).sum::<f32>() / k,
            sel.iter().map(|(l, a)| a - l).sum::<f32>() / k,
        ));
    }
    AgeReport {
        faces: pairs.len(),
        mae,
        bias,
        mae_of_mean,
        groups,
    }
}

/// Result of [`age_gender`].
#[derive(Clone, Debug)]
pub struct AgeGenderReport {
    /// The age error.
    pub age: AgeReport,
    /// Chips with a gender label.
    pub gender_faces: usize,
    /// Labelled chips whose more probable gender is the label.
    pub gender_correct: usize,
    /// Per label (male, female): chips, correct.
    pub per_gender: [(usize, usize); 2],
}

impl AgeGenderReport {
    /// Fraction of labelled chips read as their labelled gender.
    pub fn gender_accuracy(&self) -> f64 {
        self.gender_correct as f64 / self.gender_faces.max(1) as f64
    }
}

impl fmt::Display for AgeGenderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.age)?;
        let [(m, mc), (w, wc)] = self.per_gender;
        writeln!(
            f,
            "gender on {} chips: {:.1}% correct (male {mc}/{m}, female {wc}/{w})",
            self.gender_faces,
            100.0 * self.gender_accuracy()
        )
    }
}

/// Ages and genders of `n` chips drawn with `seed` by face-api's age-gender
/// network: the age error as [`age_mae`] reports it (the same chips for the
/// same `n` and `seed`) and the share of chips whose more probable gender
/// is UTKFace's label.
pub fn age_gender(
    net: &FaceApiAgeGender,
    utk: &Utk,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<AgeGenderReport> {
    let idx = utk.sample(n, seed);
    let mut pairs = Vec::with_capacity(idx.len());
    let mut per_gender = [(0usize, 0usize); 2];
    for chunk in idx.chunks(32) {
        let out = net.predict(&utk.load(chunk, device)?)?;
        let ages = out.age.to_vec1::<f32>()?;
        let probs = out.gender.to_vec2::<f32>()?;
        for ((&i, a), p) in chunk.iter().zip(ages).zip(probs) {
            pairs.push((utk.get(i).1, a));
            if let Some(g) = utk.gender(i) {
                // face-api: male when P(male) > 0.5, else female.
                let said = u8::from(p[crate::age_gender::MALE] <= 0.5);
                per_gender[g as usize].0 += 1;
                per_gender[g as usize].1 += usize::from(said == g);
            }
        }
    }
    Ok(AgeGenderReport {
        age: age_report(&pairs),
        gender_faces: per_gender[0].0 + per_gender[1].0,
        gender_correct: per_gender[0].1 + per_gender[1].1,
        per_gender,
    })
}
