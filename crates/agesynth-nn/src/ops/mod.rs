//! Tensor-level operations: candle custom ops running our CPU kernels, with
//! their backward passes written through the same ops, and a fallback to
//! candle's own ops on other devices and dtypes.
//!
//! Every function here but the optimiser updates takes NCHW tensors (channel
//! dimension 1). On a CPU device with `f32` or `f64` data it runs the kernels
//! of [`crate::kernels`]; anywhere else (CUDA, half precision) it composes
//! candle's built-in ops, so the same model code runs everywhere.
//!
//! The ops are grouped by family, one private module each, and everything
//! public is re-exported here: convolutions, elementwise activations,
//! per-channel affine maps, per-channel reductions and StyleGAN2's
//! modulated convolution. This module holds what they share: the
//! convolution hyper-parameters, the CPU storage helpers and the macro that
//! writes a `CustomOp3::cpu_fwd`.

use crate::kernels::eltwise::UnaryKernel;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Tensor};

/// `CustomOp3::cpu_fwd` for an op whose `run::<T>` takes its three
/// `(storage, layout)` pairs: f64 or f32 by the first input's dtype.
macro_rules! cpu_fwd3_by_dtype {
    () => {
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
                self.run::<f64>([(s1, l1), (s2, l2), (s3, l3)])
            } else {
                self.run::<f32>([(s1, l1), (s2, l2), (s3, l3)])
            }
        }
    };
}

// The op families. The macro above is defined first so that they can use it.
mod activation;
mod affine;
mod conv;
mod modconv;
mod optim;
mod pad;
mod reduce;

pub use activation::{leaky_relu, sigmoid, softplus, tanh};
pub use affine::{bias_leaky_relu, channel_affine, scale_bias};
pub use conv::{conv2d, conv2d_act, conv2d_out_size, conv_transpose2d, conv_transpose2d_act};
pub use modconv::{modulated_conv2d, modulated_conv2d_grouped, modulated_conv2d_unfused};
pub use optim::{adam_update, ema_update, fused_update_supported};
pub use pad::{pad_same, PadWith};
pub use reduce::{channel_dot, channel_sum};

/// Hyper-parameters of a 2-D convolution (same on both axes), as in
/// `candle_nn::Conv2dConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    /// Zero padding on each side.
    pub padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        Self {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Hyper-parameters of a 2-D transposed convolution, as in PyTorch's
/// `ConvTranspose2d` (weight layout `(in, out/groups, kh, kw)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTransposeParams {
    /// Padding removed from each side of the full output.
    pub padding: usize,
    /// Extra rows/columns added to one side of the output.
    pub output_padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTransposeParams {
    fn default() -> Self {
        Self {
            padding: 0,
            output_padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Whether `t` runs on our kernels (CPU, f32 or f64).
pub fn uses_fast_path(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

// ---------------------------------------------------------------------------
// Storage helpers.

trait CpuElem: UnaryKernel {
    fn get(s: &CpuStorage) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> CpuStorage;
}
impl CpuElem for f32 {
    fn get(s: &CpuStorage) -> Option<&[f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}
impl CpuElem for f64 {
    fn get(s: &CpuStorage) -> Option<&[f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

fn data<'a, T: CpuElem>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: input is not contiguous")
    };
    match T::get(s) {
        Some(v) => Ok(&v[a..b]),
        None => bail!("{op}: mixed or unsupported dtypes ({:?})", s.dtype()),
    }
}

fn is_f64(s: &CpuStorage) -> Result<bool> {
    match s {
        CpuStorage::F32(_) => Ok(false),
        CpuStorage::F64(_) => Ok(true),
        s => bail!(
            "agesynth-nn kernels support f32 and f64, got {:?}",
            s.dtype()
        ),
    }
}

/// `g` as a contiguous tensor. The gradient of a sum or mean arrives as one
/// value broadcast to the whole shape; candle would copy it element by
/// element through a strided index, so it is filled directly instead.
fn contiguous_grad(g: &Tensor) -> Result<Tensor> {
    if g.is_contiguous() {
        return Ok(g.clone());
    }
    if g.stride().iter().all(|&s| s == 0) && g.elem_count() > 0 {
        let v = single_element(g)?;
        return match g.dtype() {
            DType::F32 => Tensor::full(v.to_scalar::<f32>()?, g.shape(), g.device()),
            DType::F64 => Tensor::full(v.to_scalar::<f64>()?, g.shape(), g.device()),
            _ => g.contiguous(),
        };
    }
    g.contiguous()
}

fn dims4(op: &str, what: &str, l: &Layout) -> Result<(usize, usize, usize, usize)> {
    match l.dims() {
        &[a, b, c, d] => Ok((a, b, c, d)),
        d => bail!("{op}: {what} must be 4-D (n, c, h, w), got shape {d:?}"),
    }
}

/// `(channels, plane)` of an `(n, c, ...)` tensor.
fn chan_plane(op: &str, l: &Layout) -> Result<(usize, usize)> {
    let d = l.dims();
    if d.len() < 2 {
        bail!("{op}: expected a tensor with a channel dimension (n, c, ...), got shape {d:?}");
    }
    Ok((d[1], d[2..].iter().product()))
}

fn check_param(op: &str, what: &str, l: &Layout, c: usize) -> Result<()> {
    if l.shape().elem_count() != c || l.dims().iter().filter(|&&d| d != 1).count() > 1 {
        bail!(
            "{op}: {what} must have {c} elements (one per channel), got shape {:?}",
            l.dims()
        );
    }
    Ok(())
}

/// The first element of a non-empty tensor as a 0-dimensional tensor,
/// through views only (`get`/`squeeze` would copy each strided slice).
fn single_element(g: &Tensor) -> Result<Tensor> {
    let mut v = g.clone();
    for d in 0..v.rank() {
        v = v.narrow(d, 0, 1)?;
    }
    v.reshape(())
}

/// The gradients of a three-input op.
type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);
