//! MobileNet v1 (Howard et al., 2017) with folded batch norm and ReLU6, as
//! TensorFlow builds it ("same" padding): the backbone of HSE FaceRes, an
//! identity network `agesynth-face` imports, and of the identity critic
//! `agesynth-critic` fine-tunes from it.
//!
//! A 3×3/2 convolution to 32 channels, then 13 depthwise-separable blocks
//! (3×3 depthwise, per-channel scale and shift, ReLU6; 1×1 pointwise with a
//! bias, ReLU6) of 64, 128, 128, 256, 256, 512 (×6), 1024, 1024 channels,
//! halving the resolution at blocks 2, 4, 6 and 12, and a global mean pool
//! to 1,024 features. Weight names follow [`MobileNetV1::tensor_shapes`]
//! (`stem`, `stem_bias`, `blocks.i.depthwise`, …).

use candle_core::{bail, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::ops::{self, pad_same, ConvParams, PadWith};

/// Width of the pooled features.
pub const FEATURE_DIM: usize = 1024;
/// Smallest input side (the network halves it five times).
pub const MIN_INPUT: usize = 32;
/// The value ReLU6 clips at.
const RELU6: f64 = 6.0;
/// Channels of the stem.
const STEM: usize = 32;

/// Output channels and stride of the 13 depthwise-separable blocks.
pub const BLOCKS: [(usize, usize); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

/// `min(max(x, 0), 6)`.
fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu()?.minimum(RELU6)
}

/// One depthwise-separable block.
#[derive(Clone, Debug)]
struct Block {
    depthwise: Tensor,
    depthwise_scale: Tensor,
    depthwise_bias: Tensor,
    pointwise: Tensor,
    pointwise_bias: Tensor,
    stride: usize,
}

impl Block {
    fn shapes(prefix: &str, cin: usize, cout: usize) -> Vec<(String, Vec<usize>)> {
        vec![
            (format!("{prefix}.depthwise"), vec![cin, 1, 3, 3]),
            (format!("{prefix}.depthwise_scale"), vec![cin]),
            (format!("{prefix}.depthwise_bias"), vec![cin]),
            (format!("{prefix}.pointwise"), vec![cout, cin, 1, 1]),
            (format!("{prefix}.pointwise_bias"), vec![cout]),
        ]
    }

    fn new(vb: VarBuilder, cin: usize, cout: usize, stride: usize) -> Result<Self> {
        Ok(Block {
            depthwise: vb.get((cin, 1, 3, 3), "depthwise")?,
            depthwise_scale: vb.get(cin, "depthwise_scale")?,
            depthwise_bias: vb.get(cin, "depthwise_bias")?,
            pointwise: vb.get((cout, cin, 1, 1), "pointwise")?,
            pointwise_bias: vb.get(cout, "pointwise_bias")?,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.depthwise.dim(0)?;
        let p = ConvParams {
            stride: self.stride,
            groups: c,
            ..ConvParams::default()
        };
        let x = pad_same(x, 3, self.stride, PadWith::Zeros)?;
        let y = ops::conv2d(&x, &self.depthwise, None, &p)?;
        let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
        let y = y
            .broadcast_mul(&per_channel(&self.depthwise_scale)?)?
            .broadcast_add(&per_channel(&self.depthwise_bias)?)?;
        let y = relu6(&y)?;
        let y = ops::conv2d(
            &y,
            &self.pointwise,
            Some(&self.pointwise_bias),
            &ConvParams::default(),
        )?;
        relu6(&y)
    }
}

/// MobileNet v1's feature extractor: `(N, 3, S, S)` to `(N, 1024)`.
#[derive(Clone, Debug)]
pub struct MobileNetV1 {
    stem: Tensor,
    stem_bias: Tensor,
    blocks: Vec<Block>,
}

impl MobileNetV1 {
    /// Builds the network from `vb` (names as in [`Self::tensor_shapes`]).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let mut cin = STEM;
        let mut blocks = Vec::with_capacity(BLOCKS.len());
        for (i, &(cout, stride)) in BLOCKS.iter().enumerate() {
            blocks.push(Block::new(vb.pp(format!("blocks.{i}")), cin, cout, stride)?);
            cin = cout;
        }
        Ok(MobileNetV1 {
            stem: vb.get((STEM, 3, 3, 3), "stem")?,
            stem_bias: vb.get(STEM, "stem_bias")?,
            blocks,
        })
    }

    /// Every tensor's name and shape (`OIHW` convolutions, `(C, 1, 3, 3)`
    /// depthwise filters).
    pub fn tensor_shapes() -> Vec<(String, Vec<usize>)> {
        let mut v = vec![
            ("stem".to_string(), vec![STEM, 3, 3, 3]),
            ("stem_bias".to_string(), vec![STEM]),
        ];
        let mut cin = STEM;
        for (i, &(cout, _)) in BLOCKS.iter().enumerate() {
            v.extend(Block::shapes(&format!("blocks.{i}"), cin, cout));
            cin = cout;
        }
        v
    }

    /// The pooled features `(N, 1024)` of inputs `(N, 3, S, S)`, `S` at
    /// least [`MIN_INPUT`] (the value range is the one the weights were
    /// trained with).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h < MIN_INPUT || w < MIN_INPUT {
            bail!(
                "MobileNet v1 takes (N, 3, S, S) inputs with S ≥ {MIN_INPUT}, got {:?}",
                x.dims()
            );
        }
        let x = pad_same(x, 3, 2, PadWith::Zeros)?;
        let p = ConvParams {
            stride: 2,
            ..ConvParams::default()
        };
        let mut x = relu6(&ops::conv2d(&x, &self.stem, Some(&self.stem_bias), &p)?)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        x.mean(D::Minus1)?.mean(D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::random::{seeded_normal, seeded_uniform};
    use candle_core::{DType, Device};

    #[test]
    fn features_have_the_width_and_bounds_of_relu6() {
        let dev = Device::Cpu;
        let vb = VarBuilder::from_tensors(
            MobileNetV1::tensor_shapes()
                .into_iter()
                .enumerate()
                .map(|(i, (n, s))| {
                    let t =
                        seeded_normal(400 + i as u64, 0.3, s.as_slice(), DType::F32, &dev).unwrap();
                    (n, t)
                })
                .collect(),
            DType::F32,
            &dev,
        );
        let net = MobileNetV1::new(vb).unwrap();
        let x = seeded_uniform(4, 0.0, 1.0, &[2, 3, 40, 40][..], DType::F32, &dev).unwrap();
        let f = net.forward(&x).unwrap();
        assert_eq!(f.dims(), &[2, FEATURE_DIM]);
        let v: Vec<f32> = f.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|a| (0.0..=6.0).contains(a)), "ReLU6 bounds");
        assert!(v.iter().any(|a| *a > 0.0));
        let small = Tensor::zeros((1, 3, 16, 16), DType::F32, &dev).unwrap();
        assert!(net.forward(&small).is_err());
        assert_eq!(MobileNetV1::tensor_shapes().len(), 2 + 5 * BLOCKS.len());
    }
}
