//! The building blocks of the cStyleGAN, written against candle's tensor ops.
//!
//! Convolutions, leaky ReLUs and per-channel scalings run on `agesynth-nn`'s
//! fused CPU kernels (which fall back to candle's ops on CUDA and in half
//! precision); the rest is candle ops. The √2 gain of StyleGAN's leaky ReLU
//! is folded into the weights and biases before the fused kernel, using
//! `lrelu(g·z) = g·lrelu(z)` for `g > 0`.
//!
//! All layers use StyleGAN's *equalised learning rate*: weights are stored as
//! `N(0, 1/lr_mul)` and scaled at run time by `lr_mul/√fan_in`, so Adam's
//! per-parameter step sizes act alike on every layer.

use std::f64::consts::SQRT_2;

use agesynth_core::Result;
use agesynth_nn::ops as nn;
use agesynth_nn::ConvParams;
use candle_core::{Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::config::Upsample;

/// Slope of the leaky ReLUs.
pub const LRELU_SLOPE: f64 = 0.2;

/// A 2-D convolution, stride 1, zero padding `pad`. The single place where
/// the model calls a convolution kernel.
pub fn conv2d(x: &Tensor, w: &Tensor, pad: usize) -> Result<Tensor> {
    Ok(nn::conv2d(x, w, None, &same_padding(pad))?)
}

fn same_padding(pad: usize) -> ConvParams {
    ConvParams {
        padding: pad,
        ..Default::default()
    }
}

/// Leaky ReLU (slope 0.2) times √2, StyleGAN's variance-preserving gain.
pub fn lrelu_gain(x: &Tensor) -> Result<Tensor> {
    Ok((nn::leaky_relu(x, LRELU_SLOPE)? * SQRT_2)?)
}

/// `lrelu_gain(x + bias[c])` on `(N, C, H, W)`, in one fused kernel.
pub fn bias_lrelu_gain(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let c = bias.dim(0)?;
    let gain = Tensor::full(SQRT_2, c, x.device())?.to_dtype(x.dtype())?;
    Ok(nn::channel_affine(
        x,
        Some(&gain),
        Some(&(bias * SQRT_2)?),
        Some(LRELU_SLOPE),
    )?)
}

/// Scales `x (N, C, H, W)` by `s (N, C)`, per sample and channel.
fn scale_per_sample(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    Ok(nn::channel_affine(
        &x.reshape((1, n * c, h, w))?,
        Some(&s.flatten_all()?),
        None,
        None,
    )?
    .reshape((n, c, h, w))?)
}

/// Tangent of [`lrelu_gain`] at the pre-activation `pre` (or equally at the
/// activation, which has the same sign): `t` times the local
/// slope (√2 where `pre ≥ 0`, 0.2·√2 elsewhere). The slope mask is a constant
/// (no gradient), as the second derivative of a leaky ReLU is zero almost
/// everywhere.
pub fn lrelu_gain_tangent(pre: &Tensor, t: &Tensor) -> Result<Tensor> {
    let mask = pre.ge(0.0)?.to_dtype(pre.dtype())?;
    let slope = mask.affine((1.0 - LRELU_SLOPE) * SQRT_2, LRELU_SLOPE * SQRT_2)?;
    Ok((t * slope)?)
}

/// Normalises each row (dimension 1) to unit root-mean-square.
pub fn pixel_norm(x: &Tensor) -> Result<Tensor> {
    let ms = (x.sqr()?.mean_keepdim(1)? + 1e-8)?;
    Ok(x.broadcast_div(&ms.sqrt()?)?)
}

/// Adds a per-channel bias to an `(N, C, H, W)` tensor.
fn add_channel_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let c = b.dim(0)?;
    Ok(x.broadcast_add(&b.reshape((1, c, 1, 1))?)?)
}

/// Doubles height and width by nearest-neighbour repetition.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    Ok(x.reshape((n, c, h, 1, w, 1))?
        .broadcast_as((n, c, h, 2, w, 2))?
        .reshape((n, c, 2 * h, 2 * w))?)
}

/// Doubles height and width by bilinear interpolation (half-pixel centres,
/// clamped edges; the same as PyTorch's `align_corners=False`).
///
/// Computed as one transposed convolution with the separable kernel
/// `[¼, ¾, ¾, ¼]²` at stride 2 over the edge-replicated input, every channel
/// as its own image: output `2i` is `¼x[i-1] + ¾x[i]`, output `2i+1` is
/// `¾x[i] + ¼x[i+1]`.
pub fn upsample_bilinear2x(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let taps = [0.25f32, 0.75, 0.75, 0.25];
    let k: Vec<f32> = taps
        .iter()
        .flat_map(|a| taps.iter().map(move |b| a * b))
        .collect();
    let k = Tensor::from_vec(k, (1, 1, 4, 4), x.device())?.to_dtype(x.dtype())?;
    let xp = x
        .reshape((n * c, 1, h, w))?
        .pad_with_same(2, 1, 1)?
        .pad_with_same(3, 1, 1)?;
    let p = agesynth_nn::ConvTransposeParams {
        padding: 3,
        stride: 2,
        ..Default::default()
    };
    Ok(nn::conv_transpose2d(&xp, &k, None, &p)?.reshape((n, c, 2 * h, 2 * w))?)
}

/// Doubles height and width with the configured filter.
pub fn upsample2x(x: &Tensor, mode: Upsample) -> Result<Tensor> {
    match mode {
        Upsample::Bilinear => upsample_bilinear2x(x),
        Upsample::Nearest => upsample_nearest2x(x),
    }
}

/// Halves height and width by 2×2 averaging.
pub fn downsample2x(x: &Tensor) -> Result<Tensor> {
    Ok(x.avg_pool2d(2)?)
}

/// Fully connected layer with equalised learning rate and an optional fused
/// leaky ReLU. Weights `weight (out, in)`, `bias (out)`.
#[derive(Debug, Clone)]
pub struct EqualLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    scale: f64,
    lr_mul: f64,
    act: bool,
}

impl EqualLinear {
    /// A layer `in_dim -> out_dim`; `bias_init` is the initial effective bias
    /// (`None`: no bias).
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        bias_init: Option<f64>,
        lr_mul: f64,
        act: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0 / lr_mul,
            },
        )?;
        let bias = match bias_init {
            Some(b) => Some(vb.get_with_hints(out_dim, "bias", Init::Const(b / lr_mul))?),
            None => None,
        };
        Ok(Self {
            weight,
            bias,
            scale: lr_mul / (in_dim as f64).sqrt(),
            lr_mul,
            act,
        })
    }

    /// `(N, in) -> (N, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = (&self.weight * self.scale)?;
        let mut y = x.matmul(&w.t()?)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&(b * self.lr_mul)?)?;
        }
        if self.act {
            y = lrelu_gain(&y)?;
        }
        Ok(y)
    }

    /// Forward pass with a tangent (forward-mode derivative): returns the
    /// output and its directional derivative along `t`, both differentiable
    /// with respect to the weights.
    pub fn forward_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let w = (&self.weight * self.scale)?.t()?;
        let mut y = x.matmul(&w)?;
        let mut ty = t.matmul(&w)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&(b * self.lr_mul)?)?;
        }
        if self.act {
            ty = lrelu_gain_tangent(&y, &ty)?;
            y = lrelu_gain(&y)?;
        }
        Ok((y, ty))
    }
}

/// 2-D convolution (stride 1, "same" padding) with equalised learning rate
/// and an optional fused bias + leaky ReLU. Weights `weight (out, in, k, k)`,
/// `bias (out)`.
#[derive(Debug, Clone)]
pub struct EqualConv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    scale: f64,
    act: bool,
}

impl EqualConv2d {
    /// A `k×k` convolution `cin -> cout`.
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        bias: bool,
        act: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let bias = if bias {
            Some(vb.get_with_hints(cout, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            scale: 1.0 / ((cin * k * k) as f64).sqrt(),
            act,
        })
    }

    /// `(N, cin, H, W) -> (N, cout, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let k = self.weight.dim(3)?;
        let p = same_padding(k / 2);
        if self.act {
            let w = (&self.weight * (self.scale * SQRT_2))?;
            let b = match &self.bias {
                Some(b) => Some((b * SQRT_2)?),
                None => None,
            };
            Ok(nn::conv2d_act(x, &w, b.as_ref(), &p, Some(LRELU_SLOPE))?)
        } else {
            let w = (&self.weight * self.scale)?;
            Ok(nn::conv2d(x, &w, self.bias.as_ref(), &p)?)
        }
    }

    /// Forward pass with a tangent: output and directional derivative along
    /// `t`, both differentiable with respect to the weights.
    pub fn forward_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = self.weight.dim(3)?;
        let y = self.forward(x)?;
        let mut ty = conv2d(t, &(&self.weight * self.scale)?, k / 2)?;
        if self.act {
            // The activation has the sign of the pre-activation.
            ty = lrelu_gain_tangent(&y, &ty)?;
        }
        Ok((y, ty))
    }
}

/// StyleGAN2's modulated convolution, computed in the input-scaling form:
/// `y = conv(x ⊙ s, W) ⊙ d` with the style `s = A(w)` per input channel and
/// `d = 1/√(Σ_{i,k} (W_{o,i,k} s_i)² + ε)` per output channel. This is exact
/// for batches (the weight is shared, no grouped convolution) and costs one
/// ordinary convolution plus two cheap per-channel scalings. The optional
/// upsampling happens after the input scaling, before the convolution (the
/// two commute). Weights `weight (out, in, k, k)`, `modulation.*`.
#[derive(Debug, Clone)]
pub struct ModulatedConv2d {
    weight: Tensor,
    modulation: EqualLinear,
    scale: f64,
    demodulate: bool,
    upsample: Option<Upsample>,
}

impl ModulatedConv2d {
    /// A `k×k` modulated convolution `cin -> cout`, styles from `w_dim`.
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        w_dim: usize,
        demodulate: bool,
        upsample: Option<Upsample>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let modulation = EqualLinear::new(w_dim, cin, Some(1.0), 1.0, false, vb.pp("modulation"))?;
        Ok(Self {
            weight,
            modulation,
            scale: 1.0 / ((cin * k * k) as f64).sqrt(),
            demodulate,
            upsample,
        })
    }

    /// `x (N, cin, H, W)`, `w (N, w_dim)` -> `(N, cout, H', W')` with `H' = 2H`
    /// when upsampling.
    pub fn forward(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let k = self.weight.dim(3)?;
        let s = self.modulation.forward(w)?;
        let wt = (&self.weight * self.scale)?;
        let mut x = scale_per_sample(x, &s)?;
        if let Some(mode) = self.upsample {
            x = upsample2x(&x, mode)?;
        }
        let mut y = conv2d(&x, &wt, k / 2)?;
        if self.demodulate {
            let w2 = wt.sqr()?.sum((2, 3))?; // (out, in)
            let d = (s.sqr()?.matmul(&w2.t()?)? + 1e-8)?.sqrt()?.recip()?; // (N, out)
            y = scale_per_sample(&y, &d)?;
        }
        Ok(y)
    }
}

/// Adds `strength · noise` (one noise plane per image, broadcast over the
/// channels), `strength` learned and initialised to zero.
fn add_noise(x: &Tensor, noise: Option<&Tensor>, strength: &Tensor) -> Result<Tensor> {
    match noise {
        Some(nz) => Ok(x.broadcast_add(&nz.broadcast_mul(strength)?)?),
        None => Ok(x.clone()),
    }
}

/// Instance normalisation over the spatial dimensions (no affine).
fn instance_norm(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let flat = x.reshape((n, c, h * w))?;
    let mean = flat.mean_keepdim(D::Minus1)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(centred
        .broadcast_div(&(var + 1e-8)?.sqrt()?)?
        .reshape((n, c, h, w))?)
}

/// One synthesis convolution: modulated conv (or conv + AdaIN), noise, bias,
/// leaky ReLU.
#[derive(Debug, Clone)]
pub enum StyledConv {
    /// StyleGAN2 form.
    Modulated {
        /// The modulated convolution (`conv.*`).
        conv: ModulatedConv2d,
        /// Learned noise strength, shape `(1,)`.
        noise_strength: Tensor,
        /// Bias, `(out,)`.
        bias: Tensor,
    },
    /// StyleGAN v1 form.
    AdaIn {
        /// The plain convolution (`conv.*`, no bias).
        conv: EqualConv2d,
        /// Upsampling before the convolution, if any.
        upsample: Option<Upsample>,
        /// Learned noise strength, shape `(1,)`.
        noise_strength: Tensor,
        /// Bias, `(out,)`.
        bias: Tensor,
        /// Per-channel scale from `w` (bias initialised to 1).
        style_scale: EqualLinear,
        /// Per-channel shift from `w` (bias initialised to 0).
        style_shift: EqualLinear,
    },
}

impl StyledConv {
    /// A 3×3 styled convolution `cin -> cout`.
    pub fn new(
        kind: crate::config::BlockKind,
        cin: usize,
        cout: usize,
        w_dim: usize,
        upsample: Option<Upsample>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let noise_strength = vb.get_with_hints(1, "noise_strength", Init::Const(0.0))?;
        let bias = vb.get_with_hints(cout, "bias", Init::Const(0.0))?;
        Ok(match kind {
            crate::config::BlockKind::Modulated => StyledConv::Modulated {
                conv: ModulatedConv2d::new(cin, cout, 3, w_dim, true, upsample, vb.pp("conv"))?,
                noise_strength,
                bias,
            },
            crate::config::BlockKind::AdaIn => StyledConv::AdaIn {
                conv: EqualConv2d::new(cin, cout, 3, false, false, vb.pp("conv"))?,
                upsample,
                noise_strength,
                bias,
                style_scale: EqualLinear::new(
                    w_dim,
                    cout,
                    Some(1.0),
                    1.0,
                    false,
                    vb.pp("style_scale"),
                )?,
                style_shift: EqualLinear::new(
                    w_dim,
                    cout,
                    Some(0.0),
                    1.0,
                    false,
                    vb.pp("style_shift"),
                )?,
            },
        })
    }

    /// `x (N, cin, H, W)`, `w (N, w_dim)`, optional noise `(N, 1, H', W')`.
    pub fn forward(&self, x: &Tensor, w: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        match self {
            StyledConv::Modulated {
                conv,
                noise_strength,
                bias,
            } => {
                let y = conv.forward(x, w)?;
                let y = add_noise(&y, noise, noise_strength)?;
                bias_lrelu_gain(&y, bias)
            }
            StyledConv::AdaIn {
                conv,
                upsample,
                noise_strength,
                bias,
                style_scale,
                style_shift,
            } => {
                let x = match upsample {
                    Some(mode) => upsample2x(x, *mode)?,
                    None => x.clone(),
                };
                let y = conv.forward(&x)?;
                let y = add_noise(&y, noise, noise_strength)?;
                let y = instance_norm(&bias_lrelu_gain(&y, bias)?)?;
                let (n, c, _, _) = y.dims4()?;
                let scale = style_scale.forward(w)?.reshape((n, c, 1, 1))?;
                let shift = style_shift.forward(w)?.reshape((n, c, 1, 1))?;
                Ok(y.broadcast_mul(&scale)?.broadcast_add(&shift)?)
            }
        }
    }
}

/// The 1×1 projection of features to RGB (modulated without demodulation in
/// the StyleGAN2 form, plain in the v1 form), plus bias.
#[derive(Debug, Clone)]
pub enum ToRgb {
    /// StyleGAN2 form: `conv.*`, `bias (3,)`.
    Modulated {
        /// Modulated 1×1 convolution, no demodulation.
        conv: ModulatedConv2d,
        /// RGB bias.
        bias: Tensor,
    },
    /// StyleGAN v1 form: a plain 1×1 convolution with bias (`conv.*`).
    Plain {
        /// The convolution.
        conv: EqualConv2d,
    },
}

impl ToRgb {
    /// A to-RGB layer from `cin` channels.
    pub fn new(
        kind: crate::config::BlockKind,
        cin: usize,
        w_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match kind {
            crate::config::BlockKind::Modulated => ToRgb::Modulated {
                conv: ModulatedConv2d::new(cin, 3, 1, w_dim, false, None, vb.pp("conv"))?,
                bias: vb.get_with_hints(3, "bias", Init::Const(0.0))?,
            },
            crate::config::BlockKind::AdaIn => ToRgb::Plain {
                conv: EqualConv2d::new(cin, 3, 1, true, false, vb.pp("conv"))?,
            },
        })
    }

    /// `x (N, cin, H, W)`, `w (N, w_dim)` -> `(N, 3, H, W)`.
    pub fn forward(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        match self {
            ToRgb::Modulated { conv, bias } => add_channel_bias(&conv.forward(x, w)?, bias),
            ToRgb::Plain { conv } => conv.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The transposed-convolution bilinear upsampling equals the textbook
    /// formula with clamped edges.
    #[test]
    fn bilinear_upsampling_matches_the_formula() {
        let (h, w) = (3usize, 4usize);
        let v: Vec<f64> = (0..2 * h * w)
            .map(|i| ((i * 37 % 11) as f64) - 5.0)
            .collect();
        let x = Tensor::from_vec(v.clone(), (1, 2, h, w), &Device::Cpu).unwrap();
        let y = upsample_bilinear2x(&x).unwrap();
        assert_eq!(y.dims(), &[1, 2, 2 * h, 2 * w]);
        let y = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let at = |c: usize, i: isize, j: isize| {
            let i = i.clamp(0, h as isize - 1) as usize;
            let j = j.clamp(0, w as isize - 1) as usize;
            v[c * h * w + i * w + j]
        };
        // Source coordinate of output o is (o + ½)/2 − ½; weights ¾ and ¼.
        let taps = |o: usize| -> [(isize, f64); 2] {
            let i = (o / 2) as isize;
            if o.is_multiple_of(2) {
                [(i - 1, 0.25), (i, 0.75)]
            } else {
                [(i, 0.75), (i + 1, 0.25)]
            }
        };
        for c in 0..2 {
            for oi in 0..2 * h {
                for oj in 0..2 * w {
                    let mut want = 0.0;
                    for (si, wi) in taps(oi) {
                        for (sj, wj) in taps(oj) {
                            want += wi * wj * at(c, si, sj);
                        }
                    }
                    let got = y[c * 4 * h * w + oi * 2 * w + oj];
                    assert!(
                        (got - want).abs() < 1e-12,
                        "({c},{oi},{oj}): {got} vs {want}"
                    );
                }
            }
        }
        let z = upsample_nearest2x(&x.to_dtype(DType::F32).unwrap()).unwrap();
        assert_eq!(z.dims(), &[1, 2, 2 * h, 2 * w]);
    }
}
