//! The R1 gradient penalty (Mescheder et al. 2018), in a form candle can train.
//!
//! R1 penalises the discriminator's gradient on real images:
//!
//! ```text
//! R1(θ) = (1/N) ‖g‖²,   g = ∇ₓ f(θ, x),   f(θ, x) = Σ logits of D_θ on the batch x
//! ```
//!
//! (the sum over the batch makes `g` stack the per-image gradients, so this is
//! the batch mean of the per-image squared gradient norms). Training needs
//! `∇_θ R1`, a second derivative, but candle's `backward` returns gradients as
//! detached tensors: there is no double-backward. We use instead
//!
//! ```text
//! ∇_θ ‖g‖² = 2 J_θ(g)ᵀ g = 2 ∇_θ [ g₀ · ∇ₓ f(θ, x) ]          (g₀ = g held constant)
//!          = 2 ‖g₀‖ ∇_θ ∂_v f(θ, x)                            (v = g₀ / ‖g₀‖)
//!          ≈ ‖g₀‖ ∇_θ [ f(θ, x + h v) − f(θ, x − h v) ] / h       (central difference)
//! ```
//!
//! The surrogate `S(θ) = ‖g₀‖ (f(θ, x + hv) − f(θ, x − hv)) / (h N)` is
//! an ordinary function of θ built from two forward passes, so candle
//! backpropagates it to the parameters, and its gradient is `∇_θ R1` up to the
//! central-difference error. That error is `O(h²)` where `f` is smooth in `x`,
//! and exactly zero where `f` is linear along the segment `x ± hv` — the case
//! almost everywhere for networks built of convolutions, leaky ReLUs, average
//! pooling and linear layers (only the minibatch-stddev square root and
//! units whose leaky-ReLU kink lies within the step contribute). In f32,
//! rounding adds about `ε_f32 ‖∇_θ f‖ / (h ‖∇_θ ∂_v f‖)`, which is why `h` is
//! not taken tiny: the default step moves each pixel by
//! [`R1Options::rel_step`] (`h = rel_step · √numel(x)`, `v` a unit vector).
//! The test `tests/r1.rs` of `agesynth-cstylegan` checks the result against
//! finite differences of the exact R1 value on a real discriminator.
//!
//! The returned [`R1::loss`] has the exact penalty as its *value* and the
//! surrogate's *gradient* (`R1 + S − detach(S)`), so it can be logged and
//! weighted like any other loss term.

use agesynth_core::{Error, Result};
use candle_core::{DType, Tensor, Var};

/// Options of [`r1_penalty`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct R1Options {
    /// Root-mean-square change of each input element in the central
    /// difference, in image units (images span `[-1, 1]`). The default,
    /// `1e-3`, balances f32 rounding against the curvature of the network.
    /// Use a much smaller step (e.g. `1e-6`) in f64.
    pub rel_step: f64,
}

impl Default for R1Options {
    fn default() -> Self {
        Self { rel_step: 1e-3 }
    }
}

/// The R1 penalty of a batch: its value and a loss tensor to backpropagate.
#[derive(Debug, Clone)]
pub struct R1 {
    /// The exact penalty `(1/N) Σᵢ ‖∇_{xᵢ} D‖²`, from one backward pass.
    pub value: f64,
    /// Scalar tensor whose value is [`R1::value`] and whose gradient with
    /// respect to the discriminator's parameters is the gradient of the
    /// penalty (through the central-difference surrogate). Multiply by
    /// `γ/2 · interval` for lazy regularisation and add it to the D loss.
    pub loss: Tensor,
}

/// Sum of all elements of the discriminator's output, checked finite-able.
fn sum_logits(d: &dyn Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> Result<Tensor> {
    Ok(d(x)?.sum_all()?)
}

/// The exact R1 value and the input gradient `∇ₓ Σ D(x)` (detached), from one
/// forward and one backward pass of `d` on `real`.
///
/// The backward pass also computes (and drops) the parameter gradients:
/// candle has no way to ask for the input gradient alone.
pub fn r1_value(d: &dyn Fn(&Tensor) -> Result<Tensor>, real: &Tensor) -> Result<(f64, Tensor)> {
    let n = batch_size(real)?;
    let x = Var::from_tensor(&real.detach())?;
    let f = sum_logits(d, x.as_tensor())?;
    let grads = f.backward()?;
    let g = match grads.get(x.as_tensor()) {
        Some(g) => g.detach(),
        // The output does not depend on the input: the penalty is zero.
        None => x.as_tensor().zeros_like()?,
    };
    let sq = g
        .to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?;
    Ok((sq / n as f64, g))
}

fn batch_size(x: &Tensor) -> Result<usize> {
    match x.dims().first() {
        Some(&n) if n > 0 => Ok(n),
        _ => Err(Error::InvalidInput(format!(
            "R1 needs a non-empty batch, got a tensor of shape {:?}",
            x.dims()
        ))),
    }
}

/// The R1 penalty of the discriminator `d` (images to logits) on the batch of
/// real images `real`: its exact value and a differentiable loss whose
/// parameter gradient is the penalty's. Costs three forward and one backward
/// pass of `d`, plus the backward pass of the returned loss by the caller.
///
/// Errors if `d` fails, the batch is empty, or the gradient is not finite.
pub fn r1_penalty(
    d: &dyn Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    opts: R1Options,
) -> Result<R1> {
    let n = batch_size(real)?;
    let (value, g) = r1_value(d, real)?;
    if !value.is_finite() {
        return Err(Error::InvalidInput(format!(
            "the discriminator's input gradient is not finite (R1 = {value})"
        )));
    }
    let dtype = real.dtype();
    let value_t = Tensor::new(value, real.device())?.to_dtype(dtype)?;
    let g_norm = (value * n as f64).sqrt();
    if g_norm == 0.0 {
        // No input gradient: the penalty and its gradient are both zero.
        return Ok(R1 {
            value,
            loss: value_t,
        });
    }
    if !(opts.rel_step > 0.0 && opts.rel_step.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "R1 step must be positive and finite, got {}",
            opts.rel_step
        )));
    }
    let h = opts.rel_step * (real.elem_count() as f64).sqrt();
    // h v = (h / ‖g‖) g
    let hv = (g * (h / g_norm))?;
    let x = real.detach();
    let f_plus = sum_logits(d, &(&x + &hv)?)?;
    let f_minus = sum_logits(d, &(&x - &hv)?)?;
    let surrogate = ((f_plus - f_minus)? * (g_norm / (h * n as f64)))?;
    let loss = ((&surrogate - surrogate.detach())? + value_t)?;
    Ok(R1 { value, loss })
}
