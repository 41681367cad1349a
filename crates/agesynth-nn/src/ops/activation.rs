//! Elementwise activations: leaky ReLU, tanh, sigmoid and softplus as
//! custom ops, and the ops for their gradients (which can themselves be
//! differentiated).

use super::{contiguous_grad, data, is_f64, single_element, uses_fast_path};
use crate::kernels::eltwise::{self, Unary, UnaryBwd};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

#[derive(Clone, Copy, Debug)]
struct UnaryOp(Unary);

impl CustomOp1 for UnaryOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Unary::LeakyRelu(_) => "agesynth-leaky-relu",
            Unary::Tanh => "agesynth-tanh",
            Unary::Sigmoid => "agesynth-sigmoid",
            Unary::Softplus => "agesynth-softplus",
        }
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let st = if is_f64(s)? {
            CpuStorage::F64(eltwise::unary(self.0, data::<f64>(self.name(), s, l)?))
        } else {
            CpuStorage::F32(eltwise::unary(self.0, data::<f32>(self.name(), s, l)?))
        };
        Ok((st, l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = match self.0 {
            Unary::LeakyRelu(a) => unary_bwd(UnaryBwd::LeakyRelu(a), x, grad)?,
            Unary::Tanh => unary_bwd(UnaryBwd::Tanh, res, grad)?,
            Unary::Sigmoid => unary_bwd(UnaryBwd::Sigmoid, res, grad)?,
            Unary::Softplus => unary_bwd(UnaryBwd::Softplus, x, grad)?,
        };
        Ok(Some(g))
    }
}

#[derive(Clone, Copy, Debug)]
struct UnaryBwdOp(UnaryBwd);

impl CustomOp2 for UnaryBwdOp {
    fn name(&self) -> &'static str {
        "agesynth-activation-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!(
                "activation grad: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let st = if is_f64(s1)? {
            let (v, g) = (
                data::<f64>(self.name(), s1, l1)?,
                data::<f64>(self.name(), s2, l2)?,
            );
            CpuStorage::F64(eltwise::unary_bwd(self.0, v, g))
        } else {
            let (v, g) = (
                data::<f32>(self.name(), s1, l1)?,
                data::<f32>(self.name(), s2, l2)?,
            );
            CpuStorage::F32(eltwise::unary_bwd(self.0, v, g))
        };
        Ok((st, l1.shape().clone()))
    }
    /// `o = f'(v)·g` is linear in `g`; its derivative in `v` is composed.
    fn bwd(
        &self,
        v: &Tensor,
        g: &Tensor,
        _res: &Tensor,
        gg: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dg = unary_bwd(self.0, v, gg)?;
        let dv = match self.0 {
            UnaryBwd::LeakyRelu(_) => None,
            UnaryBwd::Tanh => Some(((v * -2.0)?.mul(g)?.mul(gg))?),
            UnaryBwd::Sigmoid => Some(((v * -2.0)? + 1.0)?.mul(g)?.mul(gg)?),
            UnaryBwd::Softplus => {
                let s = sigmoid(v)?;
                Some(unary_bwd(UnaryBwd::Sigmoid, &s, &g.mul(gg)?)?)
            }
        };
        Ok((dv, Some(dg)))
    }
}

/// The single value of a gradient broadcast from one element to its whole
/// shape (the gradient of a sum or mean), if `g` is one and is not itself
/// being differentiated.
fn broadcast_scalar(g: &Tensor) -> Result<Option<f64>> {
    if g.track_op() || g.elem_count() == 0 || !g.stride().iter().all(|&s| s == 0) {
        return Ok(None);
    }
    Ok(Some(
        single_element(g)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?,
    ))
}

/// `f'(v)·c` for a constant gradient `c` (see [`broadcast_scalar`]).
#[derive(Clone, Copy, Debug)]
struct UnaryBwdConstOp(UnaryBwd, f64);

impl CustomOp1 for UnaryBwdConstOp {
    fn name(&self) -> &'static str {
        "agesynth-activation-grad-const"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let st = if is_f64(s)? {
            CpuStorage::F64(eltwise::unary_bwd_const(
                self.0,
                data::<f64>(self.name(), s, l)?,
                self.1,
            ))
        } else {
            CpuStorage::F32(eltwise::unary_bwd_const(
                self.0,
                data::<f32>(self.name(), s, l)?,
                self.1 as f32,
            ))
        };
        Ok((st, l.shape().clone()))
    }
    /// The derivative in `v` of [`UnaryBwdOp`] with the gradient fixed at `c`.
    fn bwd(&self, v: &Tensor, res: &Tensor, gg: &Tensor) -> Result<Option<Tensor>> {
        let g = (v.ones_like()? * self.1)?;
        Ok(UnaryBwdOp(self.0).bwd(v, &g, res, gg)?.0)
    }
}

pub(super) fn unary_bwd(f: UnaryBwd, v: &Tensor, g: &Tensor) -> Result<Tensor> {
    if uses_fast_path(v) && g.dims() == v.dims() {
        if let Some(c) = broadcast_scalar(g)? {
            return v.contiguous()?.apply_op1(UnaryBwdConstOp(f, c));
        }
    }
    if uses_fast_path(v) {
        return v
            .contiguous()?
            .apply_op2(&contiguous_grad(g)?, UnaryBwdOp(f));
    }
    match f {
        UnaryBwd::LeakyRelu(a) => {
            let mask = v.gt(0.0)?;
            mask.where_cond(g, &(g * a)?)
        }
        UnaryBwd::Tanh => g.mul(&(v.sqr()?.neg()? + 1.0)?),
        UnaryBwd::Sigmoid => g.mul(&v.mul(&(v.neg()? + 1.0)?)?),
        UnaryBwd::Softplus => g.mul(&candle_nn::ops::sigmoid(v)?),
    }
}

fn unary(f: Unary, x: &Tensor) -> Result<Tensor> {
    if uses_fast_path(x) && !matches!(f, Unary::LeakyRelu(a) if a < 0.0) {
        return x.contiguous()?.apply_op1(UnaryOp(f));
    }
    match f {
        Unary::LeakyRelu(a) => candle_nn::ops::leaky_relu(x, a),
        Unary::Tanh => x.tanh(),
        Unary::Sigmoid => candle_nn::ops::sigmoid(x),
        Unary::Softplus => x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?,
    }
}

/// Leaky ReLU: `x` where `x > 0`, else `slope·x`.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    unary(Unary::LeakyRelu(slope), x)
}

/// Hyperbolic tangent.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    unary(Unary::Tanh, x)
}

/// Logistic sigmoid `1 / (1 + e^{−x})`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    unary(Unary::Sigmoid, x)
}

/// Softplus `ln(1 + eˣ)`, computed without overflow.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    unary(Unary::Softplus, x)
}
