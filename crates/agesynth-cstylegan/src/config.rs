//! Model configuration and presets, saved as JSON beside every checkpoint.

use agesynth_core::{AgeBins, Error, Result};
use serde::{Deserialize, Serialize};

/// The kind of synthesis block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// StyleGAN2: modulated and demodulated 3×3 convolutions, noise, bias and
    /// leaky ReLU; modulated (not demodulated) 1×1 to-RGB convolutions.
    #[default]
    Modulated,
    /// StyleGAN v1, the paper's setting: 3×3 convolution, noise, bias, leaky
    /// ReLU, then AdaIN (instance normalisation and a per-channel scale and
    /// shift predicted from `w`); plain 1×1 to-RGB convolutions.
    AdaIn,
}

/// How the synthesis network doubles the resolution between blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Upsample {
    /// Bilinear interpolation (half-pixel centres, edges clamped) — the
    /// paper's choice; smooth, no checkerboard. Slightly more work.
    #[default]
    Bilinear,
    /// Nearest-neighbour repetition: cheapest.
    Nearest,
}

/// Configuration of the cStyleGAN generator and discriminator.
///
/// Channel lists are indexed by resolution level: entry `i` is the width at
/// `4·2ⁱ` pixels, so both lists have `log2(image_size) - 1` entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CStyleGanConfig {
    /// Name of the preset this config came from (informative).
    pub preset: String,
    /// Side of the square output images: a power of two, at least 8.
    pub image_size: usize,
    /// Lower bounds (years) of the age groups the model is conditioned on.
    pub age_bins: Vec<f32>,
    /// Size of the latent `z` (Gaussian input).
    pub z_dim: usize,
    /// Size of the intermediate latent `w` and of the styles.
    pub w_dim: usize,
    /// Size of the learned age embedding concatenated to the normalised `z`.
    pub age_embed_dim: usize,
    /// Number of fully connected layers of the mapping network.
    pub mapping_layers: usize,
    /// Learning-rate multiplier of the mapping network (0.01 in StyleGAN).
    pub mapping_lr_mul: f64,
    /// Generator widths per resolution level (4, 8, …, image_size).
    pub g_channels: Vec<usize>,
    /// Discriminator widths per resolution level (4, 8, …, image_size).
    pub d_channels: Vec<usize>,
    /// Synthesis block kind (StyleGAN2 modulated or StyleGAN v1 AdaIN).
    pub block: BlockKind,
    /// Upsampling between synthesis blocks.
    pub upsample: Upsample,
    /// Group size of the discriminator's minibatch standard deviation (the
    /// largest divisor of the batch not above it is used).
    pub mbstd_group: usize,
    /// Number of minibatch-stddev feature maps.
    pub mbstd_features: usize,
    /// Decay of the running mean of `w` per age group (truncation trick).
    pub w_avg_beta: f64,
    /// Condition on gender as well as age (UTKFace's labels). A latent's
    /// gender is the sign of its first coordinate (≥ 0: female; see
    /// [`crate::Generator::latent_genders`]), so the same latent keeps one
    /// gender at every age group by construction. The mapping network adds
    /// a learned offset of `w` per gender (at the optimiser's full rate),
    /// the discriminator's projection and the running means of `w` are per
    /// (gender, age group).
    /// Configs written before it read as false.
    #[serde(default)]
    pub gender_conditioned: bool,
    /// The coarsest synthesis layers that read the latent's age-free `w`
    /// (the mean of its `w` over every age group) in training and by
    /// default when rendering, so that age reaches only the finer styles
    /// and pose, face shape and sex stay put (0: every layer reads the
    /// age-conditioned `w`; configs written before it read as 0).
    #[serde(default)]
    pub age_free_layers: usize,
    /// With `age_free_layers > 0`: the groups from this index up read the
    /// age-free `w` in those coarse layers; younger groups keep their own
    /// age-conditioned `w` in every layer, since a child's head shape and
    /// proportions are coarse styles (1: only 0–9 keeps its own; 0, the
    /// default and what configs written before it read as: every group
    /// reads the age-free `w`). Weights do not depend on it.
    #[serde(default)]
    pub age_free_from_group: usize,
}

impl CStyleGanConfig {
    /// The widest layer (and largest `z`, `w`, age embedding) a config may ask for.
    pub const MAX_WIDTH: usize = 8192;

    /// The most mapping layers a config may ask for.
    pub const MAX_MAPPING_LAYERS: usize = 64;

    /// Names of the presets accepted by [`CStyleGanConfig::preset`].
    pub const PRESETS: [&'static str; 4] = ["tiny", "cpu64", "paper128", "gpu256"];

    fn base(preset: &str, image_size: usize, g: Vec<usize>, d: Vec<usize>) -> Self {
        Self {
            preset: preset.to_string(),
            image_size,
            age_bins: AgeBins::default().lower_bounds().to_vec(),
            z_dim: 512,
            w_dim: 512,
            age_embed_dim: 512,
            mapping_layers: 8,
            mapping_lr_mul: 0.01,
            g_channels: g,
            d_channels: d,
            block: BlockKind::Modulated,
            upsample: Upsample::Bilinear,
            mbstd_group: 4,
            mbstd_features: 1,
            w_avg_beta: 0.995,
            gender_conditioned: false,
            age_free_layers: 0,
            age_free_from_group: 0,
        }
    }

    /// `tiny`: 16×16, a few channels — for tests only.
    pub fn tiny() -> Self {
        Self {
            z_dim: 16,
            w_dim: 16,
            age_embed_dim: 8,
            mapping_layers: 2,
            mbstd_group: 2,
            ..Self::base("tiny", 16, vec![16, 12, 8], vec![16, 12, 8])
        }
    }

    /// `cpu64`: 64×64, widths sized so that a full G + D training step runs
    /// at 20+ images/s on two CPU cores (see BENCHMARKS.md).
    pub fn cpu64() -> Self {
        Self {
            z_dim: 128,
            w_dim: 128,
            age_embed_dim: 32,
            mapping_layers: 4,
            ..Self::base(
                "cpu64",
                64,
                vec![128, 128, 64, 32, 16],
                vec![128, 128, 64, 32, 16],
            )
        }
    }

    /// `paper128`: the paper's 128×128 widths (8:512, 16:512, 32:256, 64:128,
    /// 128:128, starting from a 4×4 constant of 512), z and w of 512, an
    /// 8-layer mapping network.
    pub fn paper128() -> Self {
        Self::base(
            "paper128",
            128,
            vec![512, 512, 512, 256, 128, 128],
            vec![512, 512, 512, 256, 128, 128],
        )
    }

    /// `gpu256`: 256×256 with StyleGAN2 config-E-like widths, for a GPU.
    pub fn gpu256() -> Self {
        Self::base(
            "gpu256",
            256,
            vec![512, 512, 512, 512, 256, 128, 64],
            vec![512, 512, 512, 512, 256, 128, 64],
        )
    }

    /// The preset called `name` (one of [`CStyleGanConfig::PRESETS`]).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "cpu64" => Ok(Self::cpu64()),
            "paper128" => Ok(Self::paper128()),
            "gpu256" => Ok(Self::gpu256()),
            other => Err(Error::Config(format!(
                "unknown cStyleGAN preset `{other}` (known: {})",
                Self::PRESETS.join(", ")
            ))),
        }
    }

    /// Number of resolution levels, `log2(image_size) - 1` (4×4 is level 0).
    pub fn levels(&self) -> usize {
        self.image_size.trailing_zeros() as usize - 1
    }

    /// Number of `w` vectors the synthesis network consumes: one per
    /// convolution plus one for the last to-RGB layer, `2·levels`.
    pub fn num_ws(&self) -> usize {
        2 * self.levels()
    }

    /// The age bins of [`CStyleGanConfig::age_bins`].
    pub fn bins(&self) -> Result<AgeBins> {
        AgeBins::new(self.age_bins.clone())
    }

    /// Number of age groups.
    pub fn num_groups(&self) -> usize {
        self.age_bins.len()
    }

    /// Number of genders conditioned on: 2 for a gender-conditioned model,
    /// else 1.
    pub fn num_genders(&self) -> usize {
        if self.gender_conditioned {
            2
        } else {
            1
        }
    }

    /// Number of conditions (gender × age group): the rows of the running
    /// means of `w` and of the discriminator's projection. Condition
    /// `gender · groups + group`, with male 0 and female 1.
    pub fn num_conditions(&self) -> usize {
        self.num_groups() * self.num_genders()
    }

    /// Checks the config for consistency, naming the first problem.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Config(format!(
                "cStyleGAN config `{}`: {m}",
                self.preset
            )))
        };
        if !Self::PRESETS.contains(&self.preset.as_str()) {
            return bad(format!(
                "unknown preset (known: {}): the file was not written by agesynth, or is damaged",
                Self::PRESETS.join(", ")
            ));
        }
        if !self.image_size.is_power_of_two() || self.image_size < 8 || self.image_size > 4096 {
            return bad(format!(
                "image_size must be a power of two from 8 to 4096, got {}",
                self.image_size
            ));
        }
        // Sizes a damaged or hostile config could make absurd (a model is
        // built from them before any weight is read).
        let widest = self
            .g_channels
            .iter()
            .chain(&self.d_channels)
            .chain([&self.z_dim, &self.w_dim, &self.age_embed_dim])
            .max()
            .copied()
            .unwrap_or(0);
        if widest > Self::MAX_WIDTH
            || self.mapping_layers > Self::MAX_MAPPING_LAYERS
            || self.age_bins.len() > 1000
            || self.mbstd_group > 4096
            || self.mbstd_features > Self::MAX_WIDTH
        {
            return bad(format!(
                "a width above {} or more than {} mapping layers: not a model agesynth makes",
                Self::MAX_WIDTH,
                Self::MAX_MAPPING_LAYERS
            ));
        }
        let levels = self.levels();
        if self.g_channels.len() != levels || self.d_channels.len() != levels {
            return bad(format!(
                "g_channels and d_channels need {levels} entries (4..{} px), got {} and {}",
                self.image_size,
                self.g_channels.len(),
                self.d_channels.len()
            ));
        }
        if self
            .g_channels
            .iter()
            .chain(&self.d_channels)
            .any(|&c| c == 0)
        {
            return bad("channel widths must be positive".into());
        }
        if self.z_dim == 0 || self.w_dim == 0 || self.age_embed_dim == 0 {
            return bad("z_dim, w_dim and age_embed_dim must be positive".into());
        }
        if self.mapping_layers == 0 {
            return bad("mapping_layers must be at least 1".into());
        }
        if self.age_free_layers >= self.num_ws() {
            return bad(format!(
                "age_free_layers {} must be below the {} synthesis layers (or the age would reach none)",
                self.age_free_layers,
                self.num_ws()
            ));
        }
        if self.age_free_from_group > 0 && self.age_free_layers == 0 {
            return bad(format!(
                "age_free_from_group {} needs age_free_layers > 0 (no layer is age-free)",
                self.age_free_from_group
            ));
        }
        if self.age_free_from_group >= self.age_bins.len().max(1) {
            return bad(format!(
                "age_free_from_group {} must be below the {} age groups",
                self.age_free_from_group,
                self.age_bins.len()
            ));
        }
        if !(self.mapping_lr_mul > 0.0 && self.mapping_lr_mul.is_finite()) {
            return bad(format!(
                "mapping_lr_mul must be positive, got {}",
                self.mapping_lr_mul
            ));
        }
        if self.mbstd_group == 0 || self.mbstd_features == 0 {
            return bad("mbstd_group and mbstd_features must be positive".into());
        }
        if !self.d_channels[0].is_multiple_of(self.mbstd_features) {
            return bad(format!(
                "the 4x4 discriminator width {} must be divisible by mbstd_features {}",
                self.d_channels[0], self.mbstd_features
            ));
        }
        if !(0.0..1.0).contains(&self.w_avg_beta) {
            return bad(format!(
                "w_avg_beta must be in [0, 1), got {}",
                self.w_avg_beta
            ));
        }
        self.bins()
            .map_err(|e| Error::Config(format!("cStyleGAN config `{}`: {e}", self.preset)))?;
        Ok(())
    }
}
