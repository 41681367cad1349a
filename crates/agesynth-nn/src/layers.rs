//! Layers built on [`crate::ops`]: they run our kernels on a CPU and candle's
//! ops elsewhere. Construction mirrors `candle_nn` (`new(&cfg, vb)`, weights
//! `weight` and `bias`, the same default initialisation), so checkpoints are
//! interchangeable.

use crate::ops::{self, ConvParams, ConvTransposeParams};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// An activation function, applied with our fused kernels where possible.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// Leaky ReLU with the given negative slope (≥ 0).
    LeakyRelu(f64),
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// `ln(1 + eˣ)`.
    Softplus,
}

impl Activation {
    /// The leaky-ReLU slope when this activation can be fused into a
    /// convolution or bias (ReLU is slope 0).
    pub fn fusable_slope(&self) -> Option<f64> {
        match *self {
            Activation::Relu => Some(0.0),
            Activation::LeakyRelu(a) if a >= 0.0 => Some(a),
            _ => None,
        }
    }
}

impl Activation {
    /// Forward-mode derivative: given the pre-activation `x` and its tangent
    /// `t`, returns `(act(x), act'(x) · t)`, both differentiable with
    /// respect to whatever `x` and `t` depend on. Piecewise-linear units use
    /// their slope masks as constants (their second derivative is zero
    /// almost everywhere), which makes an R1 penalty built on this exact.
    pub fn forward_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let y = self.forward(x)?;
        let ty = match *self {
            Activation::Identity => t.clone(),
            Activation::Relu | Activation::LeakyRelu(_) => {
                let a = match *self {
                    Activation::LeakyRelu(a) => a,
                    _ => 0.0,
                };
                let pos = x.ge(0.0)?.to_dtype(x.dtype())?.detach();
                // slope = a + (1 − a)·[x ≥ 0]
                let slope = ((pos * (1.0 - a))? + a)?;
                (t * slope)?
            }
            Activation::Tanh => {
                let d = (1.0 - y.sqr()?)?;
                (t * d)?
            }
            Activation::Sigmoid => {
                let d = (&y * (1.0 - &y)?)?;
                (t * d)?
            }
            Activation::Softplus => (t * ops::sigmoid(x)?)?,
        };
        Ok((y, ty))
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match *self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => ops::leaky_relu(x, 0.0),
            Activation::LeakyRelu(a) => ops::leaky_relu(x, a),
            Activation::Tanh => ops::tanh(x),
            Activation::Sigmoid => ops::sigmoid(x),
            Activation::Softplus => ops::softplus(x),
        }
    }
}

/// Configuration of a [`Conv2d`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel_size: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Activation applied to the output (fused into the kernel for
    /// (leaky) ReLU).
    pub activation: Activation,
}

impl Conv2dConfig {
    /// A `k×k` convolution with stride 1, no padding, a bias and no activation.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel_size,
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
            bias: true,
            activation: Activation::Identity,
        }
    }

    fn params(&self) -> ConvParams {
        ConvParams {
            padding: self.padding,
            stride: self.stride,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// Fused convolution + bias + activation.
fn finish(y: Result<Tensor>, act: Activation, fused: bool) -> Result<Tensor> {
    let y = y?;
    if fused {
        Ok(y)
    } else {
        act.forward(&y)
    }
}

/// A 2-D convolution layer `act(conv2d(x, weight) + bias)`, weight
/// `(out, in/groups, k, k)`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
}

impl Conv2d {
    /// Creates the layer, reading or initialising `weight` and `bias` from
    /// `vb` with `candle_nn::conv2d`'s default initialisation.
    pub fn new(cfg: &Conv2dConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.groups == 0
            || !cfg.in_channels.is_multiple_of(cfg.groups)
            || !cfg.out_channels.is_multiple_of(cfg.groups)
        {
            candle_core::bail!(
                "Conv2d: {} in / {} out channels are not divisible by groups={}",
                cfg.in_channels,
                cfg.out_channels,
                cfg.groups
            );
        }
        let weight = vb.get_with_hints(
            (
                cfg.out_channels,
                cfg.in_channels / cfg.groups,
                cfg.kernel_size,
                cfg.kernel_size,
            ),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if cfg.bias {
            let bound = 1. / (cfg.in_channels as f64).sqrt();
            Some(vb.get_with_hints(
                cfg.out_channels,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            cfg: *cfg,
        })
    }

    /// Wraps existing tensors (weight `(out, in/groups, k, k)`, bias `(out)`);
    /// the channel and kernel fields of `cfg` are taken from the weight.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, cfg: &Conv2dConfig) -> Result<Self> {
        let (out, in_g, k, _) = weight.dims4()?;
        let cfg = Conv2dConfig {
            in_channels: in_g * cfg.groups,
            out_channels: out,
            kernel_size: k,
            bias: bias.is_some(),
            ..*cfg
        };
        Ok(Self { weight, bias, cfg })
    }

    /// The weight `(out, in/groups, k, k)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The bias `(out)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    /// The configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }

    /// Forward pass with a tangent (forward-mode derivative): returns
    /// `(layer(x), ∂layer/∂x · t)`, both differentiable with respect to the
    /// weights (see [`Activation::forward_jvp`]). What an exact R1 penalty
    /// needs, since candle has no double backward.
    pub fn forward_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let p = self.cfg.params();
        let pre = ops::conv2d(x, &self.weight, self.bias.as_ref(), &p)?;
        let tpre = ops::conv2d(t, &self.weight, None, &p)?;
        self.cfg.activation.forward_jvp(&pre, &tpre)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let slope = self.cfg.activation.fusable_slope();
        let y = ops::conv2d_act(
            x,
            &self.weight,
            self.bias.as_ref(),
            &self.cfg.params(),
            slope,
        );
        finish(y, self.cfg.activation, slope.is_some())
    }
}

/// Configuration of a [`ConvTranspose2d`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel_size: usize,
    /// Padding removed from each side of the full output.
    pub padding: usize,
    /// Extra output rows/columns on one side.
    pub output_padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Activation applied to the output (fused for (leaky) ReLU).
    pub activation: Activation,
}

impl ConvTranspose2dConfig {
    /// A `k×k` transposed convolution with stride 1, no padding, a bias and no
    /// activation.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel_size,
            padding: 0,
            output_padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
            bias: true,
            activation: Activation::Identity,
        }
    }

    fn params(&self) -> ConvTransposeParams {
        ConvTransposeParams {
            padding: self.padding,
            output_padding: self.output_padding,
            stride: self.stride,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// A 2-D transposed convolution layer, weight `(in, out/groups, k, k)` as in
/// PyTorch and `candle_nn`.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// Creates the layer, reading or initialising `weight` and `bias` from
    /// `vb` with `candle_nn::conv_transpose2d`'s default initialisation.
    pub fn new(cfg: &ConvTranspose2dConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.groups == 0
            || !cfg.in_channels.is_multiple_of(cfg.groups)
            || !cfg.out_channels.is_multiple_of(cfg.groups)
        {
            candle_core::bail!(
                "ConvTranspose2d: {} in / {} out channels are not divisible by groups={}",
                cfg.in_channels,
                cfg.out_channels,
                cfg.groups
            );
        }
        let bound = 1. / (cfg.out_channels as f64).sqrt() / cfg.kernel_size as f64;
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints(
            (
                cfg.in_channels,
                cfg.out_channels / cfg.groups,
                cfg.kernel_size,
                cfg.kernel_size,
            ),
            "weight",
            init,
        )?;
        let bias = if cfg.bias {
            Some(vb.get_with_hints(cfg.out_channels, "bias", init)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            cfg: *cfg,
        })
    }

    /// Wraps existing tensors (weight `(in, out/groups, k, k)`, bias `(out)`).
    pub fn from_tensors(
        weight: Tensor,
        bias: Option<Tensor>,
        cfg: &ConvTranspose2dConfig,
    ) -> Result<Self> {
        let (cin, out_g, k, _) = weight.dims4()?;
        let cfg = ConvTranspose2dConfig {
            in_channels: cin,
            out_channels: out_g * cfg.groups,
            kernel_size: k,
            bias: bias.is_some(),
            ..*cfg
        };
        Ok(Self { weight, bias, cfg })
    }

    /// The weight `(in, out/groups, k, k)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The bias `(out)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    /// The configuration.
    pub fn config(&self) -> &ConvTranspose2dConfig {
        &self.cfg
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let slope = self.cfg.activation.fusable_slope();
        let y = ops::conv_transpose2d_act(
            x,
            &self.weight,
            self.bias.as_ref(),
            &self.cfg.params(),
            slope,
        );
        finish(y, self.cfg.activation, slope.is_some())
    }
}
