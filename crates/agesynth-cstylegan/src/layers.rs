//! The building blocks of the cStyleGAN, written against candle's tensor ops.
//!
//! Everything that touches the convolution kernels goes through [`conv2d`], so
//! the whole model can switch to faster kernels in one place.
//!
//! All layers use StyleGAN's *equalised learning rate*: weights are stored as
//! `N(0, 1/lr_mul)` and scaled at run time by `lr_mul/√fan_in`, so Adam's
//! per-parameter step sizes act alike on every layer.

use std::f64::consts::SQRT_2;

use agesynth_core::Result;
use candle_core::{Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::config::Upsample;

/// Slope of the leaky ReLUs.
pub const LRELU_SLOPE: f64 = 0.2;

/// A 2-D convolution, stride 1, zero padding `pad`. The single place where
/// the model calls a convolution kernel.
pub fn conv2d(x: &Tensor, w: &Tensor, pad: usize) -> Result<Tensor> {
    Ok(x.conv2d(w, pad, 1, 1, 1)?)
}

/// Leaky ReLU (slope 0.2) times √2, StyleGAN's variance-preserving gain.
pub fn lrelu_gain(x: &Tensor) -> Result<Tensor> {
    let pos = (x.relu()? * ((1.0 - LRELU_SLOPE) * SQRT_2))?;
    Ok((pos + x.affine(LRELU_SLOPE * SQRT_2, 0.0)?)?)
}

/// Tangent of [`lrelu_gain`] at the pre-activation `pre`: `t` times the local
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

/// Doubles one spatial dimension with bilinear weights (¼, ¾) and clamped
/// edges: output `2i` is `¼x[i-1] + ¾x[i]`, output `2i+1` is `¾x[i] + ¼x[i+1]`.
fn bilinear2x_dim(x: &Tensor, dim: usize) -> Result<Tensor> {
    let len = x.dim(dim)?;
    let xp = x.pad_with_same(dim, 1, 1)?;
    let prev = xp.narrow(dim, 0, len)?;
    let mid = xp.narrow(dim, 1, len)?;
    let next = xp.narrow(dim, 2, len)?;
    let even = ((prev * 0.25)? + (&mid * 0.75)?)?;
    let odd = ((mid * 0.75)? + (next * 0.25)?)?;
    let mut shape = x.dims().to_vec();
    shape[dim] *= 2;
    Ok(Tensor::stack(&[even, odd], dim + 1)?.reshape(shape)?)
}

/// Doubles height and width by bilinear interpolation (half-pixel centres,
/// clamped edges; the same as PyTorch's `align_corners=False`).
pub fn upsample_bilinear2x(x: &Tensor) -> Result<Tensor> {
    bilinear2x_dim(&bilinear2x_dim(x, 2)?, 3)
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
        let mut y = conv2d(x, &(&self.weight * self.scale)?, k / 2)?;
        if let Some(b) = &self.bias {
            y = add_channel_bias(&y, b)?;
        }
        if self.act {
            y = lrelu_gain(&y)?;
        }
        Ok(y)
    }

    /// Forward pass with a tangent: output and directional derivative along
    /// `t`, both differentiable with respect to the weights.
    pub fn forward_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = self.weight.dim(3)?;
        let w = (&self.weight * self.scale)?;
        let mut y = conv2d(x, &w, k / 2)?;
        let mut ty = conv2d(t, &w, k / 2)?;
        if let Some(b) = &self.bias {
            y = add_channel_bias(&y, b)?;
        }
        if self.act {
            ty = lrelu_gain_tangent(&y, &ty)?;
            y = lrelu_gain(&y)?;
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
        let (n, cin, _, _) = x.dims4()?;
        let cout = self.weight.dim(0)?;
        let k = self.weight.dim(3)?;
        let s = self.modulation.forward(w)?;
        let wt = (&self.weight * self.scale)?;
        let mut x = x.broadcast_mul(&s.reshape((n, cin, 1, 1))?)?;
        if let Some(mode) = self.upsample {
            x = upsample2x(&x, mode)?;
        }
        let mut y = conv2d(&x, &wt, k / 2)?;
        if self.demodulate {
            let w2 = wt.sqr()?.sum((2, 3))?; // (out, in)
            let d = (s.sqr()?.matmul(&w2.t()?)? + 1e-8)?.sqrt()?.recip()?; // (N, out)
            y = y.broadcast_mul(&d.reshape((n, cout, 1, 1))?)?;
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
                lrelu_gain(&add_channel_bias(&y, bias)?)
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
                let y = instance_norm(&lrelu_gain(&add_channel_bias(&y, bias)?)?)?;
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
