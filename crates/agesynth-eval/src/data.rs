//! Loading the faces of an evaluation: FG-NET aligned from its landmarks,
//! the held-out test split of UTKFace, and a reference pool of real faces
//! per age group.

use std::path::Path;

use agesynth_core::{AgeBins, FaceDataset, Result};
use agesynth_data::{FgNet, Split, SplitFractions, UtkFace};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::evaluate::{EvalData, EvalFace};

/// Seed of the train/validation/test split of UTKFace that the trainers use
/// (`Split::new(.., SplitFractions::default(), 0)`): its test part was never
/// trained on.
pub const UTKFACE_SPLIT_SEED: u64 = 0;

/// `k` of `items` drawn with `seed`, in ascending order (all of them when
/// `k` is `None` or not smaller).
pub fn seeded_subset(items: &[usize], k: Option<usize>, seed: u64) -> Vec<usize> {
    let mut v = items.to_vec();
    if let Some(k) = k.filter(|&k| k < v.len()) {
        v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        v.truncate(k);
    }
    v.sort_unstable();
    v
}

/// A photo that could not be used: its name and why.
type SkippedFace = (String, String);

/// Faces loaded with their dataset index, and those that failed.
type Loaded = (Vec<(usize, EvalFace)>, Vec<SkippedFace>);

fn file_key(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Why a JPEG file is unusable though the decoder would accept it: the
/// decoder fills a truncated JPEG with grey instead of failing.
fn truncated_jpeg(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.starts_with(&[0xff, 0xd8]) && !agesynth_pipeline::input::jpeg_is_complete(&bytes))
        .then(|| "truncated JPEG: the data ends before its end-of-image marker".to_string())
}

/// Loads faces `idx` of `ds` at `size` in parallel; faces that fail to load
/// are returned apart with the error.
fn load_faces(ds: &(dyn FaceDataset + Sync), idx: &[usize], size: u32) -> Loaded {
    let loaded: Vec<(usize, std::result::Result<EvalFace, SkippedFace>)> = idx
        .par_iter()
        .map(|&i| {
            let meta = ds.meta(i);
            let key = meta.map(|m| file_key(&m.path)).unwrap_or_default();
            if let Some(why) = meta.and_then(|m| truncated_jpeg(&m.path)) {
                return (i, Err((key, why)));
            }
            let r = match (meta, ds.load(i, size)) {
                (Some(m), Ok(image)) => Ok(EvalFace {
                    image,
                    age: m.age,
                    subject: m.subject,
                    key,
                }),
                (_, Err(e)) => Err((key, e.to_string())),
                (None, Ok(_)) => Err((key, format!("no labels for face {i}"))),
            };
            (i, r)
        })
        .collect();
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, r) in loaded {
        match r {
            Ok(f) => ok.push((i, f)),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

/// An FG-NET folder (`images/` + `points/`), each photo aligned from its
/// landmarks onto UTKFace's framing at `size`. The inputs are `limit`
/// photos drawn with `seed` (all when `None`); the gallery holds every photo
/// of the inputs' subjects.
pub fn load_fgnet(dir: &Path, size: u32, limit: Option<usize>, seed: u64) -> Result<EvalData> {
    let ds = FgNet::open(dir)?;
    let all: Vec<usize> = (0..ds.len()).collect();
    let chosen = seeded_subset(&all, limit, seed);
    let subjects: std::collections::BTreeSet<u32> = chosen
        .iter()
        .filter_map(|&i| ds.meta(i).and_then(|m| m.subject))
        .collect();
    let gallery_idx: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| {
            chosen.binary_search(&i).is_ok()
                || ds
                    .meta(i)
                    .and_then(|m| m.subject)
                    .is_some_and(|s| subjects.contains(&s))
        })
        .collect();
    let (faces, mut skipped) = load_faces(&ds, &gallery_idx, size);
    skipped.extend(
        ds.skipped()
            .iter()
            .map(|s| (s.path.display().to_string(), s.reason.clone())),
    );
    let mut gallery = Vec::with_capacity(faces.len());
    let mut inputs = Vec::new();
    for (i, f) in faces {
        if chosen.binary_search(&i).is_ok() {
            inputs.push(gallery.len());
        }
        gallery.push(f);
    }
    Ok(EvalData {
        name: format!("FG-NET ({})", dir.display()),
        gallery,
        inputs,
        skipped,
    })
}

/// The test split of a UTKFace folder (the split the trainers hold out),
/// `limit` faces of it drawn with `seed`, at `size`.
pub fn load_utkface_test(
    dir: &Path,
    size: u32,
    limit: Option<usize>,
    seed: u64,
) -> Result<EvalData> {
    let ds = UtkFace::open(dir)?;
    let test = Split::new(&ds, SplitFractions::default(), UTKFACE_SPLIT_SEED)?.test;
    let chosen = seeded_subset(&test, limit, seed);
    let (faces, skipped) = load_faces(&ds, &chosen, size);
    let gallery: Vec<EvalFace> = faces.into_iter().map(|(_, f)| f).collect();
    Ok(EvalData {
        name: format!("UTKFace test split ({})", dir.display()),
        inputs: (0..gallery.len()).collect(),
        gallery,
        skipped,
    })
}

/// A reference pool of real faces: from the test split of a UTKFace folder,
/// at most `per_group` faces of each group of `bins`, drawn with `seed`, at
/// `size`.
pub fn load_reference(
    dir: &Path,
    size: u32,
    bins: &AgeBins,
    per_group: usize,
    seed: u64,
) -> Result<Vec<EvalFace>> {
    let ds = UtkFace::open(dir)?;
    let test = Split::new(&ds, SplitFractions::default(), UTKFACE_SPLIT_SEED)?.test;
    let mut chosen = Vec::new();
    for g in bins.groups() {
        let of_group: Vec<usize> = test
            .iter()
            .copied()
            .filter(|&i| {
                ds.meta(i)
                    .is_some_and(|m| bins.group_of_years(m.age.max(0.0) as u32) == g)
            })
            .collect();
        chosen.extend(seeded_subset(
            &of_group,
            Some(per_group),
            seed ^ (g.0 as u64 + 1),
        ));
    }
    chosen.sort_unstable();
    let (faces, _) = load_faces(&ds, &chosen, size);
    Ok(faces.into_iter().map(|(_, f)| f).collect())
}

/// Splits `faces` into two disjoint halves with the same mix of groups:
/// within each group of `bins`, alternate faces go to either half.
pub fn split_alternate(faces: Vec<EvalFace>, bins: &AgeBins) -> (Vec<EvalFace>, Vec<EvalFace>) {
    let mut seen = vec![0usize; bins.len()];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for f in faces {
        let g = bins.group_of_years(f.age.max(0.0) as u32).0;
        if seen[g].is_multiple_of(2) {
            a.push(f);
        } else {
            b.push(f);
        }
        seen[g] += 1;
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_subsets_are_deterministic_and_sorted() {
        let items: Vec<usize> = (0..100).collect();
        let a = seeded_subset(&items, Some(10), 3);
        assert_eq!(a, seeded_subset(&items, Some(10), 3));
        assert_ne!(a, seeded_subset(&items, Some(10), 4));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(seeded_subset(&items, None, 3), items);
        assert_eq!(seeded_subset(&items, Some(500), 3), items);
    }

    #[test]
    fn alternate_split_halves_each_group() {
        let face = |age: f32, k: usize| EvalFace {
            image: agesynth_core::FaceImage::new(1, 1, vec![0, 0, 0]).unwrap(),
            age,
            subject: None,
            key: format!("{k}"),
        };
        // Ages 5, 7, 25, 9, 27: group 0-9 gets 5 (a), 7 (b), 9 (a); 20-29 gets
        // 25 (a), 27 (b).
        let faces: Vec<EvalFace> = [5.0, 7.0, 25.0, 9.0, 27.0]
            .iter()
            .enumerate()
            .map(|(k, &a)| face(a, k))
            .collect();
        let (a, b) = split_alternate(faces, &AgeBins::default());
        let keys = |v: &[EvalFace]| v.iter().map(|f| f.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&a), ["0", "2", "3"]);
        assert_eq!(keys(&b), ["1", "4"]);
    }
}
