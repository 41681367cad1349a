//! Per-channel affine maps: `act(x·scale[c] + bias[c])` on `(n, c, ...)`
//! tensors, scale and bias each optional, with a fused leaky ReLU.

use super::activation::{leaky_relu, unary_bwd};
use super::reduce::{channel_dot, channel_sum};
use super::{chan_plane, check_param, contiguous_grad, data, is_f64, uses_fast_path, CpuElem};
use crate::kernels::eltwise::{self, UnaryBwd};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `act(x·s[c] + b[c])` on `(n, c, ...)`; scale and bias optional.
#[derive(Clone, Copy, Debug)]
struct ChannelAffineOp {
    has_scale: bool,
    slope: Option<f64>,
}

impl ChannelAffineOp {
    fn run<T: CpuElem>(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        p: &[(&CpuStorage, &Layout)],
    ) -> Result<(CpuStorage, Shape)> {
        let name = "channel affine";
        let (c, plane) = chan_plane(name, lx)?;
        let x = data::<T>(name, sx, lx)?;
        let mut params = Vec::with_capacity(2);
        for &(s, l) in p {
            check_param(name, "per-channel parameter", l, c)?;
            params.push(data::<T>(name, s, l)?);
        }
        let (scale, bias) = match (self.has_scale, params.as_slice()) {
            (true, [s]) => (Some(*s), None),
            (true, [s, b]) => (Some(*s), Some(*b)),
            (false, [b]) => (None, Some(*b)),
            _ => bail!("{name}: wrong number of parameters"),
        };
        let y = eltwise::channel_affine(x, c, plane, scale, bias, self.slope.map(T::from_f64));
        Ok((T::wrap(y), lx.shape().clone()))
    }

    fn grad_pre(&self, res: &Tensor, grad: &Tensor) -> Result<Tensor> {
        match self.slope {
            Some(a) => unary_bwd(UnaryBwd::LeakyRelu(a), res, grad),
            None => contiguous_grad(grad),
        }
    }
}

impl CustomOp2 for ChannelAffineOp {
    fn name(&self) -> &'static str {
        if self.has_scale {
            "agesynth-channel-scale"
        } else {
            "agesynth-channel-bias"
        }
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if is_f64(s1)? {
            self.run::<f64>(s1, l1, &[(s2, l2)])
        } else {
            self.run::<f32>(s1, l1, &[(s2, l2)])
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gp = self.grad_pre(res, grad)?;
        if self.has_scale {
            let dx = channel_affine(&gp, Some(p), None, None)?;
            let dp = channel_dot(&gp, x)?.reshape(p.shape())?;
            Ok((Some(dx), Some(dp)))
        } else {
            let dp = channel_sum(&gp)?.reshape(p.shape())?;
            Ok((Some(gp), Some(dp)))
        }
    }
}

impl CustomOp3 for ChannelAffineOp {
    fn name(&self) -> &'static str {
        "agesynth-channel-scale-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if is_f64(s1)? {
            self.run::<f64>(s1, l1, &[(s2, l2), (s3, l3)])
        } else {
            self.run::<f32>(s1, l1, &[(s2, l2), (s3, l3)])
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        s: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gp = self.grad_pre(res, grad)?;
        let dx = channel_affine(&gp, Some(s), None, None)?;
        let ds = channel_dot(&gp, x)?.reshape(s.shape())?;
        let db = channel_sum(&gp)?.reshape(b.shape())?;
        Ok((Some(dx), Some(ds), Some(db)))
    }
}

/// Per-channel `act(x·scale[c] + bias[c])` on `x (n, c, ...)`, with `scale`
/// and `bias` of `c` elements (shape `(c)` or `(1, c, 1, 1)`), either
/// optional, and a fused leaky ReLU when `slope ≥ 0` is given.
pub fn channel_affine(
    x: &Tensor,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
    slope: Option<f64>,
) -> Result<Tensor> {
    if uses_fast_path(x) && slope.is_none_or(|a| a >= 0.0) {
        let x = x.contiguous()?;
        return match (scale, bias) {
            (Some(s), Some(b)) => x.apply_op3(
                &s.contiguous()?,
                &b.contiguous()?,
                ChannelAffineOp {
                    has_scale: true,
                    slope,
                },
            ),
            (Some(s), None) => x.apply_op2(
                &s.contiguous()?,
                ChannelAffineOp {
                    has_scale: true,
                    slope,
                },
            ),
            (None, Some(b)) => x.apply_op2(
                &b.contiguous()?,
                ChannelAffineOp {
                    has_scale: false,
                    slope,
                },
            ),
            (None, None) => match slope {
                Some(a) => leaky_relu(&x, a),
                None => Ok(x),
            },
        };
    }
    let c = x.dim(1)?;
    let mut shape = vec![1; x.rank()];
    shape[1] = c;
    let mut y = x.clone();
    if let Some(s) = scale {
        y = y.broadcast_mul(&s.reshape(shape.as_slice())?)?;
    }
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape(shape.as_slice())?)?;
    }
    match slope {
        Some(a) => candle_nn::ops::leaky_relu(&y, a),
        None => Ok(y),
    }
}

/// Scale-and-bias per channel: `x·scale[c] + bias[c]`.
pub fn scale_bias(x: &Tensor, scale: &Tensor, bias: &Tensor) -> Result<Tensor> {
    channel_affine(x, Some(scale), Some(bias), None)
}

/// Fused per-channel bias and leaky ReLU: `leaky_relu(x + bias[c], slope)`.
pub fn bias_leaky_relu(x: &Tensor, bias: &Tensor, slope: f64) -> Result<Tensor> {
    channel_affine(x, None, Some(bias), Some(slope))
}
