//! # agesynth-losses
//!
//! Training losses of agesynth. For now the adversarial ones:
//!
//! - [`adversarial`]: the discriminator and generator losses of the
//!   non-saturating logistic GAN (computed with a stable softplus, never with a
//!   binary cross-entropy that overflows on saturated logits), the hinge GAN,
//!   the least-squares GAN and the Wasserstein GAN (with the optional drift
//!   term of progressive GANs), selected by [`AdversarialLoss`];
//! - [`r1`]: the R1 gradient penalty `E ||∇ₓ D(x)||²` on real images. Candle's
//!   `backward` does not build a graph of the gradient itself (no
//!   double-backward), so [`r1::r1_penalty`] returns the exact penalty value
//!   together with a differentiable surrogate whose parameter gradient equals
//!   the penalty's: twice the forward-mode directional derivative of the
//!   discriminator along its (detached) input gradient; see the module docs.
//!
//! Every loss takes raw logits and returns a scalar (0-dimensional) tensor.
//!
//! The non-adversarial terms are types behind one trait, [`Loss`] (a name,
//! a weight and a scalar value from a [`LossInput`]):
//!
//! - [`reconstruction`]: L1, L2 and SSIM between output and reference;
//! - [`identity`]: the distance between identity embeddings of output and
//!   input through a `&dyn FaceEmbedder`, backpropagated into the generator;
//! - [`age`]: cross-entropy of the target age group from group logits (a
//!   discriminator's head, or an age estimator via
//!   [`age::logits_from_ages`]);
//! - [`gender`]: the gender a frozen classifier reads in the output,
//!   against each row's known gender;
//! - [`tv`]: total variation, and the terms on the change from input to
//!   output: its colour edges ([`ChromaChangeLoss`]), its sharp part
//!   ([`SharpChangeLoss`]), its dark patches ([`DarkPatchLoss`]) and its
//!   pale ones ([`PalePatchLoss`]).
#![deny(missing_docs)]

pub mod adversarial;
pub mod r1;

pub mod age;
pub mod gender;
pub mod identity;
pub mod loss;
pub mod realism;
pub mod reconstruction;
pub mod tv;

pub use adversarial::{softplus, AdversarialLoss, GeneratorAdversarial};
pub use r1::{r1_penalty, r1_value, R1};

pub use age::{AgeLoss, ClassifierAgeLoss};
pub use gender::ClassifierGenderLoss;
pub use identity::{EmbeddingDistance, IdentityLoss, SharedIdentityLoss};
pub use loss::{Loss, LossInput};
pub use realism::RealismLoss;
pub use reconstruction::{Reconstruction, ReconstructionLoss};
pub use tv::{
    ChromaChangeLoss, ColourSpeckLoss, DarkPatchLoss, PalePatchLoss, SharpChangeLoss,
    TotalVariationLoss,
};
