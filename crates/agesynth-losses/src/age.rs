//! Age loss: cross-entropy of the target age group from group logits.
//!
//! The logits come from the discriminator's auxiliary head, or from an
//! [`agesynth_core::AgeEstimator`]'s ages through [`logits_from_ages`].

use std::sync::Arc;

use agesynth_core::{AgeBins, AgeClassifier, Error, Result};
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::loss::{Loss, LossInput};

/// Mean cross-entropy `−log softmax(logits)[target]` of `logits (N, G)`
/// against the target group indices, a scalar (computed with a stable
/// log-softmax).
pub fn cross_entropy(logits: &Tensor, targets: &[agesynth_core::AgeGroup]) -> Result<Tensor> {
    Ok(row_cross_entropy(logits, targets)?.mean_all()?)
}

/// Cross-entropy of `logits (N, G)` at `targets`, each row weighted by
/// `weights` (normalised by their sum).
pub fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &[agesynth_core::AgeGroup],
    weights: &[f32],
) -> Result<Tensor> {
    let n = logits.dim(0)?;
    if targets.len() != n || weights.len() != n {
        return Err(Error::InvalidInput(format!(
            "weighted cross-entropy: {n} rows, {} targets, {} weights",
            targets.len(),
            weights.len()
        )));
    }
    let idx: Vec<u32> = targets.iter().map(|t| t.0 as u32).collect();
    let idx = Tensor::from_vec(idx, (n, 1), logits.device())?;
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let nll = logp.gather(&idx, 1)?.squeeze(1)?.neg()?;
    let total: f32 = weights.iter().sum();
    let w = Tensor::from_vec(weights.to_vec(), n, logits.device())?;
    Ok(((nll * w)?.sum_all()? / total.max(1e-12) as f64)?)
}

/// Group logits from estimated ages `(N,)` in years:
/// `logit_g = −((age − centre_g) / scale)²`, differentiable in the ages, so
/// an age estimator can drive the age loss.
pub fn logits_from_ages(ages: &Tensor, bins: &AgeBins, scale: f64) -> Result<Tensor> {
    let n = ages.dim(0)?;
    let centres: Vec<f32> = bins.groups().map(|g| bins.centre(g)).collect();
    let c = Tensor::from_vec(centres, (1, bins.len()), ages.device())?.to_dtype(ages.dtype())?;
    let d = (ages.reshape((n, 1))?.broadcast_sub(&c)? / scale)?;
    Ok(d.sqr()?.neg()?.to_dtype(DType::F32)?)
}

/// The age term: cross-entropy of the target groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgeLoss {
    /// Its weight.
    pub weight: f64,
}

impl Loss for AgeLoss {
    fn name(&self) -> &str {
        "age"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `class_logits` and `groups`.
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        cross_entropy(input.need_class_logits("age")?, input.need_groups("age")?)
    }
}

/// The age term from a frozen age classifier trained apart (an age critic):
/// cross-entropy of the target groups from the classifier's logits on the
/// output, averaged over the image and its mirror so that a pattern which
/// fools the classifier in one orientation only does not pay. With
/// `blur_sigma > 0` the classifier sees the output through a Gaussian blur:
/// the pixel-scale patterns a generator can find to fool a small classifier
/// are filtered out before it looks, while the cues of age (face shape, skin,
/// hair colour, coarse wrinkles) pass. The classifier's weights are not
/// trained by this loss (its optimiser never sees them); the gradient reaches
/// the output images.
#[derive(Clone)]
pub struct ClassifierAgeLoss {
    /// The classifier.
    pub classifier: Arc<dyn AgeClassifier>,
    /// Its weight.
    pub weight: f64,
    /// Standard deviation, in pixels, of the blur applied before the
    /// classifier (0: none).
    pub blur_sigma: f64,
    /// Whether the classifier sees the output's luminance only (Rec. 601
    /// luma in all three channels, with the gradient spread evenly:
    /// [`agesynth_core::filters::luma_grey_gradient`]): its gradient then
    /// moves the three channels alike, so it cannot paint colour.
    pub luma: bool,
    /// Target-group probability at which a row stops paying (1: never, the
    /// plain cross-entropy). A row pays `max(0, −log p − (−log
    /// satisfied))`: once the critic reads the target age well enough, the
    /// generator is not pushed towards ever more certain, and more
    /// adversarial, outputs.
    pub satisfied: f64,
}

pub use agesynth_core::filters::{gaussian_blur, luma};

/// Per-row cross-entropy `−log softmax(logits)[target]` of `logits (N, G)`,
/// a vector `(N,)`.
pub fn row_cross_entropy(logits: &Tensor, targets: &[agesynth_core::AgeGroup]) -> Result<Tensor> {
    let (n, g) = logits.dims2()?;
    if targets.len() != n {
        return Err(Error::InvalidInput(format!(
            "age loss: {n} rows of logits but {} target groups",
            targets.len()
        )));
    }
    if let Some(bad) = targets.iter().find(|t| t.0 >= g) {
        return Err(Error::InvalidInput(format!(
            "age loss: target group {} out of {g} groups",
            bad.0
        )));
    }
    let idx: Vec<u32> = targets.iter().map(|t| t.0 as u32).collect();
    let idx = Tensor::from_vec(idx, (n, 1), logits.device())?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(logp.gather(&idx, 1)?.squeeze(1)?.neg()?)
}

impl std::fmt::Debug for ClassifierAgeLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifierAgeLoss")
            .field("groups", &self.classifier.age_bins().len())
            .field("weight", &self.weight)
            .field("blur_sigma", &self.blur_sigma)
            .field("luma", &self.luma)
            .field("satisfied", &self.satisfied)
            .finish()
    }
}

impl Loss for ClassifierAgeLoss {
    fn name(&self) -> &str {
        "age_critic"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output`, `groups` and, where given, `genders` (then each row's
    /// age is read given its gender:
    /// [`AgeClassifier::group_logits_given_gender`]).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let groups = input.need_groups("age critic")?;
        let logits = |x: &Tensor| match input.genders {
            Some(g) => self.classifier.group_logits_given_gender(x, g),
            None => self.classifier.group_logits(x),
        };
        let x = gaussian_blur(input.output, self.blur_sigma)?;
        let x = &if self.luma {
            agesynth_core::filters::luma_grey_gradient(&x)?
        } else {
            x
        };
        let mirrored = x.flip(&[3])?;
        let a = row_cross_entropy(&logits(x)?, groups)?;
        let b = row_cross_entropy(&logits(&mirrored)?, groups)?;
        let nll = ((a + b)? * 0.5)?;
        if self.satisfied >= 1.0 {
            return Ok(nll.mean_all()?);
        }
        let floor = -self.satisfied.max(1e-12).ln();
        Ok((nll - floor)?.relu()?.mean_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::AgeGroup;
    use candle_core::Device;

    #[test]
    fn cross_entropy_value() {
        // Row 0: logits [0, ln 3], target 1: softmax = [1/4, 3/4], −ln(3/4) = 0.287682.
        // Row 1: logits [0, 0], target 0: −ln(1/2) = 0.693147.
        // Mean: 0.490415; weighted 2: 0.980829.
        let logits =
            Tensor::from_vec(vec![0f32, 3f32.ln(), 0.0, 0.0], (2, 2), &Device::Cpu).unwrap();
        let groups = [AgeGroup(1), AgeGroup(0)];
        let v = cross_entropy(&logits, &groups)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((v - 0.490415).abs() < 1e-5, "{v}");
        let dummy = Tensor::zeros((2, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let l = AgeLoss { weight: 2.0 };
        let input = LossInput::new(&dummy).groups(&groups).class_logits(&logits);
        let w = l.weighted(&input).unwrap().to_scalar::<f32>().unwrap();
        assert!((w - 0.980829).abs() < 1e-5, "{w}");
        // Saturated logits stay finite: [0, 1000] with target 0 gives 1000.
        let sat = Tensor::from_vec(vec![0f32, 1000.0], (1, 2), &Device::Cpu).unwrap();
        let v = cross_entropy(&sat, &[AgeGroup(0)])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((v - 1000.0).abs() < 1e-2, "{v}");
        // Missing inputs and bad groups are typed errors.
        assert!(l.compute(&LossInput::new(&dummy).groups(&groups)).is_err());
        assert!(cross_entropy(&logits, &[AgeGroup(2), AgeGroup(0)]).is_err());
        assert!(cross_entropy(&logits, &[AgeGroup(0)]).is_err());
    }

    #[test]
    fn the_blur_keeps_flat_images_and_smooths_a_checkerboard() {
        let flat = Tensor::full(0.3f32, (1, 3, 8, 8), &Device::Cpu).unwrap();
        let b = gaussian_blur(&flat, 1.0).unwrap();
        let d = (b - &flat).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        let v: Vec<f32> = (0..64)
            .map(|i| if (i / 8 + i % 8) % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let board = Tensor::from_vec(v, (1, 1, 8, 8), &Device::Cpu).unwrap();
        let b = gaussian_blur(&board, 1.0).unwrap();
        assert_eq!(b.dims(), board.dims());
        // Away from the replicated edges, a 1-px checkerboard is all but gone.
        let inner = b.narrow(2, 2, 4).unwrap().narrow(3, 2, 4).unwrap();
        let m = inner
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(m < 0.05, "a 1-px checkerboard keeps amplitude {m}");
        // σ = 0 is the identity.
        let same = gaussian_blur(&board, 0.0).unwrap();
        let d = (same - &board).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn weighted_cross_entropy_weights_rows() {
        let logits =
            Tensor::from_vec(vec![0f32, 3f32.ln(), 0.0, 0.0], (2, 2), &Device::Cpu).unwrap();
        let t = [AgeGroup(1), AgeGroup(0)];
        // Equal weights: the plain mean (0.490415).
        let a = weighted_cross_entropy(&logits, &t, &[1.0, 1.0]).unwrap();
        assert!((a.to_scalar::<f32>().unwrap() - 0.490415).abs() < 1e-5);
        // Only row 1: ln 2.
        let b = weighted_cross_entropy(&logits, &t, &[0.0, 2.0]).unwrap();
        assert!((b.to_scalar::<f32>().unwrap() - std::f32::consts::LN_2).abs() < 1e-5);
        assert!(weighted_cross_entropy(&logits, &t, &[1.0]).is_err());
    }

    #[test]
    fn logits_from_ages_peak_at_the_group() {
        // An age at a group's centre gives that group logit 0 (the maximum,
        // all others are negative squares).
        let bins = AgeBins::default();
        let c = bins.centre(AgeGroup(2));
        let ages = Tensor::from_vec(vec![c], 1, &Device::Cpu).unwrap();
        let l = logits_from_ages(&ages, &bins, 10.0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(l[0][2], 0.0);
        assert!(l[0].iter().enumerate().all(|(i, &v)| i == 2 || v < 0.0));
        let v = cross_entropy(&Tensor::new(l, &Device::Cpu).unwrap(), &[AgeGroup(2)])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(v < 1.0);
    }

    /// A two-group classifier whose logits are fixed per-pixel weightings
    /// of the red channel (group 1) and nothing (group 0): it reads colour.
    struct RedReader(AgeBins);

    impl AgeClassifier for RedReader {
        fn group_logits(&self, images: &Tensor) -> Result<Tensor> {
            let red = images.narrow(1, 0, 1)?.flatten_from(1)?.mean_keepdim(1)?;
            let zeros = red.zeros_like()?;
            Ok(Tensor::cat(&[&zeros, &(red * 4.0)?], 1)?)
        }
        fn age_bins(&self) -> &AgeBins {
            &self.0
        }
    }

    fn critic_loss(luma: bool, satisfied: f64) -> ClassifierAgeLoss {
        ClassifierAgeLoss {
            classifier: Arc::new(RedReader(AgeBins::new(vec![0.0, 30.0]).unwrap())),
            weight: 1.0,
            blur_sigma: 0.0,
            luma,
            satisfied,
        }
    }

    #[test]
    fn critic_through_luma_moves_the_channels_alike() {
        let dev = Device::Cpu;
        let x =
            candle_core::Var::from_tensor(&Tensor::rand(0f32, 1f32, (2, 3, 4, 4), &dev).unwrap())
                .unwrap();
        let t = [AgeGroup(1), AgeGroup(1)];
        // Colour: only the red channel gets a gradient.
        let l = critic_loss(false, 1.0)
            .compute(&LossInput::new(x.as_tensor()).groups(&t))
            .unwrap();
        let g = l.backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap();
        let sums: Vec<f32> = (0..3)
            .map(|c| {
                g.narrow(1, c, 1)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            })
            .collect();
        assert!(
            sums[0] > 0.0 && sums[1] == 0.0 && sums[2] == 0.0,
            "{sums:?}"
        );
        // Luma: every channel moves, and equally (a grey change).
        let l = critic_loss(true, 1.0)
            .compute(&LossInput::new(x.as_tensor()).groups(&t))
            .unwrap();
        let g = l.backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_dtype(DType::F64).unwrap();
        let r = g.narrow(1, 0, 1).unwrap();
        for (c, w) in [(1usize, 1.0), (2, 1.0)] {
            let d = (g.narrow(1, c, 1).unwrap() - (&r * w).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(d < 1e-6, "channel {c} differs by {d}");
        }
    }

    /// Two groups; whatever the gender it reads nothing (logits 0, 0), a
    /// woman as group 1 and a man as group 0 (logits ±4).
    struct ByGender(AgeBins);

    impl AgeClassifier for ByGender {
        fn group_logits(&self, images: &Tensor) -> Result<Tensor> {
            Ok(Tensor::zeros(
                (images.dim(0)?, 2),
                DType::F32,
                images.device(),
            )?)
        }
        fn group_logits_given_gender(
            &self,
            images: &Tensor,
            genders: &[Option<agesynth_core::Gender>],
        ) -> Result<Tensor> {
            let v: Vec<f32> = genders
                .iter()
                .flat_map(|g| match g {
                    Some(agesynth_core::Gender::Female) => [0.0, 4.0],
                    Some(agesynth_core::Gender::Male) => [4.0, 0.0],
                    None => [0.0, 0.0],
                })
                .collect();
            Ok(Tensor::from_vec(v, (images.dim(0)?, 2), images.device())?)
        }
        fn age_bins(&self) -> &AgeBins {
            &self.0
        }
    }

    #[test]
    fn the_critic_term_reads_age_given_each_rows_gender() {
        use agesynth_core::Gender;
        let x = Tensor::zeros((3, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let loss = ClassifierAgeLoss {
            classifier: Arc::new(ByGender(AgeBins::new(vec![0.0, 30.0]).unwrap())),
            weight: 1.0,
            blur_sigma: 0.0,
            luma: false,
            satisfied: 1.0,
        };
        let t = [AgeGroup(1), AgeGroup(1), AgeGroup(1)];
        let g = [Some(Gender::Female), Some(Gender::Male), None];
        let v = |input: LossInput| loss.compute(&input).unwrap().to_scalar::<f32>().unwrap() as f64;
        // Without genders: ln 2 per row.
        let plain = v(LossInput::new(&x).groups(&t));
        assert!((plain - std::f64::consts::LN_2).abs() < 1e-5, "{plain}");
        // With them: ln(1 + e⁻⁴), ln(1 + e⁴) and ln 2.
        let want =
            ((1.0 + (-4f64).exp()).ln() + (1.0 + 4f64.exp()).ln() + std::f64::consts::LN_2) / 3.0;
        let given = v(LossInput::new(&x).groups(&t).genders(&g));
        assert!((given - want).abs() < 1e-5, "{given} vs {want}");
    }

    #[test]
    fn a_satisfied_row_pays_nothing() {
        let dev = Device::Cpu;
        // Red mean 1: logits [0, 4], p(group 1) = 0.982, p(group 0) = 0.018.
        let x = Tensor::ones((2, 3, 4, 4), DType::F32, &dev).unwrap();
        let both = [AgeGroup(1), AgeGroup(0)];
        let v = |l: ClassifierAgeLoss, t: &[AgeGroup]| {
            l.compute(&LossInput::new(&x).groups(t))
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let nll1 = (1.0 + (-4f64).exp()).ln();
        let nll0 = (1.0 + 4f64.exp()).ln();
        // Plain cross-entropy: the mean of both rows.
        assert!((v(critic_loss(false, 1.0), &both) - (nll0 + nll1) / 2.0).abs() < 1e-5);
        // Satisfied at 0.5: the first row (p = 0.98) pays nothing, the second
        // pays its excess over ln 2.
        let want = (nll0 - std::f64::consts::LN_2) / 2.0;
        assert!((v(critic_loss(false, 0.5), &both) - want).abs() < 1e-5);
        assert_eq!(v(critic_loss(false, 0.5), &[AgeGroup(1), AgeGroup(1)]), 0.0);
    }
}
