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
//!   the penalty's (a central difference of a directional derivative; see the
//!   module docs for the derivation and the error bound).
//!
//! Every loss takes raw logits and returns a scalar (0-dimensional) tensor.
#![deny(missing_docs)]

pub mod adversarial;
pub mod r1;

pub use adversarial::{softplus, AdversarialLoss};
pub use r1::{r1_penalty, r1_value, R1Options, R1};
