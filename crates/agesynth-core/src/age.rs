//! Ages, age groups and their codes.
//!
//! The paper conditions every model on one of six age groups: 0–9, 10–19,
//! 20–29, 30–39, 40–49 and 50+. [`AgeBins`] holds that set by default and any
//! other set of half-open bins on demand.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Index of an age group within an [`AgeBins`] set (0 is the youngest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgeGroup(pub usize);

impl AgeGroup {
    /// The group's index.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A set of age bins: bin `i` holds ages in `[lower[i], lower[i + 1])`; the last
/// bin is open above.
///
/// ```
/// use agesynth_core::{AgeBins, AgeGroup};
/// let bins = AgeBins::default();
/// assert_eq!(bins.len(), 6);
/// assert_eq!(bins.group(34.0).unwrap(), AgeGroup(3));
/// assert_eq!(bins.label(AgeGroup(5)), "50+");
/// assert_eq!(bins.one_hot(AgeGroup(1)), vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f32>", into = "Vec<f32>")]
pub struct AgeBins {
    lower: Vec<f32>,
}

impl Default for AgeBins {
    /// The paper's six groups: 0–9, 10–19, 20–29, 30–39, 40–49, 50+.
    fn default() -> Self {
        AgeBins {
            lower: vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0],
        }
    }
}

impl TryFrom<Vec<f32>> for AgeBins {
    type Error = Error;
    fn try_from(lower: Vec<f32>) -> Result<Self> {
        AgeBins::new(lower)
    }
}

impl From<AgeBins> for Vec<f32> {
    fn from(b: AgeBins) -> Vec<f32> {
        b.lower
    }
}

impl AgeBins {
    /// Bins from their lower bounds: the first must be 0, the rest strictly
    /// increasing and finite; at least two bins.
    pub fn new(lower: Vec<f32>) -> Result<Self> {
        if lower.len() < 2 {
            return Err(Error::Config(format!(
                "age bins need at least two lower bounds, got {lower:?}"
            )));
        }
        if lower[0] != 0.0 {
            return Err(Error::Config(format!(
                "the first age bin must start at 0, got {lower:?}"
            )));
        }
        if lower.iter().any(|x| !x.is_finite()) || lower.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::Config(format!(
                "age bin bounds must be finite and strictly increasing, got {lower:?}"
            )));
        }
        Ok(AgeBins { lower })
    }

    /// The paper's six groups (the same as [`AgeBins::default`]).
    pub fn paper() -> Self {
        Self::default()
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.lower.len()
    }

    /// Always false: a valid set has at least two bins.
    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    /// The lower bounds, one per group.
    pub fn lower_bounds(&self) -> &[f32] {
        &self.lower
    }

    /// Every group, youngest first.
    pub fn groups(&self) -> impl Iterator<Item = AgeGroup> {
        (0..self.len()).map(AgeGroup)
    }

    /// The group holding `age` (in years). Errors on a negative, infinite or
    /// NaN age.
    pub fn group(&self, age: f32) -> Result<AgeGroup> {
        if !age.is_finite() || age < 0.0 {
            return Err(Error::InvalidInput(format!(
                "age must be a finite number of years >= 0, got {age}"
            )));
        }
        // Last bin whose lower bound is <= age.
        let i = self.lower.partition_point(|&lo| lo <= age);
        Ok(AgeGroup(i.saturating_sub(1)))
    }

    /// The group holding a whole number of years (infallible).
    pub fn group_of_years(&self, years: u32) -> AgeGroup {
        let age = years as f32;
        AgeGroup(
            self.lower
                .partition_point(|&lo| lo <= age)
                .saturating_sub(1),
        )
    }

    /// `[lower, upper)` of a group; `upper` is `None` for the open last group.
    pub fn range(&self, g: AgeGroup) -> (f32, Option<f32>) {
        let lo = self.lower[g.0.min(self.len() - 1)];
        (lo, self.lower.get(g.0 + 1).copied())
    }

    /// Human label: `"20-29"` for closed groups of whole years, `"50+"` for the
    /// last one.
    pub fn label(&self, g: AgeGroup) -> String {
        match self.range(g) {
            (lo, None) => format!("{lo}+"),
            (lo, Some(hi)) if lo.fract() == 0.0 && hi.fract() == 0.0 => {
                format!("{lo}-{}", hi - 1.0)
            }
            (lo, Some(hi)) => format!("{lo}-<{hi}"),
        }
    }

    /// The age a group stands for, used as the target of age metrics: the
    /// middle of its whole-year range (0–9 → 4.5), and for the open last group
    /// its lower bound plus half the width of the group before it (50+ → 54.5).
    pub fn centre(&self, g: AgeGroup) -> f32 {
        match self.range(g) {
            (lo, Some(hi)) => (lo + hi - 1.0) / 2.0,
            (lo, None) => {
                let prev = self.lower[self.len() - 2];
                lo + (lo - prev - 1.0) / 2.0
            }
        }
    }

    /// One-hot code of a group, `len()` entries.
    pub fn one_hot(&self, g: AgeGroup) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        if let Some(x) = v.get_mut(g.0) {
            *x = 1.0;
        }
        v
    }

    /// One-hot codes of many groups as an `(N, len())` f32 tensor.
    pub fn one_hot_tensor(&self, groups: &[AgeGroup], device: &Device) -> Result<Tensor> {
        self.check(groups)?;
        let mut data = vec![0f32; groups.len() * self.len()];
        for (row, g) in groups.iter().enumerate() {
            data[row * self.len() + g.0] = 1.0;
        }
        Ok(Tensor::from_vec(data, (groups.len(), self.len()), device)?)
    }

    /// Group indices as an `(N,)` u32 tensor, the form embeddings take.
    pub fn index_tensor(&self, groups: &[AgeGroup], device: &Device) -> Result<Tensor> {
        self.check(groups)?;
        let data: Vec<u32> = groups.iter().map(|g| g.0 as u32).collect();
        Ok(Tensor::from_vec(data, groups.len(), device)?)
    }

    /// The group whose one-hot code is `code` (the arg-max), for decoding.
    pub fn from_one_hot(&self, code: &[f32]) -> Result<AgeGroup> {
        if code.len() != self.len() {
            return Err(Error::InvalidInput(format!(
                "one-hot code has {} entries, the bins have {} groups",
                code.len(),
                self.len()
            )));
        }
        let (i, _) = code
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 {
                    (i, x)
                } else {
                    best
                }
            });
        Ok(AgeGroup(i))
    }

    fn check(&self, groups: &[AgeGroup]) -> Result<()> {
        match groups.iter().find(|g| g.0 >= self.len()) {
            Some(g) => Err(Error::InvalidInput(format!(
                "age group {} out of range for {} groups",
                g.0,
                self.len()
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_groups_by_age() {
        let b = AgeBins::default();
        // (age, expected group)
        let cases = [
            (0.0, 0),
            (9.99, 0),
            (10.0, 1),
            (19.0, 1),
            (20.0, 2),
            (29.5, 2),
            (30.0, 3),
            (45.0, 4),
            (50.0, 5),
            (116.0, 5),
        ];
        for (age, g) in cases {
            assert_eq!(b.group(age).unwrap(), AgeGroup(g), "age {age}");
        }
        assert_eq!(b.group_of_years(49), AgeGroup(4));
        assert!(b.group(-1.0).is_err());
        assert!(b.group(f32::NAN).is_err());
    }

    #[test]
    fn labels_and_centres() {
        let b = AgeBins::default();
        let labels: Vec<String> = b.groups().map(|g| b.label(g)).collect();
        assert_eq!(labels, ["0-9", "10-19", "20-29", "30-39", "40-49", "50+"]);
        assert_eq!(b.centre(AgeGroup(0)), 4.5);
        assert_eq!(b.centre(AgeGroup(3)), 34.5);
        assert_eq!(b.centre(AgeGroup(5)), 54.5);
    }

    #[test]
    fn one_hot_round_trip_and_tensors() {
        let b = AgeBins::new(vec![0.0, 18.0, 40.0, 65.0]).unwrap();
        for g in b.groups() {
            assert_eq!(b.from_one_hot(&b.one_hot(g)).unwrap(), g);
        }
        let t = b
            .one_hot_tensor(&[AgeGroup(2), AgeGroup(0)], &Device::Cpu)
            .unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0, 0.0]]
        );
        assert!(b.one_hot_tensor(&[AgeGroup(4)], &Device::Cpu).is_err());
        let idx = b.index_tensor(&[AgeGroup(3)], &Device::Cpu).unwrap();
        assert_eq!(idx.to_vec1::<u32>().unwrap(), vec![3]);
    }

    #[test]
    fn invalid_bins_are_rejected() {
        assert!(AgeBins::new(vec![0.0]).is_err());
        assert!(AgeBins::new(vec![5.0, 10.0]).is_err());
        assert!(AgeBins::new(vec![0.0, 10.0, 10.0]).is_err());
        assert!(AgeBins::new(vec![0.0, f32::NAN]).is_err());
    }

    #[test]
    fn serde_round_trip_validates() {
        let b = AgeBins::default();
        let s = serde_json::to_string(&b).unwrap();
        assert_eq!(s, "[0.0,10.0,20.0,30.0,40.0,50.0]");
        assert_eq!(serde_json::from_str::<AgeBins>(&s).unwrap(), b);
        assert!(serde_json::from_str::<AgeBins>("[3.0,1.0]").is_err());
    }
}
