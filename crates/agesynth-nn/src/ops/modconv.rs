//! StyleGAN2's modulated convolution: the fused op on the Winograd path and
//! its backward op, and the unfused and grouped forms built from the other
//! ops.

use super::affine::channel_affine;
use super::conv::{conv2d, Conv2dOp};
use super::{contiguous_grad, data, dims4, is_f64, uses_fast_path, ConvParams, CpuElem, Grads3};
use crate::kernels::conv::ConvGeom;
use crate::kernels::winograd::{self, Scales};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

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
