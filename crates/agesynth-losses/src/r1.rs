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
//! ∇_θ ‖g‖² = 2 J_θ(g)ᵀ g = 2 ∇_θ [ g₀ · ∇ₓ f(θ, x) ]     (g₀ = g held constant)
//!          = 2 ∇_θ [ ∂f/∂x (θ, x) · g₀ ]                   (a Jacobian-vector product)
//! ```
//!
//! The directional derivative `∂f/∂x · g₀` is computed by *forward-mode*
//! differentiation: the discriminator propagates a tangent beside its
//! activations (`Discriminator::forward_jvp` in `agesynth-cstylegan`), built
//! from ordinary candle ops, so candle backpropagates it to the parameters.
//! The result is the exact R1 gradient (up to rounding), the same one a
//! double-backward gives: leaky ReLUs contribute their slope masks as
//! constants, their second derivative being zero almost everywhere.
//!
//! A central difference `(f(x + hv) − f(x − hv)) / 2h` in place of the
//! forward mode is *not* adequate: for piecewise-linear networks every unit
//! whose kink falls inside the step contributes an `O(1/h)` term to the
//! parameter gradient, and with millions of units some always do (this was
//! measured: errors of several times the gradient's own size).
//!
//! The returned [`R1::loss`] has the exact penalty as its *value* and the
//! penalty's *gradient* (`R1 + S − detach(S)` with `S = (2/N) ∂f/∂x · g₀`), so
//! it can be logged and weighted like any other loss term.

use agesynth_core::{Error, Result};
use candle_core::{DType, Tensor, Var};

/// The R1 penalty of a batch: its value and a loss tensor to backpropagate.
#[derive(Debug, Clone)]
pub struct R1 {
    /// The exact penalty `(1/N) Σᵢ ‖∇_{xᵢ} D‖²`, from one backward pass.
    pub value: f64,
    /// Scalar tensor whose value is [`R1::value`] and whose gradient with
    /// respect to the discriminator's parameters is the gradient of the
    /// penalty. Multiply by `γ/2 · interval` for lazy regularisation and
    /// add it to (or backpropagate it beside) the D loss.
    pub loss: Tensor,
}

/// A discriminator as a function of images: logits (any shape; they are
/// summed).
pub type DiscriminatorFn<'a> = dyn Fn(&Tensor) -> Result<Tensor> + 'a;

/// A discriminator's forward-mode derivative: `(images, tangent)` ->
/// directional derivative of the logits along the tangent (same shape as the
/// logits), differentiable with respect to the parameters.
pub type DiscriminatorJvpFn<'a> = dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a;

/// The exact R1 value and the input gradient `∇ₓ Σ D(x)` (detached), from one
/// forward and one backward pass of `d` on `real`.
///
/// The backward pass also computes (and drops) the parameter gradients:
/// candle has no way to ask for the input gradient alone.
pub fn r1_value(d: &DiscriminatorFn, real: &Tensor) -> Result<(f64, Tensor)> {
    let n = batch_size(real)?;
    let x = Var::from_tensor(&real.detach())?;
    let f = d(x.as_tensor())?.sum_all()?;
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

/// The R1 penalty of a discriminator on the batch of real images `real`: its
/// exact value and a differentiable loss whose parameter gradient is the
/// penalty's. `d` maps images to logits; `d_jvp` maps `(images, tangent)` to
/// the directional derivative of those logits (see the module docs). Costs
/// one forward and backward pass of `d` and one forward-mode pass (about two
/// forward passes), plus the backward pass of the returned loss by the
/// caller.
///
/// Errors if the discriminator fails, the batch is empty, or the gradient is
/// not finite.
pub fn r1_penalty(d: &DiscriminatorFn, d_jvp: &DiscriminatorJvpFn, real: &Tensor) -> Result<R1> {
    let n = batch_size(real)?;
    let (value, g) = r1_value(d, real)?;
    if !value.is_finite() {
        return Err(Error::InvalidInput(format!(
            "the discriminator's input gradient is not finite (R1 = {value})"
        )));
    }
    let value_t = Tensor::new(value, real.device())?.to_dtype(real.dtype())?;
    if value == 0.0 {
        // No input gradient: the penalty and its gradient are both zero.
        return Ok(R1 {
            value,
            loss: value_t,
        });
    }
    let directional = d_jvp(&real.detach(), &g)?.sum_all()?;
    let surrogate = (directional * (2.0 / n as f64))?;
    let loss = ((&surrogate - surrogate.detach())? + value_t)?;
    Ok(R1 { value, loss })
}
