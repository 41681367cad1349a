//! Realism from a frozen critic: a discriminator trained apart on real
//! faces (the cStyleGAN's) reads each output against its target group and
//! its person's gender, and a row pays while the critic finds it less real
//! than a chosen logit.
//!
//! The age critics ask an output to *read* as its target age; nothing in
//! them asks it to look like a photograph, and their gradients paint strokes
//! (moustaches, forehead lines) that they read as age. A discriminator that
//! has seen tens of thousands of real faces of each group scores such paint
//! low: this term lets the generator pay for it.

use std::sync::Arc;

use agesynth_core::{Error, Gender, RealismCritic, Result};
use candle_core::Tensor;

use crate::adversarial::softplus;
use crate::loss::{Loss, LossInput};

/// The realism term: per row, `softplus(−logit) − softplus(−satisfied)`
/// where that is positive (the non-saturating generator loss, stopped once
/// the critic's logit reaches `satisfied`, about where real faces score, so
/// that the generator is not pushed into the critic's blind spots), averaged
/// over the rows. The critic reads each row against its target group and
/// its person's gender (unknown genders, or none given, are judged without
/// one). The critic's weights are not trained by this loss; the gradient
/// reaches the output images.
#[derive(Clone)]
pub struct RealismLoss {
    /// The frozen critic.
    pub critic: Arc<dyn RealismCritic>,
    /// Its weight.
    pub weight: f64,
    /// The logit at which a row stops paying (`f64::INFINITY`: never, the
    /// plain non-saturating loss).
    pub satisfied: f64,
}

impl std::fmt::Debug for RealismLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealismLoss")
            .field("weight", &self.weight)
            .field("satisfied", &self.satisfied)
            .finish()
    }
}

impl Loss for RealismLoss {
    fn name(&self) -> &str {
        "realism"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output`, `groups` (required) and `genders` (optional).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let groups = input.need_groups(self.name())?;
        let n = input.output.dim(0)?;
        let unknown;
        let genders: &[Option<Gender>] = match input.genders {
            Some(g) => g,
            None => {
                unknown = vec![None; n];
                &unknown
            }
        };
        if groups.len() != n || genders.len() != n {
            return Err(Error::InvalidInput(format!(
                "realism loss: {n} images, {} groups, {} genders",
                groups.len(),
                genders.len()
            )));
        }
        let logits = self.critic.realism_logits(input.output, groups, genders)?;
        let mut pay = softplus(&logits.neg()?)?;
        if self.satisfied.is_finite() {
            let floor = (1.0 + (-self.satisfied).exp()).ln();
            pay = (pay - floor)?.relu()?;
        }
        Ok(pay.mean_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::{AgeBins, AgeGroup};
    use candle_core::{DType, Device, Var};

    /// Reads the mean of the red channel plus the target group's index as
    /// the logit, one more for a woman, half of that when the gender is
    /// unknown.
    struct RedIsReal(AgeBins);
    impl RealismCritic for RedIsReal {
        fn realism_logits(
            &self,
            x: &Tensor,
            groups: &[AgeGroup],
            genders: &[Option<Gender>],
        ) -> Result<Tensor> {
            let red = x.narrow(1, 0, 1)?.flatten_from(1)?.mean(1)?;
            let shift: Vec<f32> = groups
                .iter()
                .zip(genders)
                .map(|(g, s)| {
                    g.0 as f32
                        + match s {
                            Some(Gender::Female) => 1.0,
                            Some(Gender::Male) => 0.0,
                            None => 0.5,
                        }
                })
                .collect();
            let shift = Tensor::from_vec(shift, groups.len(), x.device())?.to_dtype(x.dtype())?;
            Ok((red + shift)?)
        }
        fn age_bins(&self) -> &AgeBins {
            &self.0
        }
    }

    fn loss(satisfied: f64) -> RealismLoss {
        RealismLoss {
            critic: Arc::new(RedIsReal(AgeBins::default())),
            weight: 3.0,
            satisfied,
        }
    }

    /// Images whose red channel is `r` per row, the rest 0.
    fn images(reds: &[f64]) -> Tensor {
        let n = reds.len();
        let mut v = vec![0f64; n * 3 * 4];
        for (k, &r) in reds.iter().enumerate() {
            v[k * 12..k * 12 + 4].fill(r);
        }
        Tensor::from_vec(v, (n, 3, 2, 2), &Device::Cpu).unwrap()
    }

    fn sp(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    fn value(l: &RealismLoss, input: &LossInput) -> f64 {
        l.compute(input).unwrap().to_scalar::<f64>().unwrap()
    }

    #[test]
    fn value_reads_each_rows_group_and_gender_and_stops_when_satisfied() {
        let x = images(&[-1.0, 0.5, -3.0]);
        let groups = [AgeGroup(0), AgeGroup(1), AgeGroup(2)];
        let g = [Some(Gender::Female), Some(Gender::Male), None];
        // Logits: −1 + 0 + 1 = 0, 0.5 + 1 = 1.5, −3 + 2 + 0.5 = −0.5.
        let plain = loss(f64::INFINITY);
        let want = (sp(0.0) + sp(-1.5) + sp(0.5)) / 3.0;
        let input = LossInput::new(&x).groups(&groups).genders(&g);
        assert!((value(&plain, &input) - want).abs() < 1e-9);
        let w = plain.weighted(&input).unwrap().to_scalar::<f64>().unwrap();
        assert!((w - 3.0 * want).abs() < 1e-9);
        // Satisfied at logit 1: the second row (1.5) pays nothing, the
        // others pay above softplus(−1).
        let hinge = loss(1.0);
        let want = ((sp(0.0) - sp(-1.0)) + (sp(0.5) - sp(-1.0))) / 3.0;
        assert!((value(&hinge, &input) - want).abs() < 1e-9);
        // Without genders every row is judged as unknown (+0.5).
        let input = LossInput::new(&x).groups(&groups);
        let want = (sp(0.5) + sp(-2.0) + sp(0.5)) / 3.0;
        assert!((value(&plain, &input) - want).abs() < 1e-9);
        // Groups are required, and counts must match.
        assert!(plain.compute(&LossInput::new(&x)).is_err());
        let short = LossInput::new(&x).groups(&groups[..2]);
        assert!(plain.compute(&short).is_err());
        let short = LossInput::new(&x).groups(&groups).genders(&g[..1]);
        assert!(plain.compute(&short).is_err());
    }

    #[test]
    fn the_gradient_makes_the_output_more_real_and_matches_a_finite_difference() {
        let l = loss(2.0);
        let groups = [AgeGroup(0)];
        let g = [Some(Gender::Male)];
        let x = Var::from_tensor(&images(&[-1.0]).to_dtype(DType::F64).unwrap()).unwrap();
        let f = |t: &Tensor| value(&l, &LossInput::new(t).groups(&groups).genders(&g));
        let y = l
            .compute(&LossInput::new(x.as_tensor()).groups(&groups).genders(&g))
            .unwrap();
        let dx = y
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // More red is more real: the loss falls as red rises.
        assert!(dx[0] < 0.0, "{dx:?}");
        let eps = 1e-6;
        let mut bumped = x
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        bumped[0] += eps;
        let bumped = Tensor::from_vec(bumped, (1, 3, 2, 2), &Device::Cpu).unwrap();
        let fd = (f(&bumped) - f(x.as_tensor())) / eps;
        assert!((fd - dx[0]).abs() < 1e-6, "{fd} vs {}", dx[0]);
        assert!(dx[4..].iter().all(|&d| d == 0.0), "{dx:?}");
        // A satisfied row has no gradient.
        let real = Var::from_tensor(&images(&[3.0])).unwrap();
        let y = l
            .compute(&LossInput::new(real.as_tensor()).groups(&groups).genders(&g))
            .unwrap();
        let d = y.backward().unwrap().get(&real).unwrap().abs().unwrap();
        assert_eq!(d.max_all().unwrap().to_scalar::<f64>().unwrap(), 0.0);
    }
}
