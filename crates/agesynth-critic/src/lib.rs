//! Critics that agesynth trains itself, for training its generators.
//!
//! The networks `agesynth eval` judges with (MTCNN, dlib's face-recognition
//! ResNet, the age estimators) never enter a training loss: a generator
//! trained on its judge learns to fool the judge. The generators are instead
//! trained against these small networks, trained here on UTKFace's training
//! split at the generators' resolution:
//!
//! - [`AgeCritic`]: an age-group classifier (`(N, G)` logits). Its
//!   cross-entropy at the target group is a loss that copying the input
//!   cannot satisfy. With the [`CriticHead::AgeGroupsByGender`] head it
//!   classifies age and gender jointly (`(N, 2G)`), and reads a face's age
//!   among faces of its gender: a loss that cannot be met by painting the
//!   other gender's signs of age (a moustache on a girl aged to 40).
//! - [`IdentityCritic`]: a small identity embedder (`(N, D)` descriptors),
//!   cheap enough to backpropagate through on every output of every step.
//! - [`GenderCritic`]: a male/female classifier, which checks that a
//!   synthetic identity keeps its gender across its age renders.
//!
//! All share one [`Trunk`], by default a small convolutional stack (below);
//! an identity critic may instead have HSE FaceRes's MobileNet v1
//! ([`TrunkKind::MobileNet`], preset `identity-mobilenet112`): started from
//! that recognition network's weights and fine-tuned here at the generators'
//! resolution, it tells people apart far better than a small trunk can.
//!
//! The convolutional trunk:
//!
//! ```text
//! x (N,3,S,S) in [-1, 1]
//!   blocks[i]: 4×4 stride-2 conv, leaky ReLU 0.2; 3×3 conv, leaky ReLU 0.2
//!   mean over space                                   → f (N, C)
//! age critic:      classes(f)                          → (N, G), or (N, 2G)
//!                                                        male groups, then female
//! identity critic: proj(f)                             → (N, D)
//! gender critic:   classes(f)                          → (N, 2) male, female
//! ```
//!
//! Models do no I/O: a critic is a [`CriticConfig`] plus `new(&cfg, vb)`,
//! with weight names following the fields (`trunk.blocks.0.down.weight`,
//! `classes.weight`, `proj.weight`).

#![deny(missing_docs)]

pub mod load;
pub mod pair_filter;

pub use load::{load_age_critic, load_gender_critic, load_identity_critic};

use agesynth_core::filters::{gaussian_blur, luma_grey_gradient, resample};
use agesynth_core::{AgeBins, AgeClassifier, AgeEstimator, AgeGroup, Error, FaceEmbedder, Result};
use agesynth_nn::mobilenet::MobileNetV1;
use agesynth_nn::{Activation, Conv2d, Conv2dConfig};
use candle_core::{DType, Module, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// What a critic's head computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CriticHead {
    /// Logits of the age groups starting at these ages (see [`AgeBins`]).
    AgeGroups {
        /// Lower bounds of the groups, in years.
        lower_bounds: Vec<f32>,
    },
    /// An identity descriptor of `dim` values; two faces are judged the
    /// same person below `threshold` (L2).
    Embedding {
        /// Descriptor size.
        dim: usize,
        /// Same-person L2 threshold.
        threshold: f32,
    },
    /// Logits of male (0) and female (1), as UTKFace labels them.
    Gender,
    /// Joint logits of gender and age group: the male groups, then the
    /// female groups (`2 G` logits, groups starting at these ages). The
    /// softmax over one gender's half is the age given that gender.
    AgeGroupsByGender {
        /// Lower bounds of the groups, in years.
        lower_bounds: Vec<f32>,
    },
}

impl CriticHead {
    /// The age groups' lower bounds of an age head (`None` for the others).
    pub fn age_lower_bounds(&self) -> Option<&[f32]> {
        match self {
            CriticHead::AgeGroups { lower_bounds }
            | CriticHead::AgeGroupsByGender { lower_bounds } => Some(lower_bounds),
            CriticHead::Embedding { .. } | CriticHead::Gender => None,
        }
    }
}

/// The configuration of a critic (saved as the weights' JSON sidecar).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriticConfig {
    /// Preset name (for messages).
    pub preset: String,
    /// Side of the square input images.
    pub image_size: usize,
    /// Output channels of each trunk block (each halves the resolution).
    pub channels: Vec<usize>,
    /// The head.
    pub head: CriticHead,
    /// A Gaussian blur (standard deviation in pixels) applied to every input
    /// before the trunk: the critic learns from, and judges, what is left at
    /// that scale, so that a generator cannot reach it with strokes a blur
    /// leaves standing (0: none; configs written before it read as 0).
    #[serde(default)]
    pub input_blur: f64,
    /// Whether the critic sees luminance only (configs written before it
    /// read as false).
    #[serde(default)]
    pub input_luma: bool,
    /// The trunk's architecture (configs written before it read as
    /// [`TrunkKind::Conv`]).
    #[serde(default)]
    pub trunk: TrunkKind,
}

/// The architecture of a critic's [`Trunk`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrunkKind {
    /// Blocks of a 4×4 stride-2 and a 3×3 convolution, one per entry of
    /// [`CriticConfig::channels`], at [`CriticConfig::image_size`].
    #[default]
    Conv,
    /// MobileNet v1 ([`agesynth_nn::mobilenet`]), reading the image
    /// resampled (bilinear, differentiable) to `input_size` and scaled to
    /// `[0, 255]`: the architecture of HSE FaceRes, so that an identity
    /// critic can start from that network's weights and be fine-tuned at
    /// the generators' resolution ([`CriticConfig::channels`] is empty).
    #[serde(rename = "mobilenet", alias = "mobile_net")]
    MobileNet {
        /// Side the image is resampled to before the network.
        input_size: usize,
    },
}

impl CriticConfig {
    /// The 64-px age critic: 4 blocks of 32/64/128/256 channels, the paper's
    /// six age groups.
    pub fn age64() -> Self {
        CriticConfig {
            preset: "age64".into(),
            image_size: 64,
            channels: vec![32, 64, 128, 256],
            head: CriticHead::AgeGroups {
                lower_bounds: AgeBins::paper().lower_bounds().to_vec(),
            },
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::Conv,
        }
    }

    /// The 64-px age-given-gender critic: the age critic's trunk, twelve
    /// joint logits (the paper's six groups × male, female).
    pub fn age_gender64() -> Self {
        CriticConfig {
            preset: "age-gender64".into(),
            head: CriticHead::AgeGroupsByGender {
                lower_bounds: AgeBins::paper().lower_bounds().to_vec(),
            },
            ..Self::age64()
        }
    }

    /// A tiny age-given-gender critic for tests (16 px, 2 blocks).
    pub fn tiny_age_gender() -> Self {
        CriticConfig {
            preset: "tiny-age-gender".into(),
            head: CriticHead::AgeGroupsByGender {
                lower_bounds: AgeBins::paper().lower_bounds().to_vec(),
            },
            ..Self::tiny_age()
        }
    }

    /// The 64-px identity critic: the same trunk, a 128-D descriptor
    /// (threshold 0.6, as dlib's).
    pub fn identity64() -> Self {
        CriticConfig {
            preset: "identity64".into(),
            image_size: 64,
            channels: vec![32, 64, 128, 256],
            head: CriticHead::Embedding {
                dim: 128,
                threshold: 0.6,
            },
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::Conv,
        }
    }

    /// The 64-px gender critic: the age critic's trunk, two classes.
    pub fn gender64() -> Self {
        CriticConfig {
            preset: "gender64".into(),
            image_size: 64,
            channels: vec![32, 64, 128, 256],
            head: CriticHead::Gender,
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::Conv,
        }
    }

    /// A tiny gender critic for tests (16 px, 2 blocks).
    pub fn tiny_gender() -> Self {
        CriticConfig {
            preset: "tiny-gender".into(),
            image_size: 16,
            channels: vec![8, 16],
            head: CriticHead::Gender,
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::Conv,
        }
    }

    /// A tiny age critic for tests (16 px, 2 blocks).
    pub fn tiny_age() -> Self {
        CriticConfig {
            preset: "tiny-age".into(),
            image_size: 16,
            channels: vec![8, 16],
            head: CriticHead::AgeGroups {
                lower_bounds: AgeBins::paper().lower_bounds().to_vec(),
            },
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::Conv,
        }
    }

    /// The 64-px identity critic at twice the width (64/128/256/512
    /// channels, about four times the parameters and compute), for a teacher
    /// whose descriptors the narrow trunk cannot follow (HSE FaceRes's).
    pub fn identity64_wide() -> Self {
        CriticConfig {
            preset: "identity64-wide".into(),
            channels: vec![64, 128, 256, 512],
            ..Self::identity64()
        }
    }

    /// The identity critic with HSE FaceRes's architecture: 64-px faces
    /// resampled to 112 px for a MobileNet v1, a 1,024-D descriptor
    /// (threshold 1.3, as centred FaceRes descriptors). Meant to start from
    /// FaceRes's weights (`train critic --init-backbone`); about 40 times
    /// the compute of [`Self::identity64`], and a recognition network's
    /// power to tell people apart.
    pub fn identity_mobilenet112() -> Self {
        CriticConfig {
            preset: "identity-mobilenet112".into(),
            image_size: 64,
            channels: Vec::new(),
            head: CriticHead::Embedding {
                dim: agesynth_nn::mobilenet::FEATURE_DIM,
                threshold: 1.3,
            },
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::MobileNet { input_size: 112 },
        }
    }

    /// A tiny MobileNet identity critic for tests (16-px faces read at
    /// 32 px, the network's smallest input).
    pub fn tiny_identity_mobilenet() -> Self {
        CriticConfig {
            preset: "tiny-identity-mobilenet".into(),
            image_size: 16,
            trunk: TrunkKind::MobileNet { input_size: 32 },
            ..Self::identity_mobilenet112()
        }
    }

    /// A tiny identity critic for tests (16 px, 2 blocks, 8-D).
    pub fn tiny_identity() -> Self {
        CriticConfig {
            preset: "tiny-identity".into(),
            image_size: 16,
            channels: vec![8, 16],
            head: CriticHead::Embedding {
                dim: 8,
                threshold: 0.6,
            },
            input_blur: 0.0,
            input_luma: false,
            trunk: TrunkKind::Conv,
        }
    }

    /// The preset called `name`: `age64`, `age-gender64`, `identity64`,
    /// `identity64-wide`, `identity-mobilenet112`, `gender64`, `tiny-age`,
    /// `tiny-age-gender`, `tiny-identity`, `tiny-identity-mobilenet`,
    /// `tiny-gender`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "age64" => Ok(Self::age64()),
            "age-gender64" => Ok(Self::age_gender64()),
            "tiny-age-gender" => Ok(Self::tiny_age_gender()),
            "identity64" => Ok(Self::identity64()),
            "identity64-wide" => Ok(Self::identity64_wide()),
            "identity-mobilenet112" => Ok(Self::identity_mobilenet112()),
            "tiny-identity-mobilenet" => Ok(Self::tiny_identity_mobilenet()),
            "gender64" => Ok(Self::gender64()),
            "tiny-age" => Ok(Self::tiny_age()),
            "tiny-identity" => Ok(Self::tiny_identity()),
            "tiny-gender" => Ok(Self::tiny_gender()),
            other => Err(Error::Config(format!(
                "unknown critic preset `{other}` (age64, age-gender64, identity64, \
                 identity64-wide, identity-mobilenet112, gender64, tiny-age, tiny-age-gender, \
                 tiny-identity, tiny-identity-mobilenet, tiny-gender)"
            ))),
        }
    }

    /// Checks the sizes: at least one block, the image divisible by
    /// 2^blocks, a non-empty head.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("critic `{}`: {m}", self.preset)));
        match self.trunk {
            TrunkKind::Conv => {
                if self.channels.is_empty() || self.channels.contains(&0) {
                    return bad(format!(
                        "channels {:?} must be non-empty and > 0",
                        self.channels
                    ));
                }
            }
            TrunkKind::MobileNet { input_size } => {
                if !self.channels.is_empty() {
                    return bad(format!(
                        "a MobileNet trunk has its own widths; channels must be empty, got {:?}",
                        self.channels
                    ));
                }
                if input_size < agesynth_nn::mobilenet::MIN_INPUT || self.image_size == 0 {
                    return bad(format!(
                        "a MobileNet trunk reads at least {} px, got image {} and input {input_size}",
                        agesynth_nn::mobilenet::MIN_INPUT,
                        self.image_size
                    ));
                }
            }
        }
        if !(self.input_blur.is_finite() && self.input_blur >= 0.0) {
            return bad(format!(
                "input blur {} must be finite and ≥ 0",
                self.input_blur
            ));
        }
        let div = 1usize << self.channels.len();
        if self.image_size == 0 || !self.image_size.is_multiple_of(div) {
            return bad(format!(
                "image size {} must be a positive multiple of {div}",
                self.image_size
            ));
        }
        match &self.head {
            CriticHead::AgeGroups { lower_bounds }
            | CriticHead::AgeGroupsByGender { lower_bounds } => {
                AgeBins::new(lower_bounds.clone())?;
            }
            CriticHead::Embedding { dim, threshold } => {
                if *dim == 0 || !(threshold.is_finite() && *threshold > 0.0) {
                    return bad(format!(
                        "an embedding needs dim > 0 and a positive threshold, got {dim} and {threshold}"
                    ));
                }
            }
            CriticHead::Gender => {}
        }
        Ok(())
    }

    /// Width of the trunk's feature vector.
    pub fn feature_dim(&self) -> usize {
        match self.trunk {
            TrunkKind::Conv => self.channels.last().copied().unwrap_or(0),
            TrunkKind::MobileNet { .. } => agesynth_nn::mobilenet::FEATURE_DIM,
        }
    }
}

/// The trunk every critic shares: a small convolutional stack, or MobileNet
/// v1 (see [`TrunkKind`]).
#[derive(Clone, Debug)]
pub struct Trunk {
    body: TrunkBody,
    image_size: usize,
    input_blur: f64,
    input_luma: bool,
}

/// The layers of a [`Trunk`].
#[derive(Clone, Debug)]
enum TrunkBody {
    Conv(Vec<(Conv2d, Conv2d)>),
    MobileNet { net: MobileNetV1, input_size: usize },
}

impl Trunk {
    /// Builds the trunk of `cfg` (names `blocks.i.down`, `blocks.i.conv`;
    /// a MobileNet's as in [`MobileNetV1::tensor_shapes`]).
    pub fn new(cfg: &CriticConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let body = match cfg.trunk {
            TrunkKind::Conv => {
                let mut blocks = Vec::new();
                let mut cin = 3;
                for (i, &c) in cfg.channels.iter().enumerate() {
                    let b = vb.pp(format!("blocks.{i}"));
                    let down = Conv2dConfig {
                        padding: 1,
                        stride: 2,
                        activation: Activation::LeakyRelu(0.2),
                        ..Conv2dConfig::new(cin, c, 4)
                    };
                    let conv = Conv2dConfig {
                        padding: 1,
                        activation: Activation::LeakyRelu(0.2),
                        ..Conv2dConfig::new(c, c, 3)
                    };
                    blocks.push((
                        Conv2d::new(&down, b.pp("down"))?,
                        Conv2d::new(&conv, b.pp("conv"))?,
                    ));
                    cin = c;
                }
                TrunkBody::Conv(blocks)
            }
            TrunkKind::MobileNet { input_size } => TrunkBody::MobileNet {
                net: MobileNetV1::new(vb)?,
                input_size,
            },
        };
        Ok(Trunk {
            body,
            image_size: cfg.image_size,
            input_blur: cfg.input_blur,
            input_luma: cfg.input_luma,
        })
    }

    /// Features `(N, C)` of images `(N, 3, S, S)` in `[-1, 1]`. Images of
    /// another square size are resized (bilinear, differentiable) first.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let mut h = self.prepare(images)?;
        match &self.body {
            TrunkBody::Conv(blocks) => {
                for (down, conv) in blocks {
                    h = conv.forward(&down.forward(&h)?)?;
                }
                Ok(h.mean((2, 3))?)
            }
            TrunkBody::MobileNet { net, input_size } => {
                let x = resample(&h, 0.0, 0.0, 1.0, *input_size)?;
                // [-1, 1] to the [0, 255] pixels FaceRes was trained on.
                let x = ((x + 1.0)? * 127.5)?;
                Ok(net.forward(&x)?)
            }
        }
    }

    fn prepare(&self, images: &Tensor) -> Result<Tensor> {
        let s = self.image_size;
        let x = match images.dims() {
            &[_, 3, h, w] if h == w => images.to_dtype(DType::F32)?,
            d => {
                return Err(Error::InvalidInput(format!(
                    "a critic takes square images (N, 3, S, S), got {d:?}"
                )))
            }
        };
        let h = x.dim(2)?;
        let x = if h == s {
            x
        } else if h > s && h.is_multiple_of(s) {
            // Area downsampling: exact for integer factors.
            x.avg_pool2d(h / s)?
        } else {
            x.upsample_nearest2d(s, s)?
        };
        let x = if self.input_luma {
            luma_grey_gradient(&x)?
        } else {
            x
        };
        gaussian_blur(&x, self.input_blur)
    }
}

/// An age-group classifier trained on real faces: the age term of the
/// generators' objectives.
#[derive(Clone, Debug)]
pub struct AgeCritic {
    cfg: CriticConfig,
    bins: AgeBins,
    by_gender: bool,
    trunk: Trunk,
    classes: Linear,
}

impl AgeCritic {
    /// Builds the critic (names `trunk.*`, `classes`). The config's head
    /// must be [`CriticHead::AgeGroups`] or [`CriticHead::AgeGroupsByGender`].
    pub fn new(cfg: &CriticConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let by_gender = matches!(cfg.head, CriticHead::AgeGroupsByGender { .. });
        let bins = match cfg.head.age_lower_bounds() {
            Some(lower_bounds) => AgeBins::new(lower_bounds.to_vec())?,
            None => {
                return Err(Error::Config(format!(
                    "critic `{}` has another head than age groups",
                    cfg.preset
                )))
            }
        };
        let trunk = Trunk::new(cfg, vb.pp("trunk"))?;
        let outputs = bins.len() * if by_gender { 2 } else { 1 };
        let classes = candle_nn::linear(cfg.feature_dim(), outputs, vb.pp("classes"))?;
        Ok(AgeCritic {
            cfg: cfg.clone(),
            bins,
            by_gender,
            trunk,
            classes,
        })
    }

    /// Whether it models age given gender (the [`CriticHead::AgeGroupsByGender`]
    /// head).
    pub fn by_gender(&self) -> bool {
        self.by_gender
    }

    /// The head's raw logits: `(N, G)`, or `(N, 2G)` (male groups, then
    /// female) for an age-given-gender critic.
    pub fn head_logits(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.classes.forward(&self.trunk.forward(images)?)?)
    }

    /// Group logits `(N, G)` of faces of known gender: each row's age read
    /// among faces of its gender (the half of the joint logits for that
    /// gender), or among all faces where the gender is `None` (the
    /// marginal). A critic without genders returns [`Self::logits`].
    pub fn logits_given_gender(
        &self,
        images: &Tensor,
        genders: &[Option<agesynth_core::Gender>],
    ) -> Result<Tensor> {
        self.group_logits_from_head(&self.head_logits(images)?, Some(genders))
    }

    /// Group logits `(N, G)` from the head's raw logits ([`Self::head_logits`]):
    /// given each row's gender ([`Self::logits_given_gender`]), or whatever
    /// the gender when `genders` is `None` ([`Self::logits`]). One head pass
    /// then serves both readings.
    pub fn group_logits_from_head(
        &self,
        joint: &Tensor,
        genders: Option<&[Option<agesynth_core::Gender>]>,
    ) -> Result<Tensor> {
        let n = joint.dim(0)?;
        let g = self.bins.len();
        let Some(genders) = genders else {
            if !self.by_gender {
                return Ok(joint.clone());
            }
            return marginal(&joint.narrow(1, 0, g)?, &joint.narrow(1, g, g)?);
        };
        if genders.len() != n {
            return Err(Error::InvalidInput(format!(
                "age critic: {n} images but {} genders",
                genders.len()
            )));
        }
        if !self.by_gender {
            return Ok(joint.clone());
        }
        let (male, female) = (joint.narrow(1, 0, g)?, joint.narrow(1, g, g)?);
        let pick = |want: Option<agesynth_core::Gender>| -> Result<Tensor> {
            let m: Vec<f32> = genders
                .iter()
                .map(|&x| if x == want { 1.0 } else { 0.0 })
                .collect();
            Ok(Tensor::from_vec(m, (n, 1), joint.device())?)
        };
        let mut out = male.broadcast_mul(&pick(Some(agesynth_core::Gender::Male))?)?;
        out = (out + female.broadcast_mul(&pick(Some(agesynth_core::Gender::Female))?)?)?;
        if genders.iter().any(Option::is_none) {
            out = (out + marginal(&male, &female)?.broadcast_mul(&pick(None)?)?)?;
        }
        Ok(out)
    }

    /// Mean cross-entropy of the condition each image was made for: for an
    /// age-given-gender critic, a row with a gender is read over the joint
    /// (gender, group) logits, so that the loss asks for the gender and the
    /// age together; a row without one (or any row of a plain age critic)
    /// over the group logits whatever the gender. A conditional generator
    /// trained against it is pushed to draw the age (and gender) it was
    /// asked for. `genders` has one entry per image.
    pub fn condition_cross_entropy(
        &self,
        images: &Tensor,
        groups: &[AgeGroup],
        genders: &[Option<agesynth_core::Gender>],
    ) -> Result<Tensor> {
        let n = images.dim(0)?;
        let g = self.bins.len();
        if groups.len() != n || genders.len() != n {
            return Err(Error::InvalidInput(format!(
                "age critic: {n} images, {} groups, {} genders",
                groups.len(),
                genders.len()
            )));
        }
        if let Some(bad) = groups.iter().find(|a| a.0 >= g) {
            return Err(Error::InvalidInput(format!(
                "age critic: group {} outside its {g} groups",
                bad.0
            )));
        }
        let head = self.head_logits(images)?;
        let marginal = candle_nn::ops::log_softmax(&self.group_logits_from_head(&head, None)?, 1)?;
        let joint = self.by_gender && genders.iter().any(Option::is_some);
        // Columns: the joint log-probabilities (male groups, then female),
        // then the marginal ones; each row picks its condition's column.
        let logp = if joint {
            Tensor::cat(&[&candle_nn::ops::log_softmax(&head, 1)?, &marginal], 1)?
        } else {
            marginal
        };
        let idx: Vec<u32> = groups
            .iter()
            .zip(genders)
            .map(|(a, x)| match x {
                Some(x) if joint => {
                    (usize::from(*x == agesynth_core::Gender::Female) * g + a.0) as u32
                }
                _ if joint => (2 * g + a.0) as u32,
                _ => a.0 as u32,
            })
            .collect();
        let idx = Tensor::from_vec(idx, (n, 1), logp.device())?;
        Ok(logp.gather(&idx, 1)?.neg()?.mean_all()?)
    }

    /// The configuration.
    pub fn config(&self) -> &CriticConfig {
        &self.cfg
    }

    /// The age groups it classifies.
    pub fn bins(&self) -> &AgeBins {
        &self.bins
    }

    /// Group logits `(N, G)`, whatever the gender: for an age-given-gender
    /// critic, the log of the two genders' summed probabilities.
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        self.group_logits_from_head(&self.head_logits(images)?, None)
    }

    /// The most likely group of each image.
    pub fn classify(&self, images: &Tensor) -> Result<Vec<AgeGroup>> {
        let idx = self.logits(images)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        Ok(idx.into_iter().map(|i| AgeGroup(i as usize)).collect())
    }
}

impl AgeEstimator for AgeCritic {
    /// The expected group centre under the critic's softmax, in years.
    fn estimate(&self, images: &Tensor) -> Result<Tensor> {
        let p = candle_nn::ops::softmax_last_dim(&self.logits(images)?)?;
        let centres: Vec<f32> = self.bins.groups().map(|g| self.bins.centre(g)).collect();
        let c = Tensor::from_vec(centres, (self.bins.len(), 1), images.device())?;
        Ok(p.matmul(&c)?.squeeze(1)?)
    }
}

/// `log(exp a + exp b)`, elementwise and stable: the logits of a group
/// whatever the gender, from the two genders' joint logits.
fn marginal(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let m = a.maximum(b)?.detach();
    let s = (a.broadcast_sub(&m)?.exp()? + b.broadcast_sub(&m)?.exp()?)?;
    Ok((s.log()? + m)?)
}

impl AgeClassifier for AgeCritic {
    fn group_logits(&self, images: &Tensor) -> Result<Tensor> {
        self.logits(images)
    }
    fn group_logits_given_gender(
        &self,
        images: &Tensor,
        genders: &[Option<agesynth_core::Gender>],
    ) -> Result<Tensor> {
        self.logits_given_gender(images, genders)
    }
    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }
}

/// A male/female classifier trained on real faces' labels: it checks that
/// a synthetic identity keeps its gender across its renders (it is no
/// judge: the evaluation's gender reader is face-api's network).
#[derive(Clone, Debug)]
pub struct GenderCritic {
    cfg: CriticConfig,
    trunk: Trunk,
    classes: Linear,
}

impl GenderCritic {
    /// Builds the classifier (names `trunk.*`, `classes`). The config's head
    /// must be [`CriticHead::Gender`].
    pub fn new(cfg: &CriticConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        if cfg.head != CriticHead::Gender {
            return Err(Error::Config(format!(
                "critic `{}` has another head than gender",
                cfg.preset
            )));
        }
        let trunk = Trunk::new(cfg, vb.pp("trunk"))?;
        let classes = candle_nn::linear(cfg.feature_dim(), 2, vb.pp("classes"))?;
        Ok(GenderCritic {
            cfg: cfg.clone(),
            trunk,
            classes,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CriticConfig {
        &self.cfg
    }

    /// Logits `(N, 2)`: male, female.
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.classes.forward(&self.trunk.forward(images)?)?)
    }

    /// The probability that each face is female, `(N,)`.
    pub fn female_probability(&self, images: &Tensor) -> Result<Tensor> {
        let p = candle_nn::ops::softmax_last_dim(&self.logits(images)?)?;
        Ok(p.narrow(1, 1, 1)?.squeeze(1)?)
    }
}

impl agesynth_core::GenderClassifier for GenderCritic {
    fn gender_logits(&self, images: &Tensor) -> Result<Tensor> {
        self.logits(images)
    }
}

/// An identity embedder for 64-px faces, the identity term of the
/// generators' objectives: a small trunk distilled from a teacher, or
/// FaceRes's MobileNet fine-tuned toward it.
#[derive(Clone, Debug)]
pub struct IdentityCritic {
    cfg: CriticConfig,
    dim: usize,
    threshold: f32,
    trunk: Trunk,
    proj: Linear,
}

impl IdentityCritic {
    /// Builds the embedder (names `trunk.*`, `proj`). The config's head must
    /// be [`CriticHead::Embedding`].
    pub fn new(cfg: &CriticConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (dim, threshold) = match &cfg.head {
            CriticHead::Embedding { dim, threshold } => (*dim, *threshold),
            CriticHead::AgeGroups { .. }
            | CriticHead::AgeGroupsByGender { .. }
            | CriticHead::Gender => {
                return Err(Error::Config(format!(
                    "critic `{}` has a classifier head, not an embedding",
                    cfg.preset
                )))
            }
        };
        let trunk = Trunk::new(cfg, vb.pp("trunk"))?;
        let proj = candle_nn::linear(cfg.feature_dim(), dim, vb.pp("proj"))?;
        Ok(IdentityCritic {
            cfg: cfg.clone(),
            dim,
            threshold,
            trunk,
            proj,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CriticConfig {
        &self.cfg
    }

    /// The trunk's features `(N, C)` of images `(N, 3, S, S)` in `[-1, 1]`,
    /// before the projection to the descriptor.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        self.trunk.forward(images)
    }
}

impl FaceEmbedder for IdentityCritic {
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.proj.forward(&self.trunk.forward(images)?)?)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn threshold(&self) -> f32 {
        self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::random::seeded_normal;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    fn vb(map: &VarMap) -> VarBuilder<'static> {
        agesynth_nn::init::seeded_var_builder(map, 3, DType::F32, &Device::Cpu)
    }

    #[test]
    fn a_mobilenet_identity_critic_reads_any_size_and_old_configs_read_as_conv() {
        let map = VarMap::new();
        let cfg = CriticConfig::tiny_identity_mobilenet();
        let c = IdentityCritic::new(&cfg, vb(&map)).unwrap();
        let x = Tensor::rand(-1f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
        assert_eq!(c.embed(&x).unwrap().dims(), &[2, 1024]);
        let big = Tensor::rand(-1f32, 1.0, (1, 3, 64, 64), &Device::Cpu).unwrap();
        assert_eq!(c.embed(&big).unwrap().dims(), &[1, 1024]);
        let names = map
            .data()
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        assert!(
            names.contains(&"trunk.blocks.12.pointwise".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"proj.weight".to_string()));
        // Channels belong to the conv trunk only; the input must be ≥ 32.
        let mut bad = cfg.clone();
        bad.channels = vec![8];
        assert!(bad.validate().is_err());
        bad = cfg.clone();
        bad.trunk = TrunkKind::MobileNet { input_size: 16 };
        assert!(bad.validate().is_err());
        // A config written before the trunk field reads as the conv trunk.
        let mut json = serde_json::to_value(CriticConfig::identity64()).unwrap();
        json.as_object_mut().unwrap().remove("trunk");
        let old: CriticConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.trunk, TrunkKind::Conv);
        let round: CriticConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(round, cfg);
        assert!(serde_json::to_string(&cfg)
            .unwrap()
            .contains(r#""kind":"mobilenet""#));
    }

    #[test]
    fn shapes_and_names_follow_the_config() {
        let map = VarMap::new();
        let c = AgeCritic::new(&CriticConfig::tiny_age(), vb(&map)).unwrap();
        let x = Tensor::zeros((2, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(c.logits(&x).unwrap().dims(), &[2, 6]);
        let ages = c.estimate(&x).unwrap().to_vec1::<f32>().unwrap();
        assert!(ages.iter().all(|a| (5.0..=70.0).contains(a)), "{ages:?}");
        // Larger images are pooled down to the critic's size.
        let big = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(c.logits(&big).unwrap().dims(), &[1, 6]);
        let names: Vec<String> = map.data().lock().unwrap().keys().cloned().collect();
        for n in [
            "trunk.blocks.0.down.weight",
            "trunk.blocks.1.conv.bias",
            "classes.weight",
        ] {
            assert!(names.iter().any(|k| k == n), "{n} missing from {names:?}");
        }

        let map = VarMap::new();
        let e = IdentityCritic::new(&CriticConfig::tiny_identity(), vb(&map)).unwrap();
        assert_eq!(e.embed(&x).unwrap().dims(), &[2, 8]);
        assert_eq!(e.dim(), 8);
        // The wrong head is a config error, not a panic.
        assert!(AgeCritic::new(&CriticConfig::tiny_identity(), vb(&VarMap::new())).is_err());
        assert!(IdentityCritic::new(&CriticConfig::tiny_age(), vb(&VarMap::new())).is_err());
        assert!(CriticConfig::preset("nope").is_err());
        let mut bad = CriticConfig::tiny_age();
        bad.image_size = 18;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn gradients_reach_the_input_images() {
        let c = AgeCritic::new(&CriticConfig::tiny_age(), vb(&VarMap::new())).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 0.5, (2, 3, 16, 16), &Device::Cpu).unwrap())
            .unwrap();
        let loss = c
            .logits(x.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        let gx = g.get(x.as_tensor()).expect("gradient of the input");
        let n = gx
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0 && n.is_finite());
    }

    #[test]
    fn the_gender_head_reads_age_given_gender_and_its_marginal() {
        use agesynth_core::Gender;
        let c = AgeCritic::new(&CriticConfig::tiny_age_gender(), vb(&VarMap::new())).unwrap();
        assert!(c.by_gender());
        let x = seeded_normal(11, 0.5, &[3, 3, 16, 16][..], DType::F32, &Device::Cpu).unwrap();
        let joint = c.head_logits(&x).unwrap();
        assert_eq!(joint.dims(), &[3, 12]);
        let softmax = |t: &Tensor| {
            candle_nn::ops::softmax_last_dim(t)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        };
        let pj = softmax(&joint);
        let genders = [Some(Gender::Male), Some(Gender::Female), None];
        let given = c.logits_given_gender(&x, &genders).unwrap();
        assert_eq!(given.dims(), &[3, 6]);
        let pg = softmax(&given);
        for k in 0..6 {
            // Row 0: the male half renormalised; row 1: the female half.
            let m: f32 = pj[0][..6].iter().sum();
            assert!((pg[0][k] - pj[0][k] / m).abs() < 1e-5);
            let f: f32 = pj[1][6..].iter().sum();
            assert!((pg[1][k] - pj[1][6 + k] / f).abs() < 1e-5);
            // Row 2 (unknown): both genders summed, as `logits` gives.
            assert!((pg[2][k] - (pj[2][k] + pj[2][6 + k])).abs() < 1e-5);
        }
        let pm = softmax(&c.logits(&x).unwrap());
        for k in 0..6 {
            assert!((pm[2][k] - pg[2][k]).abs() < 1e-5);
        }
        // The AgeClassifier view passes the genders through.
        let via: &dyn AgeClassifier = &c;
        let v = via.group_logits_given_gender(&x, &genders).unwrap();
        let d = (v - &given).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        // A wrong number of genders is an error; a plain age critic ignores them.
        assert!(c.logits_given_gender(&x, &genders[..2]).is_err());
        let plain = AgeCritic::new(&CriticConfig::tiny_age(), vb(&VarMap::new())).unwrap();
        assert_eq!(
            plain.logits_given_gender(&x, &genders).unwrap().dims(),
            &[3, 6]
        );
        // Gradients reach the images through the selected halves.
        let xv = Var::from_tensor(&x).unwrap();
        let l = c
            .logits_given_gender(xv.as_tensor(), &genders)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let g = l.backward().unwrap();
        assert!(g.get(xv.as_tensor()).is_some());
    }

    #[test]
    fn the_condition_cross_entropy_asks_for_gender_and_age_together() {
        use agesynth_core::Gender;
        let c = AgeCritic::new(&CriticConfig::tiny_age_gender(), vb(&VarMap::new())).unwrap();
        let x = seeded_normal(12, 0.5, &[3, 3, 16, 16][..], DType::F32, &Device::Cpu).unwrap();
        let groups = [AgeGroup(0), AgeGroup(5), AgeGroup(2)];
        let genders = [
            Some(Gender::Female),
            Some(Gender::Male),
            Some(Gender::Female),
        ];
        let none = [None; 3];
        let logp = candle_nn::ops::log_softmax(&c.head_logits(&x).unwrap(), 1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Joint: female rows read from the second half.
        let want = -(logp[0][6] + logp[1][5] + logp[2][8]) / 3.0;
        let got = c
            .condition_cross_entropy(&x, &groups, &genders)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // Without genders: the marginal's cross-entropy.
        let lm = candle_nn::ops::log_softmax(&c.logits(&x).unwrap(), 1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let want = -(lm[0][0] + lm[1][5] + lm[2][2]) / 3.0;
        let got = c
            .condition_cross_entropy(&x, &groups, &none)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // The joint loss is larger than the age-only one (it also asks the
        // gender), so the two readings differ.
        let joint = c
            .condition_cross_entropy(&x, &groups, &genders)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(joint > got);
        // Rows mix: one without a gender is read whatever the gender.
        let mixed = [Some(Gender::Female), None, Some(Gender::Female)];
        let want = -(logp[0][6] + lm[1][5] + logp[2][8]) / 3.0;
        let got = c
            .condition_cross_entropy(&x, &groups, &mixed)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // A plain age critic ignores the genders.
        let plain = AgeCritic::new(&CriticConfig::tiny_age(), vb(&VarMap::new())).unwrap();
        let a = plain
            .condition_cross_entropy(&x, &groups, &genders)
            .unwrap();
        let b = plain.condition_cross_entropy(&x, &groups, &none).unwrap();
        assert_eq!(a.to_scalar::<f32>().unwrap(), b.to_scalar::<f32>().unwrap());
        // Bad input is an error, not a panic.
        assert!(c
            .condition_cross_entropy(&x, &groups[..2], &none[..2])
            .is_err());
        assert!(c
            .condition_cross_entropy(&x, &groups, &genders[..1])
            .is_err());
        assert!(c
            .condition_cross_entropy(&x, &[AgeGroup(0), AgeGroup(6), AgeGroup(1)], &none)
            .is_err());
    }

    #[test]
    fn config_round_trips_through_json() {
        for c in [
            CriticConfig::age64(),
            CriticConfig::age_gender64(),
            CriticConfig::identity64(),
            CriticConfig::identity64_wide(),
        ] {
            let s = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<CriticConfig>(&s).unwrap(), c);
            // Every preset is valid and found by its name.
            c.validate().unwrap();
            assert_eq!(CriticConfig::preset(&c.preset).unwrap(), c);
        }
        assert!(CriticConfig::preset("identity128").is_err());
    }

    #[test]
    fn input_luma_and_blur_shape_what_the_critic_sees() {
        let dev = Device::Cpu;
        let x = seeded_normal(13, 0.4, &[2, 3, 16, 16][..], DType::F32, &Device::Cpu).unwrap();
        // A change of colour only (each channel's deviation from the luma).
        let c = seeded_normal(14, 0.3, &[2, 3, 16, 16][..], DType::F32, &Device::Cpu).unwrap();
        let chroma = (&c - agesynth_core::filters::luma(&c).unwrap()).unwrap();
        let y = (&x + &chroma).unwrap();
        let logits = |cfg: &CriticConfig, t: &Tensor| {
            let map = VarMap::new();
            AgeCritic::new(cfg, vb(&map))
                .unwrap()
                .logits(t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let mut luma_cfg = CriticConfig::tiny_age();
        luma_cfg.input_luma = true;
        let (a, b) = (logits(&luma_cfg, &x), logits(&luma_cfg, &y));
        let max = a
            .iter()
            .zip(&b)
            .map(|(u, v)| (u - v).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-5, "a luma critic saw a colour change: {max}");
        // Without it the same change moves the logits.
        let plain = CriticConfig::tiny_age();
        let (a, b) = (logits(&plain, &x), logits(&plain, &y));
        assert!(a.iter().zip(&b).any(|(u, v)| (u - v).abs() > 1e-4));
        // A blurring critic is moved far less by a one-pixel checkerboard.
        let checker: Vec<f32> = (0..3 * 256)
            .map(|i| {
                if ((i % 256) / 16 + i % 16) % 2 == 0 {
                    0.3
                } else {
                    -0.3
                }
            })
            .collect();
        let checker = Tensor::from_vec(checker, (1, 3, 16, 16), &dev).unwrap();
        let z = x.broadcast_add(&checker).unwrap();
        let mut blur_cfg = CriticConfig::tiny_age();
        blur_cfg.input_blur = 1.5;
        let moved = |cfg: &CriticConfig| {
            let (a, b) = (logits(cfg, &x), logits(cfg, &z));
            a.iter().zip(&b).map(|(u, v)| (u - v).abs()).sum::<f32>()
        };
        assert!(moved(&blur_cfg) < 0.5 * moved(&plain));
        // Configs written before these fields read as no blur, colour.
        let mut old = serde_json::to_value(CriticConfig::age64()).unwrap();
        old.as_object_mut().unwrap().remove("input_blur");
        old.as_object_mut().unwrap().remove("input_luma");
        let back: CriticConfig = serde_json::from_value(old).unwrap();
        assert_eq!(back, CriticConfig::age64());
        let mut bad = CriticConfig::age64();
        bad.input_blur = f64::NAN;
        assert!(bad.validate().is_err());
    }
}
