//! Gender keeping: a frozen gender classifier reads the output, and a row
//! whose person's gender is known pays when it no longer looks it.
//!
//! An age critic trained on a dataset whose old faces are mostly men can
//! reward a generator for painting a moustache on a woman it ages; this
//! term, from a classifier trained apart on real faces' labels, pays for
//! exactly that.

use std::sync::Arc;

use agesynth_core::{Error, Gender, GenderClassifier, Result};
use candle_core::{Tensor, D};

use crate::age::gaussian_blur;
use crate::loss::{Loss, LossInput};

/// The gender-keeping term: the cross-entropy of each row's known gender
/// from a frozen classifier's logits on the output, averaged over the image
/// and its mirror; rows of unknown gender pay nothing (the mean is over the
/// rows whose gender is known; 0 when none is). A row pays only the part
/// above `−log satisfied`: once the classifier reads the gender with that
/// probability, the generator is not pushed towards an ever more marked
/// one. The classifier's weights are not trained by this loss; the gradient
/// reaches the output images.
#[derive(Clone)]
pub struct ClassifierGenderLoss {
    /// The classifier.
    pub classifier: Arc<dyn GenderClassifier>,
    /// Its weight.
    pub weight: f64,
    /// Standard deviation, in pixels, of the blur applied before the
    /// classifier (0: none).
    pub blur_sigma: f64,
    /// Probability of the row's gender at which a row stops paying (1:
    /// never, the plain cross-entropy).
    pub satisfied: f64,
}

impl std::fmt::Debug for ClassifierGenderLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifierGenderLoss")
            .field("weight", &self.weight)
            .field("blur_sigma", &self.blur_sigma)
            .field("satisfied", &self.satisfied)
            .finish()
    }
}

/// Per-row cross-entropy `−log softmax(logits)[gender]` of `logits (N, 2)`
/// (male, female), a vector `(N,)`, and the mask `(N,)` of the rows whose
/// gender is known (1) or not (0: its cross-entropy, read as male, is to be
/// masked out).
fn row_gender_nll(logits: &Tensor, genders: &[Option<Gender>]) -> Result<(Tensor, Tensor)> {
    let (n, c) = logits.dims2()?;
    if c != 2 || genders.len() != n {
        return Err(Error::InvalidInput(format!(
            "gender loss: logits of shape ({n}, {c}) for {} genders (want (N, 2))",
            genders.len()
        )));
    }
    let idx: Vec<u32> = genders
        .iter()
        .map(|g| u32::from(*g == Some(Gender::Female)))
        .collect();
    let known: Vec<f32> = genders.iter().map(|g| f32::from(g.is_some())).collect();
    let idx = Tensor::from_vec(idx, (n, 1), logits.device())?;
    let known = Tensor::from_vec(known, n, logits.device())?.to_dtype(logits.dtype())?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp.gather(&idx, 1)?.squeeze(1)?.neg()?;
    Ok((nll, known))
}

impl Loss for ClassifierGenderLoss {
    fn name(&self) -> &str {
        "gender_keep"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `genders` (without genders, as a batch in which
    /// no row's gender is known comes, the term is 0).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let Some(genders) = input.genders else {
            return Ok(input.output.sum_all()?.zeros_like()?);
        };
        let x = gaussian_blur(input.output, self.blur_sigma)?;
        let mirrored = x.flip(&[3])?;
        let (a, known) = row_gender_nll(&self.classifier.gender_logits(&x)?, genders)?;
        let (b, _) = row_gender_nll(&self.classifier.gender_logits(&mirrored)?, genders)?;
        let mut nll = ((a + b)? * 0.5)?;
        if self.satisfied < 1.0 {
            let floor = -self.satisfied.max(1e-12).ln();
            nll = (nll - floor)?.relu()?;
        }
        let n_known = genders.iter().filter(|g| g.is_some()).count();
        if n_known == 0 {
            return Ok(nll.sum_all()?.zeros_like()?);
        }
        Ok(((nll * known)?.sum_all()? / n_known as f64)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Reads the mean of the red channel as the female logit, 0 as the
    /// male one.
    struct RedIsFemale;
    impl GenderClassifier for RedIsFemale {
        fn gender_logits(&self, x: &Tensor) -> Result<Tensor> {
            let red = x.narrow(1, 0, 1)?.flatten_from(1)?.mean_keepdim(1)?;
            Ok(Tensor::cat(&[&red.zeros_like()?, &red], 1)?)
        }
    }

    fn loss(satisfied: f64) -> ClassifierGenderLoss {
        ClassifierGenderLoss {
            classifier: Arc::new(RedIsFemale),
            weight: 2.0,
            blur_sigma: 0.0,
            satisfied,
        }
    }

    /// Images whose red channel is `r` per row, the rest 0.
    fn images(reds: &[f32]) -> Tensor {
        let n = reds.len();
        let mut v = vec![0f32; n * 3 * 4];
        for (k, &r) in reds.iter().enumerate() {
            v[k * 12..k * 12 + 4].fill(r);
        }
        Tensor::from_vec(v, (n, 3, 2, 2), &Device::Cpu).unwrap()
    }

    fn softplus(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    #[test]
    fn value_counts_only_rows_of_known_gender() {
        let x = images(&[1.0, 1.0, -2.0]);
        let g = [Some(Gender::Female), Some(Gender::Male), None];
        let l = loss(1.0);
        let v = l
            .compute(&LossInput::new(&x).genders(&g))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        // Female at logit 1: softplus(−1); male against female logit 1:
        // softplus(1); the unknown row pays nothing; mean over two rows.
        let want = (softplus(-1.0) + softplus(1.0)) / 2.0;
        assert!((v - want).abs() < 1e-5, "{v} vs {want}");
        let w = l
            .weighted(&LossInput::new(&x).genders(&g))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((w - 2.0 * want).abs() < 1e-5);
        // No gender known anywhere, or none given: 0; a count that does
        // not match the rows: an error.
        let none = [None, None, None];
        let z = l.compute(&LossInput::new(&x).genders(&none)).unwrap();
        assert_eq!(z.to_scalar::<f32>().unwrap(), 0.0);
        let z = l.compute(&LossInput::new(&x)).unwrap();
        assert_eq!(z.to_scalar::<f32>().unwrap(), 0.0);
        assert!(l.compute(&LossInput::new(&x).genders(&g[..2])).is_err());
    }

    #[test]
    fn a_satisfied_row_pays_nothing_and_the_gradient_restores_the_gender() {
        // p(female) = sigmoid(r): at r = 3 a woman is read at 0.95 > 0.9.
        let l = loss(0.9);
        let g = [Some(Gender::Female)];
        let v = l
            .compute(&LossInput::new(&images(&[3.0])).genders(&g))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(v, 0.0);
        // A woman read as a man (r = −1) pays, and the gradient raises her
        // red channel (what the classifier reads as female), matching a
        // finite difference.
        let x = Var::from_tensor(&images(&[-1.0]).to_dtype(DType::F64).unwrap()).unwrap();
        let value = |t: &Tensor| {
            l.compute(&LossInput::new(t).genders(&g))
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let y = l
            .compute(&LossInput::new(x.as_tensor()).genders(&g))
            .unwrap();
        assert!(y.to_scalar::<f64>().unwrap() > 0.0);
        let grad = y.backward().unwrap();
        let dx = grad
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
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
        let fd = (value(&bumped) - value(x.as_tensor())) / eps;
        assert!((fd - dx[0]).abs() < 1e-5, "{fd} vs {}", dx[0]);
        // Green and blue are not read: no gradient there.
        assert!(dx[4..].iter().all(|&d| d == 0.0), "{dx:?}");
    }
}
