//! dlib-style ResNet building blocks shared by the face networks.
//!
//! dlib's face networks (the 128-D face-recognition net and the age
//! predictor) are built from the same pieces:
//! - [`ConvAffine`]: a convolution with bias followed by dlib's `affine`
//!   layer (a frozen batch norm, `x * scale + offset` per channel);
//! - [`Residual`]: `relu(conv2(relu(conv1(x))) + x)` with 3×3 "same"
//!   convolutions;
//! - [`ResidualDown`]: the same with a stride-2 "valid" first convolution; the
//!   shortcut is a 2×2 average pool, the main branch is zero-padded at its
//!   bottom and right edges to the shortcut's size and the shortcut is
//!   zero-padded with trailing channels to the main branch's channels;
//! - [`DlibResNet`]: a 7×7/2 "valid" stem, a 3×3/2 max pool, the residual
//!   blocks, a global mean over space and a fully connected layer.
//!
//! Weights are named `<block>.<conv1|conv2>.conv.{weight,bias}` and
//! `<block>.<conv1|conv2>.affine.{scale,offset}` (the stem has no
//! `conv1/conv2` level) and `<fc>.weight` `(out, in)`, `<fc>.bias`. At load
//! time the affine layer is folded into the convolution (`w·s`, `b·s + o`),
//! which is exact up to f32 rounding and saves a pass over the activations.

use agesynth_core::Result;
use agesynth_nn::ConvParams;
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

/// A convolution followed by a per-channel affine layer, folded into one
/// convolution with bias.
#[derive(Clone, Debug)]
pub struct ConvAffine {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvAffine {
    /// Loads `conv.weight` `(cout, cin, k, k)`, `conv.bias`, `affine.scale`
    /// and `affine.offset` `(cout,)` from `vb` and folds them.
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let vc = vb.pp("conv");
        let va = vb.pp("affine");
        let w = vc.get((cout, cin, kernel, kernel), "weight")?;
        let b = vc.get(cout, "bias")?;
        let s = va.get(cout, "scale")?;
        let o = va.get(cout, "offset")?;
        let weight = w.broadcast_mul(&s.reshape((cout, 1, 1, 1))?)?;
        let bias = (b.mul(&s)? + o)?;
        Ok(ConvAffine {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// Names and shapes of the tensors [`ConvAffine::new`] reads.
    pub fn tensor_shapes(
        prefix: &str,
        cin: usize,
        cout: usize,
        kernel: usize,
    ) -> Vec<(String, Vec<usize>)> {
        vec![
            (
                format!("{prefix}.conv.weight"),
                vec![cout, cin, kernel, kernel],
            ),
            (format!("{prefix}.conv.bias"), vec![cout]),
            (format!("{prefix}.affine.scale"), vec![cout]),
            (format!("{prefix}.affine.offset"), vec![cout]),
        ]
    }

    /// `(N, cin, H, W)` to `(N, cout, H', W')`, without activation.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, false)
    }

    /// The convolution, followed by a ReLU when `relu`. Runs on
    /// agesynth-nn's convolution kernels (fused bias and activation, with
    /// their own backward pass) on the CPU in f32, on candle's elsewhere.
    pub fn forward_act(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let p = ConvParams {
            padding: self.padding,
            stride: self.stride,
            ..ConvParams::default()
        };
        let slope = if relu { Some(0.0) } else { None };
        Ok(agesynth_nn::ops::conv2d_act(
            x,
            &self.weight,
            Some(&self.bias),
            &p,
            slope,
        )?)
    }
}

/// A residual block that keeps size and channels.
#[derive(Clone, Debug)]
pub struct Residual {
    conv1: ConvAffine,
    conv2: ConvAffine,
}

impl Residual {
    /// Loads `conv1` and `conv2`, both `channels → channels`, 3×3, padding 1.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Residual {
            conv1: ConvAffine::new(vb.pp("conv1"), channels, channels, 3, 1, 1)?,
            conv2: ConvAffine::new(vb.pp("conv2"), channels, channels, 3, 1, 1)?,
        })
    }

    /// `relu(conv2(relu(conv1(x))) + x)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward_act(x, true)?;
        let y = self.conv2.forward(&y)?;
        Ok((y + x)?.relu()?)
    }
}

/// A residual block that halves the size (and may widen the channels).
#[derive(Clone, Debug)]
pub struct ResidualDown {
    conv1: ConvAffine,
    conv2: ConvAffine,
}

impl ResidualDown {
    /// Loads `conv1` (`cin → cout`, 3×3, stride 2, no padding) and `conv2`
    /// (`cout → cout`, 3×3, padding 1).
    pub fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(ResidualDown {
            conv1: ConvAffine::new(vb.pp("conv1"), cin, cout, 3, 2, 0)?,
            conv2: ConvAffine::new(vb.pp("conv2"), cout, cout, 3, 1, 1)?,
        })
    }

    /// `relu(pad(conv2(relu(conv1(x)))) + pad(avg_pool_2x2(x)))`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward_act(x, true)?;
        let mut y = self.conv2.forward(&y)?;
        let mut s = x.avg_pool2d(2)?;
        let (_, cy, hy, wy) = y.dims4()?;
        let (_, cs, hs, ws) = s.dims4()?;
        if hy < hs {
            y = y.pad_with_zeros(2, 0, hs - hy)?;
        }
        if wy < ws {
            y = y.pad_with_zeros(3, 0, ws - wy)?;
        }
        if cs < cy {
            s = s.pad_with_zeros(1, 0, cy - cs)?;
        }
        Ok((y + s)?.relu()?)
    }
}

/// Whether a residual block keeps or halves the size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// [`Residual`].
    Same,
    /// [`ResidualDown`].
    Down,
}

/// One residual block of a [`ResNetSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    /// Weight-name prefix.
    pub name: &'static str,
    /// Keeps or halves the size.
    pub kind: BlockKind,
    /// Output channels.
    pub channels: usize,
}

/// The architecture of a dlib-style ResNet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResNetSpec {
    /// Weight-name prefix of the 7×7/2 stem convolution.
    pub stem: &'static str,
    /// Channels out of the stem.
    pub stem_channels: usize,
    /// The residual blocks in order.
    pub blocks: Vec<BlockSpec>,
    /// Weight-name prefix of the fully connected layer.
    pub fc: &'static str,
    /// Outputs of the fully connected layer.
    pub outputs: usize,
    /// Whether the fully connected layer has a bias.
    pub fc_bias: bool,
}

impl ResNetSpec {
    /// Names and shapes of every tensor the network reads, in order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = ConvAffine::tensor_shapes(self.stem, 3, self.stem_channels, 7);
        let mut c = self.stem_channels;
        for b in &self.blocks {
            out.extend(ConvAffine::tensor_shapes(
                &format!("{}.conv1", b.name),
                c,
                b.channels,
                3,
            ));
            out.extend(ConvAffine::tensor_shapes(
                &format!("{}.conv2", b.name),
                b.channels,
                b.channels,
                3,
            ));
            c = b.channels;
        }
        out.push((format!("{}.weight", self.fc), vec![self.outputs, c]));
        if self.fc_bias {
            out.push((format!("{}.bias", self.fc), vec![self.outputs]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn max_pool_matches_candle_and_has_a_gradient() {
        let x = candle_core::Var::from_tensor(
            &Tensor::randn(0f32, 1.0, (2, 3, 11, 12), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let ours = max_pool_3x3_s2(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().max_pool2d_with_stride(3, 2).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let d = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        let g = ours.sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap().sum_all().unwrap();
        // Each output passes a gradient of one to one input.
        assert_eq!(gx.to_scalar::<f32>().unwrap(), ours.elem_count() as f32);
    }
}

#[derive(Clone, Debug)]
enum Block {
    Same(Residual),
    Down(ResidualDown),
}

/// A dlib-style ResNet: stem, max pool, residual blocks, global mean, fully
/// connected layer. Differentiable with respect to its input.
#[derive(Clone, Debug)]
pub struct DlibResNet {
    stem: ConvAffine,
    blocks: Vec<Block>,
    fc_weight: Tensor,
    fc_bias: Option<Tensor>,
}

impl DlibResNet {
    /// Builds the network of `spec` from `vb` (weights converted to f32).
    pub fn new(spec: &ResNetSpec, vb: VarBuilder) -> Result<Self> {
        let vb = vb.set_dtype(DType::F32);
        let stem = ConvAffine::new(vb.pp(spec.stem), 3, spec.stem_channels, 7, 2, 0)?;
        let mut c = spec.stem_channels;
        let mut blocks = Vec::with_capacity(spec.blocks.len());
        for b in &spec.blocks {
            blocks.push(match b.kind {
                BlockKind::Same => Block::Same(Residual::new(vb.pp(b.name), b.channels)?),
                BlockKind::Down => Block::Down(ResidualDown::new(vb.pp(b.name), c, b.channels)?),
            });
            c = b.channels;
        }
        let vf = vb.pp(spec.fc);
        let fc_weight = vf.get((spec.outputs, c), "weight")?.t()?.contiguous()?;
        let fc_bias = if spec.fc_bias {
            Some(vf.get(spec.outputs, "bias")?)
        } else {
            None
        };
        Ok(DlibResNet {
            stem,
            blocks,
            fc_weight,
            fc_bias,
        })
    }

    /// Globally pooled features `(N, C)` of normalised chips `(N, 3, S, S)`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.stem.forward_act(x, true)?;
        x = max_pool_3x3_s2(&x)?;
        for b in &self.blocks {
            x = match b {
                Block::Same(r) => r.forward(&x)?,
                Block::Down(r) => r.forward(&x)?,
            };
        }
        Ok(x.flatten_from(2)?.mean(D::Minus1)?)
    }

    /// Outputs `(N, outputs)` of normalised chips `(N, 3, S, S)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.features(x)?;
        let y = f.matmul(&self.fc_weight)?;
        Ok(match &self.fc_bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// 3×3 max pool with stride 2, no padding ("valid"), written as a separable
/// maximum of shifted views followed by a strided selection: exact, and
/// differentiable (candle's `max_pool2d` has no backward pass when the
/// kernel differs from the stride).
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h < 3 || w < 3 {
        return Err(agesynth_core::Error::InvalidInput(format!(
            "a 3x3 max pool needs at least 3x3 inputs, got {h}x{w}"
        )));
    }
    let (oh, ow) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1);
    let mut r = x.narrow(2, 0, h - 2)?;
    for d in 1..3 {
        r = r.maximum(&x.narrow(2, d, h - 2)?)?;
    }
    let mut c = r.narrow(3, 0, w - 2)?;
    for d in 1..3 {
        c = c.maximum(&r.narrow(3, d, w - 2)?)?;
    }
    let dev = x.device();
    let iy = Tensor::arange_step(0u32, 2 * oh as u32, 2, dev)?;
    let ix = Tensor::arange_step(0u32, 2 * ow as u32, 2, dev)?;
    Ok(c.index_select(&iy, 2)?.index_select(&ix, 3)?)
}

/// Loads the weights file `path` for the network `spec` onto `device`,
/// checking that it holds exactly the tensors the network reads with the
/// right shapes; errors name the file and the tensor.
pub fn load_checked(
    spec: &ResNetSpec,
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<VarBuilder<'static>> {
    crate::import::checked_var_builder(spec.tensor_shapes(), path, device, "this network")
}
