//! Filtering synthetic pairs: a cStyleGAN identity rendered at every age
//! group is kept only if the critics read one person throughout (the
//! synthetic-pairs writer and `agesynth eval cstylegan` both use it).

use agesynth_core::Result;
use candle_core::Tensor;

/// Keeps only the synthetic identities that stay one person across their
/// renders: an identity's *inconsistency* is the largest L2 distance between
/// the embeddings of its renders at neighbouring age groups (a sudden change
/// of person — a woman at 20–29 who is a man at 30–39 — shows up at one
/// boundary), and an identity whose inconsistency exceeds `max_distance` is
/// dropped; with a [`GenderCheck`], so is one whose renders the gender
/// critic reads as different genders. The networks are ones trained here
/// (the identity and gender critics), never networks that judge the results.
#[derive(Clone)]
pub struct PairFilter {
    /// Embeds renders `(N, 3, S, S)` in `[-1, 1]`.
    pub embedder: std::sync::Arc<dyn agesynth_core::FaceEmbedder>,
    /// Largest accepted inconsistency (`f32::INFINITY`: no identity check).
    pub max_distance: f32,
    /// The gender check, if any.
    pub gender: Option<GenderCheck>,
}

/// Drops identities whose renders change gender.
#[derive(Clone, Debug)]
pub struct GenderCheck {
    /// The gender critic.
    pub critic: std::sync::Arc<crate::GenderCritic>,
    /// The first group compared (young children's gender is not read
    /// reliably; 1 = from 10–19 with the paper's groups).
    pub from_group: usize,
}

/// What a [`PairFilter`] says of one identity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairVerdict {
    /// Kept.
    pub keep: bool,
    /// The largest identity distance between neighbouring groups.
    pub inconsistency: f32,
    /// Whether the gender critic reads one gender at every compared group
    /// (true without a gender check).
    pub one_gender: bool,
}

impl std::fmt::Debug for PairFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairFilter")
            .field("embedder_dim", &self.embedder.dim())
            .field("max_distance", &self.max_distance)
            .field("gender", &self.gender.as_ref().map(|g| g.from_group))
            .finish()
    }
}

impl PairFilter {
    /// The inconsistency of each identity of `renders (n, groups, 3, S, S)`.
    pub fn inconsistency(&self, renders: &Tensor) -> Result<Vec<f32>> {
        let (n, g, c, h, w) = renders.dims5()?;
        if g < 2 {
            return Ok(vec![0.0; n]);
        }
        let e = self
            .embedder
            .embed(&renders.reshape((n * g, c, h, w))?)?
            .to_dtype(candle_core::DType::F32)?;
        let d = e.dim(1)?;
        let e = e.reshape((n, g, d))?;
        let diff = (e.narrow(1, 1, g - 1)? - e.narrow(1, 0, g - 1)?)?;
        let dist = diff.sqr()?.sum(2)?.sqrt()?.max(1)?;
        Ok(dist.to_vec1::<f32>()?)
    }

    /// Whether the gender critic reads each identity of `renders` as one
    /// gender at every group from the check's first (all true without a
    /// check).
    pub fn one_gender(&self, renders: &Tensor) -> Result<Vec<bool>> {
        let (n, g, c, h, w) = renders.dims5()?;
        let Some(check) = &self.gender else {
            return Ok(vec![true; n]);
        };
        let from = check.from_group.min(g);
        if g - from < 2 {
            return Ok(vec![true; n]);
        }
        let k = g - from;
        let x = renders
            .narrow(1, from, k)?
            .contiguous()?
            .reshape((n * k, c, h, w))?;
        let p = check
            .critic
            .female_probability(&x)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        Ok(p.chunks(k)
            .map(|row| {
                let first = row[0] >= 0.5;
                row.iter().all(|&q| (q >= 0.5) == first)
            })
            .collect())
    }

    /// The verdict on each identity of `renders`.
    pub fn judge(&self, renders: &Tensor) -> Result<Vec<PairVerdict>> {
        let d = self.inconsistency(renders)?;
        let one = self.one_gender(renders)?;
        Ok(d.into_iter()
            .zip(one)
            .map(|(inconsistency, one_gender)| PairVerdict {
                keep: inconsistency <= self.max_distance && one_gender,
                inconsistency,
                one_gender,
            })
            .collect())
    }
}
