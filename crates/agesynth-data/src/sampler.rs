//! The order faces are visited in during an epoch: shuffled, or balanced over
//! age groups. Every order is a function of (seed, epoch) only.

use agesynth_core::{AgeBins, FaceDataset, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::transform::mix_seed;

/// How a loader orders the faces of an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// The given order, every epoch (evaluation).
    Sequential,
    /// A fresh permutation every epoch.
    #[default]
    Shuffled,
    /// As many faces per epoch as given, drawn equally from every non-empty
    /// age group (rare groups repeat, common ones are subsampled), shuffled.
    Balanced,
}

/// The random generator of an epoch.
fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix_seed(seed, epoch, 0x5eed))
}

/// `indices` permuted for `(seed, epoch)`.
pub fn shuffled(indices: &[usize], seed: u64, epoch: u64) -> Vec<usize> {
    let mut v = indices.to_vec();
    v.shuffle(&mut epoch_rng(seed, epoch));
    v
}

/// Buckets `indices` by the age group of each face.
pub fn by_group(
    dataset: &dyn FaceDataset,
    indices: &[usize],
    bins: &AgeBins,
) -> Result<Vec<Vec<usize>>> {
    let mut buckets = vec![Vec::new(); bins.len()];
    for &i in indices {
        let meta = dataset.meta(i).ok_or_else(|| {
            agesynth_core::Error::InvalidInput(format!("index {i} past the dataset's end"))
        })?;
        buckets[bins.group(meta.age)?.0].push(i);
    }
    Ok(buckets)
}

/// `n` faces drawn equally from every non-empty bucket, for `(seed, epoch)`:
/// each bucket contributes `n / groups` faces (the remainder going to
/// randomly chosen buckets), taken from successive shuffles of the bucket so
/// that no face repeats before its whole bucket has been used; the result is
/// shuffled.
pub fn balanced(buckets: &[Vec<usize>], n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let full: Vec<&Vec<usize>> = buckets.iter().filter(|b| !b.is_empty()).collect();
    if full.is_empty() {
        return Vec::new();
    }
    let mut rng = epoch_rng(seed, epoch);
    let g = full.len();
    let mut quota = vec![n / g; g];
    let mut extra: Vec<usize> = (0..g).collect();
    extra.shuffle(&mut rng);
    for &k in extra.iter().take(n % g) {
        quota[k] += 1;
    }
    let mut out = Vec::with_capacity(n);
    for (bucket, q) in full.iter().zip(quota) {
        let mut pass: Vec<usize> = Vec::new();
        for _ in 0..q {
            if pass.is_empty() {
                pass = bucket.to_vec();
                pass.shuffle(&mut rng);
            }
            // Non-empty by the refill above.
            if let Some(i) = pass.pop() {
                out.push(i);
            }
        }
    }
    out.shuffle(&mut rng);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_depend_only_on_seed_and_epoch() {
        let idx: Vec<usize> = (0..100).collect();
        let a = shuffled(&idx, 3, 0);
        assert_eq!(a, shuffled(&idx, 3, 0));
        assert_ne!(a, shuffled(&idx, 3, 1));
        assert_ne!(a, shuffled(&idx, 4, 0));
        assert_ne!(a, idx);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, idx);
    }

    #[test]
    fn balanced_draws_equal_counts_per_group() {
        // Group sizes 1000, 50, 5, 0, 200.
        let mut buckets = Vec::new();
        let mut next = 0;
        for size in [1000usize, 50, 5, 0, 200] {
            buckets.push((next..next + size).collect::<Vec<_>>());
            next += size;
        }
        let n = 1255;
        let order = balanced(&buckets, n, 9, 2);
        assert_eq!(order, balanced(&buckets, n, 9, 2));
        assert_ne!(order, balanced(&buckets, n, 9, 3));
        assert_eq!(order.len(), n);
        let counts: Vec<usize> = buckets
            .iter()
            .map(|b| order.iter().filter(|i| b.contains(i)).count())
            .collect();
        for (k, &c) in counts.iter().enumerate() {
            if buckets[k].is_empty() {
                assert_eq!(c, 0);
            } else {
                assert!((313..=314).contains(&c), "group {k}: {c}");
            }
        }
        // The 5-face group: every face used 62 or 63 times (no face favoured).
        for i in &buckets[2] {
            let c = order.iter().filter(|j| *j == i).count();
            assert!((62..=63).contains(&c), "face {i}: {c}");
        }
        // The 1000-face group: no repeats within one pass.
        let big: Vec<_> = order.iter().filter(|i| **i < 1000).collect();
        let mut dedup = big.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), big.len());
    }
}
