//! Tensor-level operations: candle custom ops running our CPU kernels, with
//! their backward passes written through the same ops, and a fallback to
//! candle's own ops on other devices and dtypes.
//!
//! Every function here takes NCHW tensors (channel dimension 1). On a CPU
//! device with `f32` or `f64` data it runs the kernels of [`crate::kernels`];
//! anywhere else (CUDA, half precision) it composes candle's built-in ops,
//! so the same model code runs everywhere.

use crate::kernels::conv::{
    conv2d_bwd_input, conv2d_bwd_weight, conv2d_fwd, conv2d_fwd_and_weight_grad,
    fused_fwd_weight_applies, ConvGeom,
};
use crate::kernels::eltwise::{self, Unary, UnaryBwd, UnaryKernel};
use crate::kernels::winograd::{self, Scales};
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

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

use candle_core::backend::BackendStorage;

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

// ---------------------------------------------------------------------------
// Convolutions.

type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// `act(conv2d(x, w) + b)`; `b` optional, `act` a leaky ReLU when `slope` is set.
#[derive(Clone, Copy, Debug)]
struct Conv2dOp {
    p: ConvParams,
    slope: Option<f64>,
}

impl Conv2dOp {
    fn geom(&self, lx: &Layout, lw: &Layout) -> Result<ConvGeom> {
        let (n, cin, h, w) = dims4("conv2d", "input", lx)?;
        let (cout, cin_g, kh, kw) = dims4("conv2d", "weight", lw)?;
        if cin_g * self.p.groups != cin {
            bail!(
                "conv2d: weight {:?} does not fit {cin} input channels with groups={}",
                lw.dims(),
                self.p.groups
            );
        }
        ConvGeom::new(
            n,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            self.p.stride,
            self.p.padding,
            self.p.dilation,
            self.p.groups,
        )
        .map_err(|e| candle_core::Error::Msg(format!("conv2d: {e}")))
    }

    fn run<T: CpuElem>(
        &self,
        s: [(&CpuStorage, &Layout); 2],
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(s[0].1, s[1].1)?;
        let x = data::<T>("conv2d", s[0].0, s[0].1)?;
        let w = data::<T>("conv2d", s[1].0, s[1].1)?;
        let b = match b {
            Some((sb, lb)) => {
                check_param("conv2d", "bias", lb, g.cout)?;
                Some(data::<T>("conv2d", sb, lb)?)
            }
            None => None,
        };
        let y = conv2d_fwd(x, w, b, self.slope.map(T::from_f64), &g);
        Ok((T::wrap(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
    }

    /// Gradients of (x, w, b) given the pre-activation gradient.
    /// Gradients of (x, w, b) given the output gradient; skipped for inputs
    /// that do not need one.
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads3> {
        let gp = match self.slope {
            Some(a) => unary_bwd(UnaryBwd::LeakyRelu(a), res, grad)?,
            None => contiguous_grad(grad)?,
        };
        let (_, _, h, wd) = x.dims4()?;
        let dx = if x.track_op() {
            let tp = ConvTransposeOp {
                p: self.p,
                out_h: h,
                out_w: wd,
                slope: None,
            };
            Some(gp.apply_op2(w, tp)?)
        } else {
            None
        };
        let (_, _, kh, kw) = w.dims4()?;
        let dw = if w.track_op() {
            Some(x.apply_op2(&gp, ConvGradWeightOp { p: self.p, kh, kw })?)
        } else {
            None
        };
        let db = match b {
            Some(b) if b.track_op() => Some(channel_sum(&gp)?.reshape(b.shape())?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "agesynth-conv2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if is_f64(s1)? {
            self.run::<f64>([(s1, l1), (s2, l2)], None)
        } else {
            self.run::<f32>([(s1, l1), (s2, l2)], None)
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "agesynth-conv2d-bias"
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
            self.run::<f64>([(s1, l1), (s2, l2)], Some((s3, l3)))
        } else {
            self.run::<f32>([(s1, l1), (s2, l2)], Some((s3, l3)))
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, Some(b), res, grad)
    }
}

/// `act(conv_transpose2d(x, w) + b)` with an explicit output size; `w` has
/// the layout `(cin, cout/groups, kh, kw)`. This is also the input gradient of
/// [`Conv2dOp`].
#[derive(Clone, Copy, Debug)]
struct ConvTransposeOp {
    p: ConvParams,
    out_h: usize,
    out_w: usize,
    slope: Option<f64>,
}

impl ConvTransposeOp {
    /// The geometry of the adjoint convolution (output → input).
    fn geom(&self, lx: &Layout, lw: &Layout) -> Result<ConvGeom> {
        let (n, cin, h, w) = dims4("conv_transpose2d", "input", lx)?;
        let (wc, cout_g, kh, kw) = dims4("conv_transpose2d", "weight", lw)?;
        if wc != cin || cin % self.p.groups != 0 {
            bail!(
                "conv_transpose2d: weight {:?} does not fit {cin} input channels with groups={}",
                lw.dims(),
                self.p.groups
            );
        }
        let g = ConvGeom::new(
            n,
            cout_g * self.p.groups,
            self.out_h,
            self.out_w,
            cin,
            kh,
            kw,
            self.p.stride,
            self.p.padding,
            self.p.dilation,
            self.p.groups,
        )
        .map_err(|e| candle_core::Error::Msg(format!("conv_transpose2d: {e}")))?;
        if (g.ho, g.wo) != (h, w) {
            bail!(
                "conv_transpose2d: output {}x{} is inconsistent with input {h}x{w}",
                self.out_h,
                self.out_w
            );
        }
        Ok(g)
    }

    fn run<T: CpuElem>(
        &self,
        s: [(&CpuStorage, &Layout); 2],
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(s[0].1, s[1].1)?;
        let x = data::<T>("conv_transpose2d", s[0].0, s[0].1)?;
        let w = data::<T>("conv_transpose2d", s[1].0, s[1].1)?;
        let b = match b {
            Some((sb, lb)) => {
                check_param("conv_transpose2d", "bias", lb, g.cin)?;
                Some(data::<T>("conv_transpose2d", sb, lb)?)
            }
            None => None,
        };
        let y = conv2d_bwd_input(x, w, b, self.slope.map(T::from_f64), &g);
        Ok((T::wrap(y), Shape::from((g.n, g.cin, g.h, g.w))))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads3> {
        let gp = match self.slope {
            Some(a) => unary_bwd(UnaryBwd::LeakyRelu(a), res, grad)?,
            None => contiguous_grad(grad)?,
        };
        let (_, _, kh, kw) = w.dims4()?;
        if x.track_op() && w.track_op() && uses_fast_path(&gp) {
            // Both gradients read the same im2col of gp: one fused pass.
            let pair = ConvPairOp { p: self.p, kh, kw };
            if pair.applies(&gp, w)? {
                let flat = gp.apply_op3(&w.contiguous()?, &x.contiguous()?, pair)?;
                let dx = flat.narrow(0, 0, x.elem_count())?.reshape(x.shape())?;
                let dw = flat
                    .narrow(0, x.elem_count(), w.elem_count())?
                    .reshape(w.shape())?;
                let db = match b {
                    Some(b) if b.track_op() => Some(channel_sum(&gp)?.reshape(b.shape())?),
                    _ => None,
                };
                return Ok((Some(dx), Some(dw), db));
            }
        }
        let dx = if x.track_op() {
            Some(gp.apply_op2(
                w,
                Conv2dOp {
                    p: self.p,
                    slope: None,
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(gp.apply_op2(x, ConvGradWeightOp { p: self.p, kh, kw })?)
        } else {
            None
        };
        let db = match b {
            Some(b) if b.track_op() => Some(channel_sum(&gp)?.reshape(b.shape())?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for ConvTransposeOp {
    fn name(&self) -> &'static str {
        "agesynth-conv-transpose2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if is_f64(s1)? {
            self.run::<f64>([(s1, l1), (s2, l2)], None)
        } else {
            self.run::<f32>([(s1, l1), (s2, l2)], None)
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvTransposeOp {
    fn name(&self) -> &'static str {
        "agesynth-conv-transpose2d-bias"
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
            self.run::<f64>([(s1, l1), (s2, l2)], Some((s3, l3)))
        } else {
            self.run::<f32>([(s1, l1), (s2, l2)], Some((s3, l3)))
        }
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, Some(b), res, grad)
    }
}

/// `(x, w, dy) ↦ [conv2d(x, w) | conv_grad_weight(x, dy)]` flattened: the
/// two gradients of a transposed convolution (`x` being its output
/// gradient), computed from one im2col of `x`.
#[derive(Clone, Copy, Debug)]
struct ConvPairOp {
    p: ConvParams,
    kh: usize,
    kw: usize,
}

impl ConvPairOp {
    /// Whether the fused kernel pays for `x` convolved by `w`.
    fn applies(&self, x: &Tensor, w: &Tensor) -> Result<bool> {
        let (n, cin, h, wd) = x.dims4()?;
        let cout = w.dim(0)?;
        Ok(ConvGeom::new(
            n,
            cin,
            h,
            wd,
            cout,
            self.kh,
            self.kw,
            self.p.stride,
            self.p.padding,
            self.p.dilation,
            self.p.groups,
        )
        .is_ok_and(|g| fused_fwd_weight_applies(&g)))
    }

    fn run<T: CpuElem>(&self, s: [(&CpuStorage, &Layout); 3]) -> Result<(CpuStorage, Shape)> {
        let name = "conv2d + weight grad";
        let g = Conv2dOp {
            p: self.p,
            slope: None,
        }
        .geom(s[0].1, s[1].1)?;
        if s[2].1.dims() != [g.n, g.cout, g.ho, g.wo] {
            bail!("{name}: output grad {:?} does not fit", s[2].1.dims());
        }
        let x = data::<T>(name, s[0].0, s[0].1)?;
        let w = data::<T>(name, s[1].0, s[1].1)?;
        let dy = data::<T>(name, s[2].0, s[2].1)?;
        let (mut y, dw) = conv2d_fwd_and_weight_grad(x, w, dy, &g);
        y.extend_from_slice(&dw);
        let len = y.len();
        Ok((T::wrap(y), Shape::from(len)))
    }
}

impl CustomOp3 for ConvPairOp {
    fn name(&self) -> &'static str {
        "agesynth-conv2d-and-grad-weight"
    }
    cpu_fwd3_by_dtype!();
    /// The adjoints of the two parts, each through its own op's backward.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads3> {
        let (n, _, _, _) = x.dims4()?;
        let (_, cout, ho, wo) = dy.dims4()?;
        let yl = n * cout * ho * wo;
        let grad = contiguous_grad(grad)?;
        let g_y = grad.narrow(0, 0, yl)?.reshape(dy.shape())?;
        let g_w = grad.narrow(0, yl, w.elem_count())?.reshape(w.shape())?;
        let conv = Conv2dOp {
            p: self.p,
            slope: None,
        };
        let (dx1, dw, _) = conv.grads(x, w, None, res, &g_y)?;
        let wop = ConvGradWeightOp {
            p: self.p,
            kh: self.kh,
            kw: self.kw,
        };
        let (dx2, ddy) = wop.bwd(x, dy, res, &g_w)?;
        let dx = match (dx1, dx2) {
            (Some(a), Some(b)) => Some((a + b)?),
            (a, b) => a.or(b),
        };
        Ok((dx, dw, ddy))
    }
}

/// Weight gradient of a convolution: `(x, dy) ↦ dw (cout, cin/groups, kh, kw)`.
#[derive(Clone, Copy, Debug)]
struct ConvGradWeightOp {
    p: ConvParams,
    kh: usize,
    kw: usize,
}

impl ConvGradWeightOp {
    fn run<T: CpuElem>(
        &self,
        s1: &CpuStorage,
        lx: &Layout,
        s2: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, cin, h, w) = dims4("conv2d weight grad", "input", lx)?;
        let (ny, cout, ho, wo) = dims4("conv2d weight grad", "output grad", ly)?;
        let g = ConvGeom::new(
            n,
            cin,
            h,
            w,
            cout,
            self.kh,
            self.kw,
            self.p.stride,
            self.p.padding,
            self.p.dilation,
            self.p.groups,
        )
        .map_err(|e| candle_core::Error::Msg(format!("conv2d weight grad: {e}")))?;
        if (ny, g.ho, g.wo) != (n, ho, wo) {
            bail!(
                "conv2d weight grad: output grad {:?} does not match input {:?}",
                ly.dims(),
                lx.dims()
            );
        }
        let x = data::<T>("conv2d weight grad", s1, lx)?;
        let dy = data::<T>("conv2d weight grad", s2, ly)?;
        let dw = conv2d_bwd_weight(x, dy, &g);
        Ok((
            T::wrap(dw),
            Shape::from((cout, g.cin_g(), self.kh, self.kw)),
        ))
    }
}

impl CustomOp2 for ConvGradWeightOp {
    fn name(&self) -> &'static str {
        "agesynth-conv2d-grad-weight"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if is_f64(s1)? {
            self.run::<f64>(s1, l1, s2, l2)
        } else {
            self.run::<f32>(s1, l1, s2, l2)
        }
    }
    /// The weight gradient is bilinear in `(x, dy)`: its adjoints are a
    /// transposed convolution of `dy` and a convolution of `x` by `grad`.
    fn bwd(
        &self,
        x: &Tensor,
        dy: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = contiguous_grad(grad)?;
        let (_, _, h, w) = x.dims4()?;
        let dx = dy.apply_op2(
            &grad,
            ConvTransposeOp {
                p: self.p,
                out_h: h,
                out_w: w,
                slope: None,
            },
        )?;
        let ddy = x.apply_op2(
            &grad,
            Conv2dOp {
                p: self.p,
                slope: None,
            },
        )?;
        Ok((Some(dx), Some(ddy)))
    }
}

fn conv_out(h: usize, p: &ConvParams, k: usize) -> usize {
    let e = p.dilation * (k.max(1) - 1) + 1;
    (h + 2 * p.padding).saturating_sub(e) / p.stride.max(1) + 1
}

/// 2-D convolution `act(conv2d(x, w) + b)` of `x (n, cin, h, w)` by
/// `w (cout, cin/groups, kh, kw)`, with an optional bias `(cout)` and an
/// optional fused leaky ReLU of negative slope `slope ≥ 0`.
pub fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &ConvParams,
    slope: Option<f64>,
) -> Result<Tensor> {
    if uses_fast_path(x) && slope.is_none_or(|a| a >= 0.0) {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        let op = Conv2dOp { p: *p, slope };
        return match b {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
            None => x.apply_op2(&w, op),
        };
    }
    let mut y = x.conv2d(w, p.padding, p.stride, p.dilation, p.groups)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    }
    match slope {
        Some(a) => candle_nn::ops::leaky_relu(&y, a),
        None => Ok(y),
    }
}

/// 2-D convolution `conv2d(x, w) + b` (see [`conv2d_act`]).
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: &ConvParams) -> Result<Tensor> {
    conv2d_act(x, w, b, p, None)
}

/// Transposed 2-D convolution `act(conv_transpose2d(x, w) + b)` of
/// `x (n, cin, h, w)` by `w (cin, cout/groups, kh, kw)` (PyTorch's layout),
/// bias `(cout)` optional, fused leaky ReLU when `slope` is set. The output
/// is `(h − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1` high.
pub fn conv_transpose2d_act(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &ConvTransposeParams,
    slope: Option<f64>,
) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let full = |n: usize, k: usize| -> Result<usize> {
        let v = (n.max(1) - 1) * p.stride + p.dilation * (k.max(1) - 1) + p.output_padding + 1;
        if v <= 2 * p.padding || p.output_padding >= p.stride.max(p.dilation) {
            bail!(
                "conv_transpose2d: padding {} / output_padding {} do not fit input size {n} and kernel {k}",
                p.padding,
                p.output_padding
            );
        }
        Ok(v - 2 * p.padding)
    };
    let (out_h, out_w) = (full(h, kh)?, full(wd, kw)?);
    let cp = ConvParams {
        padding: p.padding,
        stride: p.stride,
        dilation: p.dilation,
        groups: p.groups,
    };
    if uses_fast_path(x) && slope.is_none_or(|a| a >= 0.0) {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        let op = ConvTransposeOp {
            p: cp,
            out_h,
            out_w,
            slope,
        };
        return match b {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
            None => x.apply_op2(&w, op),
        };
    }
    let mut y = if p.groups == 1 {
        x.conv_transpose2d(w, p.padding, p.output_padding, p.stride, p.dilation)?
    } else {
        let xs = x.chunk(p.groups, 1)?;
        let ws = w.chunk(p.groups, 0)?;
        let ys = xs
            .iter()
            .zip(&ws)
            .map(|(x, w)| x.conv_transpose2d(w, p.padding, p.output_padding, p.stride, p.dilation))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&ys, 1)?
    };
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    }
    match slope {
        Some(a) => candle_nn::ops::leaky_relu(&y, a),
        None => Ok(y),
    }
}

/// Transposed 2-D convolution `conv_transpose2d(x, w) + b` (see
/// [`conv_transpose2d_act`]).
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &ConvTransposeParams,
) -> Result<Tensor> {
    conv_transpose2d_act(x, w, b, p, None)
}

/// Output size of a convolution along one axis (helper for layer code).
pub fn conv2d_out_size(size: usize, kernel: usize, p: &ConvParams) -> usize {
    conv_out(size, p, kernel)
}

// ---------------------------------------------------------------------------
// Elementwise activations.

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

/// The first element of a non-empty tensor as a 0-dimensional tensor,
/// through views only (`get`/`squeeze` would copy each strided slice).
fn single_element(g: &Tensor) -> Result<Tensor> {
    let mut v = g.clone();
    for d in 0..v.rank() {
        v = v.narrow(d, 0, 1)?;
    }
    v.reshape(())
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

fn unary_bwd(f: UnaryBwd, v: &Tensor, g: &Tensor) -> Result<Tensor> {
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

// ---------------------------------------------------------------------------
// Per-channel maps.

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

// ---------------------------------------------------------------------------
// StyleGAN2 modulated convolution.

fn check_modulation(
    x: &Tensor,
    w: &Tensor,
    style: &Tensor,
    p: &ConvParams,
) -> Result<(usize, usize)> {
    let (n, cin, _, _) = x.dims4()?;
    let (cout, wcin, _, _) = w.dims4()?;
    if p.groups != 1 || wcin != cin || style.dims() != [n, cin] {
        bail!(
            "modulated conv: need groups = 1, weight (cout, {cin}, k, k) and style ({n}, {cin}); got groups={}, weight {:?}, style {:?}",
            p.groups,
            w.dims(),
            style.dims()
        );
    }
    Ok((n, cout))
}

/// The fused modulated convolution `y = d ⊙ conv(s ⊙ x, w)` on the Winograd
/// path; the third input is `sd = [s | d]`, shape `(n, cin + cout)`.
#[derive(Clone, Copy, Debug)]
struct ModConvOp {
    p: ConvParams,
}

/// Geometry of a fused modulated convolution and the split of `sd`.
fn modconv_geom(p: &ConvParams, lx: &Layout, lw: &Layout, lsd: &Layout) -> Result<ConvGeom> {
    let g = Conv2dOp { p: *p, slope: None }.geom(lx, lw)?;
    if lsd.dims() != [g.n, g.cin + g.cout] {
        bail!(
            "modulated conv: scales must be ({}, {}), got {:?}",
            g.n,
            g.cin + g.cout,
            lsd.dims()
        );
    }
    if !winograd::applies(&g) {
        bail!("modulated conv: the fused op needs a 3x3 stride-1 layer on the Winograd path");
    }
    Ok(g)
}

/// `(s, d)` as separate `(n, cin)` and `(n, cout)` buffers.
fn split_scales<T: Copy>(sd: &[T], g: &ConvGeom) -> (Vec<T>, Vec<T>) {
    let c = g.cin + g.cout;
    let s = sd
        .chunks_exact(c)
        .flat_map(|r| r[..g.cin].to_vec())
        .collect();
    let d = sd
        .chunks_exact(c)
        .flat_map(|r| r[g.cin..].to_vec())
        .collect();
    (s, d)
}

impl ModConvOp {
    fn run<T: CpuElem>(&self, s: [(&CpuStorage, &Layout); 3]) -> Result<(CpuStorage, Shape)> {
        let g = modconv_geom(&self.p, s[0].1, s[1].1, s[2].1)?;
        let name = "modulated conv";
        let x = data::<T>(name, s[0].0, s[0].1)?;
        let w = data::<T>(name, s[1].0, s[1].1)?;
        let (sv, dv) = split_scales(data::<T>(name, s[2].0, s[2].1)?, &g);
        let sc = Scales { s: &sv, d: &dv };
        let y = winograd::conv2d_fwd_scaled(x, w, Some(sc), None, None, &g);
        Ok((T::wrap(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
    }
}

impl CustomOp3 for ModConvOp {
    fn name(&self) -> &'static str {
        "agesynth-modulated-conv2d"
    }
    cpu_fwd3_by_dtype!();
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        sd: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads3> {
        let gp = contiguous_grad(grad)?;
        let dx = if x.track_op() {
            Some(gp.apply_op3(
                w,
                sd,
                ModConvBwdOp {
                    p: self.p,
                    input: true,
                },
            )?)
        } else {
            None
        };
        let (dw, dsd) = if w.track_op() || sd.track_op() {
            let ws = Tensor::cat(&[&w.flatten_all()?, &sd.flatten_all()?], 0)?;
            let flat = x.apply_op3(
                &gp,
                &ws,
                ModConvBwdOp {
                    p: self.p,
                    input: false,
                },
            )?;
            let (n, cin, _, _) = x.dims4()?;
            let cout = w.dim(0)?;
            let wl = w.elem_count();
            let dw = flat.narrow(0, 0, wl)?.reshape(w.shape())?;
            let ds = flat.narrow(0, wl, n * cin)?.reshape((n, cin))?;
            let dd = flat.narrow(0, wl + n * cin, n * cout)?.reshape((n, cout))?;
            (Some(dw), Some(Tensor::cat(&[&ds, &dd], 1)?))
        } else {
            (None, None)
        };
        Ok((dx, dw, dsd))
    }
}

/// Backward of [`ModConvOp`]: with `input`, `dx` from `(dy, w, sd)`; else
/// `[dw | ds | dd]` flattened from `(x, dy, [w | sd])`. Not differentiable.
#[derive(Clone, Copy, Debug)]
struct ModConvBwdOp {
    p: ConvParams,
    input: bool,
}

impl ModConvBwdOp {
    fn run<T: CpuElem>(&self, s: [(&CpuStorage, &Layout); 3]) -> Result<(CpuStorage, Shape)> {
        let name = "modulated conv backward";
        if self.input {
            // (dy, w, sd): the geometry of the forward from w and sd.
            let (n, cout, ho, wo) = dims4(name, "gradient", s[0].1)?;
            let (wc, cin, kh, kw) = dims4(name, "weight", s[1].1)?;
            if wc != cout {
                bail!(
                    "{name}: weight {:?} does not fit {cout} channels",
                    s[1].1.dims()
                );
            }
            let pad = self.p.padding;
            let (h, w) = (
                (ho + kh - 1).saturating_sub(2 * pad),
                (wo + kw - 1).saturating_sub(2 * pad),
            );
            let g = ConvGeom::new(n, cin, h, w, cout, kh, kw, 1, pad, 1, 1)
                .map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))?;
            if (g.ho, g.wo) != (ho, wo)
                || !winograd::applies(&g)
                || s[2].1.dims() != [n, cin + cout]
            {
                bail!("{name}: inconsistent shapes");
            }
            let dy = data::<T>(name, s[0].0, s[0].1)?;
            let wt = data::<T>(name, s[1].0, s[1].1)?;
            let (sv, dv) = split_scales(data::<T>(name, s[2].0, s[2].1)?, &g);
            let sc = Scales { s: &sv, d: &dv };
            let dx = winograd::conv2d_bwd_input_scaled(dy, wt, Some(sc), None, None, &g);
            return Ok((T::wrap(dx), Shape::from((n, cin, h, w))));
        }
        // (x, dy, [w | sd]).
        let (n, cin, h, w) = dims4(name, "input", s[0].1)?;
        let (_, cout, _, _) = dims4(name, "gradient", s[1].1)?;
        let wl = cout * cin * 9;
        let g = ConvGeom::new(n, cin, h, w, cout, 3, 3, 1, self.p.padding, 1, 1)
            .map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))?;
        if s[1].1.dims() != [n, cout, g.ho, g.wo]
            || s[2].1.shape().elem_count() != wl + n * (cin + cout)
            || !winograd::applies(&g)
        {
            bail!("{name}: inconsistent shapes");
        }
        let x = data::<T>(name, s[0].0, s[0].1)?;
        let dy = data::<T>(name, s[1].0, s[1].1)?;
        let ws = data::<T>(name, s[2].0, s[2].1)?;
        let (sv, dv) = split_scales(&ws[wl..], &g);
        let sc = Scales { s: &sv, d: &dv };
        let (dw, sd) = winograd::conv2d_bwd_weight_scaled(x, dy, &ws[..wl], Some(sc), &g);
        let (ds, dd) = sd.expect("scales were given");
        let mut out = dw;
        out.extend_from_slice(&ds);
        out.extend_from_slice(&dd);
        let len = out.len();
        Ok((T::wrap(out), Shape::from(len)))
    }
}

impl CustomOp3 for ModConvBwdOp {
    fn name(&self) -> &'static str {
        "agesynth-modulated-conv2d-backward"
    }
    cpu_fwd3_by_dtype!();
}

/// Demodulation factors `1 / sqrt(Σᵢₖ (w[o,i,k]·s[n,i])² + 1e-8)`, shape `(n, cout)`.
fn demodulation(w: &Tensor, style: &Tensor) -> Result<Tensor> {
    let wsq = w.sqr()?.sum((2, 3))?; // (cout, cin)
    (style.sqr()?.matmul(&wsq.t()?)? + 1e-8)?.sqrt()?.recip()
}

/// StyleGAN2's modulated convolution in its exact input-scaling form:
/// modulate the input per sample and channel, convolve with the shared
/// weight `w (cout, cin, k, k)` over the whole batch, then (when
/// `demodulate`) scale each output channel by
/// `1 / sqrt(Σᵢₖ (w[o,i,k]·style[n,i])² + 1e-8)`. `style` is `(n, cin)`,
/// `p.groups` must be 1. Equal to [`modulated_conv2d_grouped`] but runs one
/// large convolution instead of `n` small grouped ones.
///
/// On a CPU, for 3×3 stride-1 layers on the Winograd path, the whole map is
/// one fused op: the per-sample scales multiply the shared transformed
/// weights' rows and columns, so neither the modulated input nor the
/// undemodulated output is ever materialised, and the backward computes
/// the gradients of `x`, `w`, `style` (and through the demodulation factors)
/// from the same per-sample products. Its backward cannot itself be
/// differentiated (candle reports an error if asked);
/// [`modulated_conv2d_unfused`] composes the same map from ops that can.
pub fn modulated_conv2d(
    x: &Tensor,
    w: &Tensor,
    style: &Tensor,
    demodulate: bool,
    p: &ConvParams,
) -> Result<Tensor> {
    let (n, cout) = check_modulation(x, w, style, p)?;
    if uses_fast_path(x) && x.dtype() == w.dtype() && x.dtype() == style.dtype() {
        let (_, cin, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let g = ConvGeom::new(
            n, cin, h, wd, cout, kh, kw, p.stride, p.padding, p.dilation, 1,
        );
        if g.is_ok_and(|g| winograd::applies(&g)) {
            let d = if demodulate {
                demodulation(w, style)?
            } else {
                Tensor::ones((n, cout), x.dtype(), x.device())?
            };
            let sd = Tensor::cat(&[style, &d], 1)?.contiguous()?;
            return x
                .contiguous()?
                .apply_op3(&w.contiguous()?, &sd, ModConvOp { p: *p });
        }
    }
    modulated_conv2d_unfused(x, w, style, demodulate, p)
}

/// [`modulated_conv2d`] composed from per-channel scaling ops and
/// [`conv2d`] (modulate the input, convolve, demodulate the output), for
/// any kernel shape and with a backward that can itself be differentiated.
pub fn modulated_conv2d_unfused(
    x: &Tensor,
    w: &Tensor,
    style: &Tensor,
    demodulate: bool,
    p: &ConvParams,
) -> Result<Tensor> {
    let (n, cout) = check_modulation(x, w, style, p)?;
    let (_, cin, h, wd) = x.dims4()?;
    let xs = channel_affine(
        &x.reshape((1, n * cin, h, wd))?,
        Some(&style.flatten_all()?),
        None,
        None,
    )?
    .reshape((n, cin, h, wd))?;
    let y = conv2d(&xs, w, None, p)?;
    if !demodulate {
        return Ok(y);
    }
    let (_, _, ho, wo) = y.dims4()?;
    let d = demodulation(w, style)?;
    channel_affine(
        &y.reshape((1, n * cout, ho, wo))?,
        Some(&d.flatten_all()?),
        None,
        None,
    )?
    .reshape((n, cout, ho, wo))
}

/// StyleGAN2's modulated convolution in its grouped form (per-sample
/// modulated weights, one grouped convolution with `groups = n`); the
/// reference for [`modulated_conv2d`].
pub fn modulated_conv2d_grouped(
    x: &Tensor,
    w: &Tensor,
    style: &Tensor,
    demodulate: bool,
    p: &ConvParams,
) -> Result<Tensor> {
    let (n, cout) = check_modulation(x, w, style, p)?;
    let (_, cin, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let mut wm = w
        .unsqueeze(0)?
        .broadcast_mul(&style.reshape((n, 1, cin, 1, 1))?)?;
    if demodulate {
        let d = (wm.sqr()?.sum((2, 3, 4))? + 1e-8)?.sqrt()?.recip()?;
        wm = wm.broadcast_mul(&d.reshape((n, cout, 1, 1, 1))?)?;
    }
    let pg = ConvParams { groups: n, ..*p };
    let y = conv2d(
        &x.reshape((1, n * cin, h, wd))?,
        &wm.reshape((n * cout, cin, kh, kw))?,
        None,
        &pg,
    )?;
    let (_, _, ho, wo) = y.dims4()?;
    y.reshape((n, cout, ho, wo))
}
