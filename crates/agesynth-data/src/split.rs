//! Deterministic train/validation/test splits.
//!
//! A split is a function of the dataset's order and a seed only. When every
//! face of a dataset names its subject (FG-NET), whole subjects go to one
//! side, never single photos, so that no person is both trained and tested
//! on.

use std::collections::BTreeMap;

use agesynth_core::{Error, FaceDataset, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Fractions of the faces (approximately, when splitting by subject) that go
/// to each side; they must be non-negative and sum to 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Training fraction.
    pub train: f64,
    /// Validation fraction.
    pub val: f64,
    /// Test fraction.
    pub test: f64,
}

impl Default for SplitFractions {
    /// 80 % train, 10 % validation, 10 % test.
    fn default() -> Self {
        SplitFractions {
            train: 0.8,
            val: 0.1,
            test: 0.1,
        }
    }
}

impl SplitFractions {
    fn check(&self) -> Result<()> {
        let all = [self.train, self.val, self.test];
        if all.iter().any(|f| !f.is_finite() || *f < 0.0)
            || (all.iter().sum::<f64>() - 1.0).abs() > 1e-6
        {
            return Err(Error::Config(format!(
                "split fractions must be >= 0 and sum to 1, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// Indices of a dataset's faces on each side of a split, each ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training faces.
    pub train: Vec<usize>,
    /// Validation faces.
    pub val: Vec<usize>,
    /// Test faces.
    pub test: Vec<usize>,
}

impl Split {
    /// Splits `dataset` by `fractions`, shuffled by `seed`. By subject when
    /// every face has one, else by face.
    pub fn new(dataset: &dyn FaceDataset, fractions: SplitFractions, seed: u64) -> Result<Split> {
        fractions.check()?;
        let n = dataset.len();
        let metas = (0..n)
            .map(|i| dataset.meta(i))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::InvalidInput("dataset has fewer metas than faces".into()))?;
        // Groups in a canonical order: by subject, or one per face.
        let groups: Vec<Vec<usize>> = if n > 0 && metas.iter().all(|m| m.subject.is_some()) {
            let mut by: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (i, m) in metas.iter().enumerate() {
                by.entry(m.subject.unwrap_or_default()).or_default().push(i);
            }
            by.into_values().collect()
        } else {
            (0..n).map(|i| vec![i]).collect()
        };
        Ok(Self::from_groups(groups, n, fractions, seed))
    }

    /// Splits groups of indices (each group kept whole) totalling `n` faces.
    pub fn from_groups(
        mut groups: Vec<Vec<usize>>,
        n: usize,
        fractions: SplitFractions,
        seed: u64,
    ) -> Split {
        groups.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let target = |f: f64| {
            let t = (f * n as f64).round() as usize;
            // A side asked for gets at least one group when there are enough.
            if f > 0.0 && groups.len() >= 3 {
                t.max(1)
            } else {
                t
            }
        };
        let (want_val, want_test) = (target(fractions.val), target(fractions.test));
        let mut split = Split::default();
        for g in groups {
            let side = if split.val.len() < want_val {
                &mut split.val
            } else if split.test.len() < want_test {
                &mut split.test
            } else {
                &mut split.train
            };
            side.extend(g);
        }
        split.train.sort_unstable();
        split.val.sort_unstable();
        split.test.sort_unstable();
        split
    }

    /// Total number of faces.
    pub fn len(&self) -> usize {
        self.train.len() + self.val.len() + self.test.len()
    }

    /// True when no face is in the split.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_splits_are_deterministic_partitions() {
        let groups = |n: usize| (0..n).map(|i| vec![i]).collect::<Vec<_>>();
        let f = SplitFractions::default();
        let a = Split::from_groups(groups(1000), 1000, f, 7);
        assert_eq!(a, Split::from_groups(groups(1000), 1000, f, 7));
        assert_ne!(a, Split::from_groups(groups(1000), 1000, f, 8));
        assert_eq!((a.train.len(), a.val.len(), a.test.len()), (800, 100, 100));
        let mut all: Vec<usize> = [a.train, a.val, a.test].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(SplitFractions {
            train: 0.5,
            val: 0.1,
            test: 0.1
        }
        .check()
        .is_err());
    }

    #[test]
    fn grouped_splits_keep_groups_whole() {
        // 10 subjects of 3-17 photos each.
        let mut groups = Vec::new();
        let mut next = 0;
        for s in 0..10 {
            let k = 3 + (s * 7) % 15;
            groups.push((next..next + k).collect::<Vec<_>>());
            next += k;
        }
        let split = Split::from_groups(groups.clone(), next, SplitFractions::default(), 1);
        for g in &groups {
            let sides = [&split.train, &split.val, &split.test]
                .iter()
                .filter(|side| g.iter().any(|i| side.contains(i)))
                .count();
            assert_eq!(sides, 1, "group {g:?} split across sides");
        }
        assert!(!split.val.is_empty() && !split.test.is_empty() && !split.train.is_empty());
        assert_eq!(split.len(), next);
    }
}
