//! Per-channel reductions: `Σ x` and `Σ x·y` over every dimension of an
//! `(n, c, ...)` tensor but the channel one.

use super::affine::channel_affine;
use super::{chan_plane, data, is_f64, uses_fast_path, CpuElem};
use crate::kernels::eltwise;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Per-channel reduction: `Σ x` or `Σ x·y` over all dimensions but 1.
#[derive(Clone, Copy, Debug)]
struct ChannelReduceOp;

impl ChannelReduceOp {
    fn run<T: CpuElem>(
        x: (&CpuStorage, &Layout),
        y: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let name = "channel sum";
        let (c, plane) = chan_plane(name, x.1)?;
        let xs = data::<T>(name, x.0, x.1)?;
        let ys = match y {
            Some((s, l)) => {
                if l.shape() != x.1.shape() {
                    bail!("{name}: shapes {:?} and {:?} differ", x.1.dims(), l.dims());
                }
                Some(data::<T>(name, s, l)?)
            }
            None => None,
        };
        Ok((
            T::wrap(eltwise::channel_reduce(xs, ys, c, plane)),
            Shape::from(c),
        ))
    }
}

fn expand_channels(g: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1; like.rank()];
    shape[1] = g.elem_count();
    g.reshape(shape.as_slice())?
        .broadcast_as(like.shape())?
        .contiguous()
}

impl CustomOp1 for ChannelReduceOp {
    fn name(&self) -> &'static str {
        "agesynth-channel-sum"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if is_f64(s)? {
            Self::run::<f64>((s, l), None)
        } else {
            Self::run::<f32>((s, l), None)
        }
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(expand_channels(grad, x)?))
    }
}

impl CustomOp2 for ChannelReduceOp {
    fn name(&self) -> &'static str {
        "agesynth-channel-dot"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if is_f64(s1)? {
            Self::run::<f64>((s1, l1), Some((s2, l2)))
        } else {
            Self::run::<f32>((s1, l1), Some((s2, l2)))
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = channel_affine(y, Some(grad), None, None)?;
        let dy = channel_affine(x, Some(grad), None, None)?;
        Ok((Some(dx), Some(dy)))
    }
}

/// Per-channel sum of `x (n, c, ...)` over every dimension but 1; shape `(c)`.
pub fn channel_sum(x: &Tensor) -> Result<Tensor> {
    if uses_fast_path(x) {
        return x.contiguous()?.apply_op1(ChannelReduceOp);
    }
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    x.sum(dims.as_slice())
}

/// Per-channel dot product `Σ x·y` over every dimension but 1; shape `(c)`.
pub fn channel_dot(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    if uses_fast_path(x) {
        return x.contiguous()?.apply_op2(&y.contiguous()?, ChannelReduceOp);
    }
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    x.mul(y)?.sum(dims.as_slice())
}
