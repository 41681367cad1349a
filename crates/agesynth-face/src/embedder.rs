//! dlib's 128-D face-recognition ResNet (`dlib_face_recognition_resnet_model_v1`),
//! as shipped by face-api.js.
//!
//! The network maps a 150×150 RGB chip, aligned by dlib's 5-point
//! `get_face_chip_details(shape, 150, 0.25)`, to a 128-D descriptor; two
//! faces are the same person when their descriptors are closer than 0.6 in
//! L2 distance (dlib's threshold; 99.38% on LFW). Architecture (dlib's
//! `anet_type`, face-api's `FaceRecognitionNet`): 7×7/2 stem with 32
//! channels, 3×3/2 max pool, residual stages 32 (×3), 64 (down + ×3),
//! 128 (down + ×2), 256 (down + ×2, down), global mean, 128-D linear layer
//! without bias. Input normalisation: `(pixel − [122.782, 117.001,
//! 104.298]) / 255` on RGB pixels in `[0, 255]`.
//!
//! [`DlibFaceEmbedder::embed_chips`] runs the network on its own chips;
//! [`FaceEmbedder::embed`] takes agesynth's UTKFace-framed images in
//! `[-1, 1]` and cuts the chip out of them differentiably (see
//! [`crate::chip`]).

use std::{collections::HashMap, path::Path};

use agesynth_core::{FaceEmbedder, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::{
    chip::{self, ChipBox},
    import::{ensure_consumed, take_raw, RawTensor},
    resnet::{self, BlockKind, BlockSpec, DlibResNet, ResNetSpec},
};

/// Side of the network's input chip.
pub const CHIP_SIZE: usize = 150;
/// Per-channel RGB means subtracted from the pixels.
pub const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// Divisor applied after subtracting the means.
pub const PIXEL_DIVISOR: f32 = 255.0;
/// Size of the descriptor.
pub const EMBEDDING_DIM: usize = 128;

/// Configuration of the [`DlibFaceEmbedder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedderConfig {
    /// dlib padding of the chips the network was trained on (0.25); with
    /// [`crate::chip::UTKFACE_PADDING`] it fixes where the chip lies in a
    /// UTKFace-framed image.
    pub chip_padding: f64,
    /// L2 distance below which two faces are the same person (0.6).
    pub threshold: f32,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig {
            chip_padding: 0.25,
            threshold: 0.6,
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
        stem: "conv32_down",
        stem_channels: 32,
        blocks: vec![
            b("conv32_1", Same, 32),
            b("conv32_2", Same, 32),
            b("conv32_3", Same, 32),
            b("conv64_down", Down, 64),
            b("conv64_1", Same, 64),
            b("conv64_2", Same, 64),
            b("conv64_3", Same, 64),
            b("conv128_down", Down, 128),
            b("conv128_1", Same, 128),
            b("conv128_2", Same, 128),
            b("conv256_down", Down, 256),
            b("conv256_1", Same, 256),
            b("conv256_2", Same, 256),
            b("conv256_down_out", Down, 256),
        ],
        fc: "fc",
        outputs: EMBEDDING_DIM,
        fc_bias: false,
    }
}

/// dlib's face-recognition network behind [`FaceEmbedder`].
#[derive(Clone, Debug)]
pub struct DlibFaceEmbedder {
    net: DlibResNet,
    cfg: EmbedderConfig,
}

impl DlibFaceEmbedder {
    /// Builds the network from `vb` (names as in [`spec`]).
    pub fn new(cfg: &EmbedderConfig, vb: VarBuilder) -> Result<Self> {
        Ok(DlibFaceEmbedder {
            net: DlibResNet::new(&spec(), vb)?,
            cfg: cfg.clone(),
        })
    }

    /// Loads the weights file written by `agesynth weights import` (f32 or
    /// f16). A missing, truncated or mismatched file is an error naming the
    /// file and, where it is one tensor's fault, the tensor.
    pub fn load(cfg: &EmbedderConfig, path: &Path, device: &Device) -> Result<Self> {
        Self::new(cfg, resnet::load_checked(&spec(), path, device)?)
    }

    /// The configuration.
    pub fn config(&self) -> &EmbedderConfig {
        &self.cfg
    }

    /// Descriptors `(N, 128)` of dlib chips `(N, 3, 150, 150)`: RGB f32
    /// pixels in `[0, 255]`, aligned as by `get_face_chip_details(shape, 150,
    /// 0.25)`.
    pub fn embed_chips(&self, chips: &Tensor) -> Result<Tensor> {
        chip::check_images(chips, "the face embedder")?;
        let x = chip::normalize(chips, MEAN_RGB, PIXEL_DIVISOR)?;
        self.net.forward(&x)
    }

    /// Cuts the network's chips `(N, 3, 150, 150)` (pixels in `[0, 255]`)
    /// out of UTKFace-framed images `(N, 3, H, W)` in `[-1, 1]`:
    /// differentiable resampling of the centred square of
    /// [`ChipBox::for_padding`]`(0.25)`.
    pub fn chips(&self, images: &Tensor) -> Result<Tensor> {
        // The weights are f32: compute in f32 whatever the images' dtype
        // (the cast is differentiable).
        let px = chip::to_pixels(&images.to_dtype(candle_core::DType::F32)?)?;
        chip::crop_resize(&px, ChipBox::for_padding(self.cfg.chip_padding), CHIP_SIZE)
    }
}

impl FaceEmbedder for DlibFaceEmbedder {
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        chip::check_images(images, "the face embedder")?;
        self.embed_chips(&self.chips(images)?)
    }

    fn dim(&self) -> usize {
        EMBEDDING_DIM
    }

    fn threshold(&self) -> f32 {
        self.cfg.threshold
    }
}

/// Renames and transposes face-api's TF.js tensors (`HWIO` filters, `(in,
/// out)` fc) to the names and layouts of [`spec`] (`OIHW`, `(out, in)`).
pub(crate) fn tensors_from_tfjs(
    mut tf: HashMap<String, RawTensor>,
    path: &Path,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, shape) in spec().tensor_shapes() {
        let src = name
            .replace('.', "/")
            .replace("conv/weight", "conv/filters")
            .replace("affine/scale", "scale/weights")
            .replace("affine/offset", "scale/biases");
        let t = match shape.as_slice() {
            [o, i, kh, kw] => take_raw(&mut tf, path, &src, &[*kh, *kw, *i, *o])?
                .to_tensor()?
                .permute((3, 2, 0, 1))?
                .contiguous()?,
            [o, i] if src == "fc/weight" => take_raw(&mut tf, path, "fc", &[*i, *o])?
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
