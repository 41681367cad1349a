//! Adversarial losses on raw discriminator logits.
//!
//! All losses are means over the batch (and over any patch dimensions), so
//! they work for global `(N,)` and patch `(N, 1, h, w)` logits alike. Every
//! function returns a scalar tensor that candle can backpropagate.

use agesynth_core::Result;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::loss::{Loss, LossInput};

/// Numerically stable softplus, `log(1 + eˣ) = max(x, 0) + log(1 + e^{-|x|})`.
///
/// Finite for every finite input (the exponential only ever sees non-positive
/// arguments), with gradient `sigmoid(x)`. Use it instead of a binary
/// cross-entropy built from `log(sigmoid(x))`, which gives `-inf`/NaN once the
/// logits saturate.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((x.relu()? + tail)?)
}

/// Mean of all elements as a scalar tensor.
fn mean_all(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean_all()?)
}

/// Which adversarial objective to train with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdversarialLoss {
    /// Non-saturating logistic GAN (StyleGAN2's default):
    /// `L_D = E softplus(-D(x)) + E softplus(D(G(z)))`,
    /// `L_G = E softplus(-D(G(z)))`.
    #[default]
    Logistic,
    /// Hinge GAN: `L_D = E relu(1 - D(x)) + E relu(1 + D(G(z)))`,
    /// `L_G = -E D(G(z))`.
    Hinge,
    /// Least-squares GAN with targets 1 (real) and 0 (fake):
    /// `L_D = ½ E (D(x) - 1)² + ½ E D(G(z))²`, `L_G = ½ E (D(G(z)) - 1)²`.
    LeastSquares,
    /// Wasserstein GAN: `L_D = E D(G(z)) - E D(x) + drift · E D(x)²`,
    /// `L_G = -E D(G(z))`. The paper's setting is drift 0.001 with a gradient
    /// penalty (use the R1 penalty of [`crate::r1`] for it).
    Wgan {
        /// Weight of the drift term that keeps real logits near zero.
        drift: f64,
    },
}

impl AdversarialLoss {
    /// Discriminator loss from the logits of real and of generated images.
    pub fn d_loss(&self, real: &Tensor, fake: &Tensor) -> Result<Tensor> {
        match *self {
            AdversarialLoss::Logistic => d_logistic(real, fake),
            AdversarialLoss::Hinge => d_hinge(real, fake),
            AdversarialLoss::LeastSquares => d_least_squares(real, fake),
            AdversarialLoss::Wgan { drift } => d_wgan(real, fake, drift),
        }
    }

    /// The fake half of the discriminator loss alone: what `d_loss` charges
    /// for `fake` (used for real faces shown with a wrong age, which count as
    /// fakes).
    pub fn d_fake_loss(&self, fake: &Tensor) -> Result<Tensor> {
        match *self {
            AdversarialLoss::Logistic => mean_all(&softplus(fake)?),
            AdversarialLoss::Hinge => mean_all(&(fake + 1.0)?.relu()?),
            AdversarialLoss::LeastSquares => Ok((mean_all(&fake.sqr()?)? * 0.5)?),
            AdversarialLoss::Wgan { .. } => mean_all(fake),
        }
    }

    /// Generator loss from the logits of generated images.
    pub fn g_loss(&self, fake: &Tensor) -> Result<Tensor> {
        match *self {
            AdversarialLoss::Logistic => g_logistic(fake),
            AdversarialLoss::Hinge | AdversarialLoss::Wgan { .. } => g_wgan(fake),
            AdversarialLoss::LeastSquares => g_least_squares(fake),
        }
    }
}

/// The generator's adversarial term as a [`Loss`]: reads the discriminator's
/// logits on the generated images as `output`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorAdversarial {
    /// The objective.
    pub kind: AdversarialLoss,
    /// Its weight.
    pub weight: f64,
}

impl Loss for GeneratorAdversarial {
    fn name(&self) -> &str {
        "adversarial"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` (the logits).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        self.kind.g_loss(input.output)
    }
}

/// Non-saturating logistic discriminator loss,
/// `mean softplus(-real) + mean softplus(fake)`.
pub fn d_logistic(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    Ok((mean_all(&softplus(&real.neg()?)?)? + mean_all(&softplus(fake)?)?)?)
}

/// Non-saturating logistic generator loss, `mean softplus(-fake)`.
pub fn g_logistic(fake: &Tensor) -> Result<Tensor> {
    mean_all(&softplus(&fake.neg()?)?)
}

/// Hinge discriminator loss, `mean relu(1 - real) + mean relu(1 + fake)`.
pub fn d_hinge(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    let r = mean_all(&real.affine(-1.0, 1.0)?.relu()?)?;
    let f = mean_all(&(fake + 1.0)?.relu()?)?;
    Ok((r + f)?)
}

/// Least-squares discriminator loss, `½ mean (real - 1)² + ½ mean fake²`.
pub fn d_least_squares(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    let r = mean_all(&(real - 1.0)?.sqr()?)?;
    let f = mean_all(&fake.sqr()?)?;
    Ok(((r + f)? * 0.5)?)
}

/// Least-squares generator loss, `½ mean (fake - 1)²`.
pub fn g_least_squares(fake: &Tensor) -> Result<Tensor> {
    Ok((mean_all(&(fake - 1.0)?.sqr()?)? * 0.5)?)
}

/// Wasserstein critic loss, `mean fake - mean real + drift · mean real²`.
pub fn d_wgan(real: &Tensor, fake: &Tensor, drift: f64) -> Result<Tensor> {
    let mut l = (mean_all(fake)? - mean_all(real)?)?;
    if drift != 0.0 {
        l = (l + (mean_all(&real.sqr()?)? * drift)?)?;
    }
    Ok(l)
}

/// Wasserstein (and hinge) generator loss, `-mean fake`.
pub fn g_wgan(fake: &Tensor) -> Result<Tensor> {
    Ok(mean_all(fake)?.neg()?)
}
