//! Convolutions: `conv2d` and `conv_transpose2d` (any stride, padding,
//! dilation, groups; optional bias and fused leaky ReLU) as custom ops, with
//! the weight-gradient op and the fused pair op their backward passes use.

use super::activation::unary_bwd;
use super::reduce::channel_sum;
use super::{
    check_param, contiguous_grad, data, dims4, is_f64, uses_fast_path, ConvParams,
    ConvTransposeParams, CpuElem, Grads3,
};
use crate::kernels::conv::{
    conv2d_bwd_input, conv2d_bwd_weight, conv2d_fwd, conv2d_fwd_and_weight_grad,
    fused_fwd_weight_applies, ConvGeom,
};
use crate::kernels::eltwise::UnaryBwd;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `act(conv2d(x, w) + b)`; `b` optional, `act` a leaky ReLU when `slope` is set.
#[derive(Clone, Copy, Debug)]
pub(super) struct Conv2dOp {
    pub(super) p: ConvParams,
    pub(super) slope: Option<f64>,
}

impl Conv2dOp {
    pub(super) fn geom(&self, lx: &Layout, lw: &Layout) -> Result<ConvGeom> {
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
