//! face-api's age and gender network (`AgeGenderNet`), as shipped in
//! TF.js by the npm package `@vladmandic/face-api`.
//!
//! The network maps a 112×112 RGB face to an age in years (a regression
//! output) and to the probabilities of male and female (a 2-way softmax).
//! Architecture (face-api's `src/ageGenderNet/` and `src/xception/`): a
//! TinyXception feature extractor with two middle blocks, a 7×7 average pool
//! (the global mean of its 7×7 output) and two fully connected heads on the
//! 512 pooled features, `fc.age` (1 output) and `fc.gender` (2 outputs,
//! softmax). TinyXception, with TF's "same" padding everywhere:
//! - entry flow: a 3×3/2 convolution with bias (3 → 32) and a ReLU, then
//!   two reduction blocks 32 → 64 and 64 → 128;
//! - middle flow: two main blocks of 128 channels,
//!   `x + sep2(relu(sep1(relu(sep0(relu(x))))))`;
//! - exit flow: a reduction block 128 → 256, then a separable convolution
//!   256 → 512 and a ReLU.
//!
//! A reduction block is `maxpool3x3/2(sep1(relu(sep0(relu?(x))))) +
//! conv1x1/2(x)` (the first one skips the leading ReLU: its input is already
//! rectified); a separable convolution is a 3×3 depthwise convolution
//! without bias, a 1×1 pointwise convolution and a bias.
//!
//! Input preparation (face-api's `NetInput.toBatchTensor(112, true)` after
//! `extractFaceTensors`): the face box is sliced out of the image, padded
//! with black to a centred square, resized with TF.js's bilinear
//! `resizeBilinear` (no half-pixel centres, no antialiasing) to 112×112, and
//! normalised `(pixel − [122.782, 117.001, 104.298]) / 255` (see
//! [`crate::chip::face_api_resize`]).
//!
//! [`FaceApiAgeGender::predict_chips`] runs the network on its own 112×112
//! inputs; [`FaceApiAgeGender::predict_faces`] prepares whole face crops as
//! face-api does; [`FaceApiAgeGender::predict`] (and
//! [`AgeEstimator::estimate`]) takes agesynth's UTKFace-framed images in
//! `[-1, 1]` and cuts out of them the box face-api's detector draws around a
//! UTKFace face ([`AgeGenderConfig::face_box`]).

use std::{collections::HashMap, path::Path};

use agesynth_core::{AgeEstimator, Error, Result};
use agesynth_nn::ops::{pad_same, PadWith};
use agesynth_nn::ConvParams;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::{
    chip::{self, FaceRect},
    import::{ensure_consumed, take_raw, RawTensor},
    resnet::max_pool_3x3_s2,
};

/// Side of the network's input.
pub const INPUT_SIZE: usize = 112;
/// Per-channel RGB means subtracted from the pixels.
pub const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// Divisor applied after subtracting the means.
pub const PIXEL_DIVISOR: f32 = 255.0;
/// Features pooled from the backbone, the heads' input.
pub const FEATURES: usize = 512;
/// Index of "male" in the gender probabilities (face-api reads
/// `probMale` at index 0).
pub const MALE: usize = 0;
/// Index of "female" in the gender probabilities.
pub const FEMALE: usize = 1;

/// The face box face-api's default detector (SSD MobileNet v1) draws on a
/// UTKFace chip, in fractions of the chip: the median over 136 chips of
/// UTKFace (see `weights/README.md`, measured by
/// `scripts/face-fixtures/measure_face_api_framing.py`). It is taller than
/// wide and reaches 3% above the chip's top edge.
pub const UTKFACE_DETECTION_BOX: FaceRect = FaceRect {
    left: 0.051,
    top: -0.030,
    width: 0.858,
    height: 0.963,
};

/// Configuration of the [`FaceApiAgeGender`] network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgeGenderConfig {
    /// Main blocks in TinyXception's middle flow (2 in face-api's
    /// AgeGenderNet).
    pub main_blocks: usize,
    /// Where the face box lies in a UTKFace-framed image
    /// ([`UTKFACE_DETECTION_BOX`]); outside the image reads as black.
    pub face_box: FaceRect,
}

impl Default for AgeGenderConfig {
    fn default() -> Self {
        AgeGenderConfig {
            main_blocks: 2,
            face_box: UTKFACE_DETECTION_BOX,
        }
    }
}

/// A convolution with bias, applied with TF's "same" padding.
#[derive(Clone, Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
}

impl Conv {
    fn new(vb: VarBuilder, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Self> {
        Ok(Conv {
            weight: vb.get((cout, cin, k, k), "weight")?,
            bias: vb.get(cout, "bias")?,
            stride,
        })
    }

    fn shapes(prefix: &str, cin: usize, cout: usize, k: usize) -> Vec<(String, Vec<usize>)> {
        vec![
            (format!("{prefix}.weight"), vec![cout, cin, k, k]),
            (format!("{prefix}.bias"), vec![cout]),
        ]
    }

    fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let k = self.weight.dim(2)?;
        let x = pad_same(x, k, self.stride, PadWith::Zeros)?;
        let p = ConvParams {
            stride: self.stride,
            ..ConvParams::default()
        };
        let slope = relu.then_some(0.0);
        Ok(agesynth_nn::ops::conv2d_act(
            &x,
            &self.weight,
            Some(&self.bias),
            &p,
            slope,
        )?)
    }
}

/// TF's `separableConv2d` with "same" padding and stride 1, plus a bias: a
/// 3×3 depthwise convolution (`depthwise`, `(C, 1, 3, 3)`, no bias) then a
/// 1×1 pointwise one (`pointwise`, `(out, C, 1, 1)`) and `bias`.
#[derive(Clone, Debug)]
struct SeparableConv {
    depthwise: Tensor,
    pointwise: Tensor,
    bias: Tensor,
}

impl SeparableConv {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(SeparableConv {
            depthwise: vb.get((cin, 1, 3, 3), "depthwise")?,
            pointwise: vb.get((cout, cin, 1, 1), "pointwise")?,
            bias: vb.get(cout, "bias")?,
        })
    }

    fn shapes(prefix: &str, cin: usize, cout: usize) -> Vec<(String, Vec<usize>)> {
        vec![
            (format!("{prefix}.depthwise"), vec![cin, 1, 3, 3]),
            (format!("{prefix}.pointwise"), vec![cout, cin, 1, 1]),
            (format!("{prefix}.bias"), vec![cout]),
        ]
    }

    /// The convolution, followed by a ReLU when `relu`.
    fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let c = self.depthwise.dim(0)?;
        let dw = ConvParams {
            padding: 1,
            groups: c,
            ..ConvParams::default()
        };
        let y = agesynth_nn::ops::conv2d(x, &self.depthwise, None, &dw)?;
        let slope = relu.then_some(0.0);
        Ok(agesynth_nn::ops::conv2d_act(
            &y,
            &self.pointwise,
            Some(&self.bias),
            &ConvParams::default(),
            slope,
        )?)
    }
}

/// TinyXception's reduction block: two separable convolutions, a 3×3/2 max
/// pool, plus a 1×1/2 convolution of the block's input.
#[derive(Clone, Debug)]
struct ReductionBlock {
    separable_conv0: SeparableConv,
    separable_conv1: SeparableConv,
    expansion_conv: Conv,
}

impl ReductionBlock {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(ReductionBlock {
            separable_conv0: SeparableConv::new(vb.pp("separable_conv0"), cin, cout)?,
            separable_conv1: SeparableConv::new(vb.pp("separable_conv1"), cout, cout)?,
            expansion_conv: Conv::new(vb.pp("expansion_conv"), cin, cout, 1, 2)?,
        })
    }

    fn shapes(prefix: &str, cin: usize, cout: usize) -> Vec<(String, Vec<usize>)> {
        let mut v = SeparableConv::shapes(&format!("{prefix}.separable_conv0"), cin, cout);
        v.extend(SeparableConv::shapes(
            &format!("{prefix}.separable_conv1"),
            cout,
            cout,
        ));
        v.extend(Conv::shapes(
            &format!("{prefix}.expansion_conv"),
            cin,
            cout,
            1,
        ));
        v
    }

    fn forward(&self, x: &Tensor, activate_input: bool) -> Result<Tensor> {
        let input = if activate_input { x.relu()? } else { x.clone() };
        let out = self.separable_conv0.forward(&input, true)?;
        let out = self.separable_conv1.forward(&out, false)?;
        let out = max_pool_3x3_s2(&pad_same(&out, 3, 2, PadWith::Edge)?)?;
        Ok((out + self.expansion_conv.forward(x, false)?)?)
    }
}

/// TinyXception's main block: three separable convolutions with a residual
/// connection.
#[derive(Clone, Debug)]
struct MainBlock {
    separable_conv0: SeparableConv,
    separable_conv1: SeparableConv,
    separable_conv2: SeparableConv,
}

impl MainBlock {
    fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(MainBlock {
            separable_conv0: SeparableConv::new(vb.pp("separable_conv0"), c, c)?,
            separable_conv1: SeparableConv::new(vb.pp("separable_conv1"), c, c)?,
            separable_conv2: SeparableConv::new(vb.pp("separable_conv2"), c, c)?,
        })
    }

    fn shapes(prefix: &str, c: usize) -> Vec<(String, Vec<usize>)> {
        (0..3)
            .flat_map(|i| SeparableConv::shapes(&format!("{prefix}.separable_conv{i}"), c, c))
            .collect()
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.separable_conv0.forward(&x.relu()?, true)?;
        let out = self.separable_conv1.forward(&out, true)?;
        let out = self.separable_conv2.forward(&out, false)?;
        Ok((out + x)?)
    }
}

/// TinyXception's entry flow.
#[derive(Clone, Debug)]
struct EntryFlow {
    conv_in: Conv,
    reduction_block_0: ReductionBlock,
    reduction_block_1: ReductionBlock,
}

/// TinyXception's exit flow.
#[derive(Clone, Debug)]
struct ExitFlow {
    reduction_block: ReductionBlock,
    separable_conv: SeparableConv,
}

/// face-api's TinyXception feature extractor: `(N, 3, 112, 112)` normalised
/// pixels to `(N, 512, 7, 7)` rectified features. Weights under
/// `entry_flow.*`, `middle_flow.main_block_<i>.*` and `exit_flow.*`.
#[derive(Clone, Debug)]
pub struct TinyXception {
    entry_flow: EntryFlow,
    middle_flow: Vec<MainBlock>,
    exit_flow: ExitFlow,
}

impl TinyXception {
    /// Builds the extractor with `main_blocks` middle blocks from `vb`.
    pub fn new(main_blocks: usize, vb: VarBuilder) -> Result<Self> {
        let ve = vb.pp("entry_flow");
        let vm = vb.pp("middle_flow");
        let vx = vb.pp("exit_flow");
        Ok(TinyXception {
            entry_flow: EntryFlow {
                conv_in: Conv::new(ve.pp("conv_in"), 3, 32, 3, 2)?,
                reduction_block_0: ReductionBlock::new(ve.pp("reduction_block_0"), 32, 64)?,
                reduction_block_1: ReductionBlock::new(ve.pp("reduction_block_1"), 64, 128)?,
            },
            middle_flow: (0..main_blocks)
                .map(|i| MainBlock::new(vm.pp(format!("main_block_{i}")), 128))
                .collect::<Result<_>>()?,
            exit_flow: ExitFlow {
                reduction_block: ReductionBlock::new(vx.pp("reduction_block"), 128, 256)?,
                separable_conv: SeparableConv::new(vx.pp("separable_conv"), 256, FEATURES)?,
            },
        })
    }

    /// Names (under `prefix`) and shapes of the tensors
    /// [`TinyXception::new`] reads.
    pub fn tensor_shapes(prefix: &str, main_blocks: usize) -> Vec<(String, Vec<usize>)> {
        let mut v = Conv::shapes(&format!("{prefix}entry_flow.conv_in"), 3, 32, 3);
        v.extend(ReductionBlock::shapes(
            &format!("{prefix}entry_flow.reduction_block_0"),
            32,
            64,
        ));
        v.extend(ReductionBlock::shapes(
            &format!("{prefix}entry_flow.reduction_block_1"),
            64,
            128,
        ));
        for i in 0..main_blocks {
            v.extend(MainBlock::shapes(
                &format!("{prefix}middle_flow.main_block_{i}"),
                128,
            ));
        }
        v.extend(ReductionBlock::shapes(
            &format!("{prefix}exit_flow.reduction_block"),
            128,
            256,
        ));
        v.extend(SeparableConv::shapes(
            &format!("{prefix}exit_flow.separable_conv"),
            256,
            FEATURES,
        ));
        v
    }

    /// Features `(N, 512, H/16, W/16)` of normalised inputs `(N, 3, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let e = &self.entry_flow;
        let mut out = e.conv_in.forward(x, true)?;
        out = e.reduction_block_0.forward(&out, false)?;
        out = e.reduction_block_1.forward(&out, true)?;
        for block in &self.middle_flow {
            out = block.forward(&out)?;
        }
        out = self.exit_flow.reduction_block.forward(&out, true)?;
        self.exit_flow.separable_conv.forward(&out, true)
    }
}

/// The two heads on the pooled features.
#[derive(Clone, Debug)]
struct Heads {
    age: candle_nn::Linear,
    gender: candle_nn::Linear,
}

/// What [`FaceApiAgeGender`] says about a batch of faces.
#[derive(Clone, Debug)]
pub struct AgeGender {
    /// Ages in years `(N,)` (the regression output, unclamped).
    pub age: Tensor,
    /// Gender probabilities `(N, 2)`: [`MALE`], [`FEMALE`].
    pub gender: Tensor,
}

impl AgeGender {
    /// The probability of female `(N,)`.
    pub fn female(&self) -> Result<Tensor> {
        Ok(self.gender.narrow(1, FEMALE, 1)?.squeeze(1)?)
    }
}

/// face-api's AgeGenderNet: age and gender of faces. Weights under
/// `xception.*` (the [`TinyXception`]) and `fc.age.*`, `fc.gender.*`
/// (`weight` `(out, 512)`, `bias`).
#[derive(Clone, Debug)]
pub struct FaceApiAgeGender {
    xception: TinyXception,
    fc: Heads,
    cfg: AgeGenderConfig,
}

impl FaceApiAgeGender {
    /// Builds the network from `vb` (names as in
    /// [`FaceApiAgeGender::tensor_shapes`]).
    pub fn new(cfg: &AgeGenderConfig, vb: VarBuilder) -> Result<Self> {
        let f = cfg.face_box;
        if !(f.width > 0.0 && f.height > 0.0 && f.left.is_finite() && f.top.is_finite()) {
            return Err(Error::Config(format!(
                "the age-gender net's face box must have a positive size, got {f:?}"
            )));
        }
        let vf = vb.pp("fc");
        Ok(FaceApiAgeGender {
            xception: TinyXception::new(cfg.main_blocks, vb.pp("xception"))?,
            fc: Heads {
                age: candle_nn::linear(FEATURES, 1, vf.pp("age"))?,
                gender: candle_nn::linear(FEATURES, 2, vf.pp("gender"))?,
            },
            cfg: cfg.clone(),
        })
    }

    /// Names and shapes of every tensor of the network with `main_blocks`
    /// middle blocks.
    pub fn tensor_shapes(main_blocks: usize) -> Vec<(String, Vec<usize>)> {
        let mut v = TinyXception::tensor_shapes("xception.", main_blocks);
        for (head, out) in [("age", 1), ("gender", 2)] {
            v.push((format!("fc.{head}.weight"), vec![out, FEATURES]));
            v.push((format!("fc.{head}.bias"), vec![out]));
        }
        v
    }

    /// Loads the weights file written by `agesynth weights import` (f32 or
    /// f16), checking that it holds exactly the network's tensors. A missing,
    /// truncated or mismatched file is an error naming the file and, where it
    /// is one tensor's fault, the tensor.
    pub fn load(cfg: &AgeGenderConfig, path: &Path, device: &Device) -> Result<Self> {
        let vb = crate::import::checked_var_builder(
            Self::tensor_shapes(cfg.main_blocks),
            path,
            device,
            "the age-gender network",
        )?;
        Self::new(cfg, vb)
    }

    /// The configuration.
    pub fn config(&self) -> &AgeGenderConfig {
        &self.cfg
    }

    /// Age and gender of network inputs `(N, 3, 112, 112)`: RGB f32 pixels
    /// in `[0, 255]`, prepared as face-api prepares them.
    pub fn predict_chips(&self, chips: &Tensor) -> Result<AgeGender> {
        chip::check_images(chips, "the age-gender network")?;
        let (_, _, h, w) = chips.dims4()?;
        if (h, w) != (INPUT_SIZE, INPUT_SIZE) {
            return Err(Error::InvalidInput(format!(
                "the age-gender network takes {INPUT_SIZE}x{INPUT_SIZE} inputs, got {h}x{w} \
                 (prepare faces with predict_faces)"
            )));
        }
        let x = chip::normalize(chips, MEAN_RGB, PIXEL_DIVISOR)?;
        let features = self.xception.forward(&x)?;
        // face-api: avgPool 7x7, stride 2, "valid", on the 7x7 features of a
        // 112x112 input: one window, the mean over space (written as a mean,
        // which candle differentiates; its strided pool has no backward).
        let pooled = features.flatten_from(2)?.mean(2)?;
        let age = candle_nn::Module::forward(&self.fc.age, &pooled)?.squeeze(1)?;
        let logits = candle_nn::Module::forward(&self.fc.gender, &pooled)?;
        let gender = candle_nn::ops::softmax(&logits, D::Minus1)?;
        Ok(AgeGender { age, gender })
    }

    /// Age and gender of whole face crops `(N, 3, H, W)` (RGB f32 pixels in
    /// `[0, 255]`, any size): padded to a square and resized to 112 exactly
    /// as face-api's `predictAgeAndGender` does with a face tensor.
    pub fn predict_faces(&self, faces: &Tensor) -> Result<AgeGender> {
        chip::check_images(faces, "the age-gender network")?;
        self.predict_chips(&chip::face_api_resize(
            faces,
            FaceRect::FULL.pixels(faces.dim(3)?, faces.dim(2)?),
            INPUT_SIZE,
        )?)
    }

    /// The network's inputs `(N, 3, 112, 112)` (pixels in `[0, 255]`) for
    /// UTKFace-framed images `(N, 3, H, W)` in `[-1, 1]`: the configured face
    /// box ([`AgeGenderConfig::face_box`]) cut out and prepared as face-api
    /// prepares a detected face. Differentiable.
    pub fn chips(&self, images: &Tensor) -> Result<Tensor> {
        let px = chip::to_pixels(&images.to_dtype(DType::F32)?)?;
        let rect = self.cfg.face_box.pixels(px.dim(3)?, px.dim(2)?);
        chip::face_api_resize(&px, rect, INPUT_SIZE)
    }

    /// Age and gender of UTKFace-framed images `(N, 3, H, W)` in `[-1, 1]`.
    pub fn predict(&self, images: &Tensor) -> Result<AgeGender> {
        chip::check_images(images, "the age-gender network")?;
        self.predict_chips(&self.chips(images)?)
    }
}

impl AgeEstimator for FaceApiAgeGender {
    fn estimate(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.predict(images)?.age)
    }
}

/// Renames and transposes face-api's TF.js tensors (`HWIO` filters,
/// `(H, W, C, 1)` depthwise filters, `(in, out)` fc weights) to the names
/// and layouts of [`FaceApiAgeGender::tensor_shapes`] (`OIHW`,
/// `(C, 1, H, W)`, `(out, in)`).
pub(crate) fn tensors_from_tfjs(
    mut tf: HashMap<String, RawTensor>,
    path: &Path,
    main_blocks: usize,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, shape) in FaceApiAgeGender::tensor_shapes(main_blocks) {
        let base = name.strip_prefix("xception.").unwrap_or(&name);
        let (stem, leaf) = base.rsplit_once('.').unwrap_or(("", base));
        let src_leaf = match (stem.starts_with("fc."), leaf) {
            (true, "weight") => "weights",
            (false, "weight") => "filters",
            (_, "depthwise") => "depthwise_filter",
            (_, "pointwise") => "pointwise_filter",
            (_, other) => other,
        };
        let src = format!("{}/{src_leaf}", stem.replace('.', "/"));
        let t = match (leaf, shape.as_slice()) {
            ("depthwise", [c, 1, kh, kw]) => take_raw(&mut tf, path, &src, &[*kh, *kw, *c, 1])?
                .to_tensor()?
                .permute((2, 3, 0, 1))?
                .contiguous()?,
            (_, [o, i, kh, kw]) => take_raw(&mut tf, path, &src, &[*kh, *kw, *i, *o])?
                .to_tensor()?
                .permute((3, 2, 0, 1))?
                .contiguous()?,
            (_, [o, i]) => take_raw(&mut tf, path, &src, &[*i, *o])?
                .to_tensor()?
                .t()?
                .contiguous()?,
            _ => take_raw(&mut tf, path, &src, &shape)?.to_tensor()?,
        };
        out.insert(name, t);
    }
    ensure_consumed(&tf, path)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_network_gives_shapes_and_probabilities() {
        let dev = Device::Cpu;
        let vars = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let net = FaceApiAgeGender::new(&AgeGenderConfig::default(), vb).unwrap();
        let names: std::collections::BTreeSet<String> =
            vars.data().lock().unwrap().keys().cloned().collect();
        let want: std::collections::BTreeSet<String> = FaceApiAgeGender::tensor_shapes(2)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, want);
        let x = Tensor::rand(-1f32, 1.0, (2, 3, 64, 64), &dev).unwrap();
        let out = net.predict(&x).unwrap();
        assert_eq!(out.age.dims(), &[2]);
        assert_eq!(out.gender.dims(), &[2, 2]);
        for row in out.gender.to_vec2::<f32>().unwrap() {
            assert!((row[0] + row[1] - 1.0).abs() < 1e-5, "{row:?}");
        }
        assert_eq!(out.female().unwrap().dims(), &[2]);
        let wrong = Tensor::zeros((1, 3, 100, 100), DType::F32, &dev).unwrap();
        assert!(net.predict_chips(&wrong).is_err());
    }
}
