//! FaceGAN configuration and presets (a serde struct saved beside every
//! checkpoint and weights file).

use agesynth_core::{AgeBins, Error, Result};
use serde::{Deserialize, Serialize};

/// How the target age enters the generator's bottleneck (it always enters
/// at the input too, as one-hot planes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BottleneckAge {
    /// FiLM-style modulation: every bottleneck residual block scales and
    /// shifts its features per channel, `h·(1 + γ(e)) + β(e)`, with `γ, β`
    /// linear in a learned age embedding `e`.
    #[default]
    Modulation,
    /// Concatenation: the age embedding, broadcast to planes, is
    /// concatenated to the bottleneck features and fused by a 3×3 conv.
    Concat,
}

/// Where the residual output adds the generator's change `d` to the input
/// (see [`FaceGanConfig::residual_output`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResidualSpace {
    /// Each channel in its own tanh domain: `out_c = tanh(atanh(x_c) + d_c)`.
    /// A channel near ±1 moves far less for one change than a channel
    /// nearer 0, so a grey change of a dark pixel whose channels saturate
    /// to different depths (JPEG hair: one channel at 0, another at 10)
    /// comes out coloured, and the gradient back through the saturated
    /// channels is small.
    #[default]
    Channel,
    /// At the pixel's luma `l = 0.299 R + 0.587 G + 0.114 B`: every channel
    /// moves by the change a channel at the luma's level would make,
    /// `out_c = clamp(x_c + tanh(atanh(l) + d_c) − l, −1, 1)`. One change
    /// moves a pixel's three channels alike, so colour comes only from the
    /// channels' changes differing; the input when `d = 0`, as before.
    Luma,
}

/// Configuration of the FaceGAN generator and discriminator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceGanConfig {
    /// Name of the preset this config came from (informative).
    pub preset: String,
    /// Side of the square input and output images.
    pub image_size: usize,
    /// Lower bounds of the age groups (see [`AgeBins`]).
    pub age_bins: Vec<f32>,
    /// Generator channels: the stem's, then one entry per encoder level;
    /// each level after the stem halves the resolution, so the bottleneck is
    /// `image_size / 2^(len-1)`.
    pub g_channels: Vec<usize>,
    /// Residual blocks at the bottleneck.
    pub g_res_blocks: usize,
    /// How the age enters the bottleneck.
    pub bottleneck_age: BottleneckAge,
    /// Size of the generator's learned age embedding.
    pub age_embed_dim: usize,
    /// Residual output: the network predicts a change `d` of the input in
    /// the tanh domain, `out = tanh(atanh(x) + d)` (bounded, and the input
    /// itself when `d = 0`); otherwise `out = tanh(d)`.
    pub residual_output: bool,
    /// Scale of the full-resolution U-Net skip (the stem's features that the
    /// last decoder level concatenates): 1 as built, 0 none, so that the
    /// change `d` is drawn from the half-resolution path alone while the
    /// residual output keeps the input's detail (HRFAE, LATS and CAAE have no
    /// skip at full resolution). No weight depends on it; configs written
    /// before it existed read as 1.
    #[serde(default = "one")]
    pub full_res_skip: f64,
    /// Where the residual output adds the change (unused without
    /// [`FaceGanConfig::residual_output`]). No weight depends on it; configs
    /// written before it existed read as [`ResidualSpace::Channel`].
    #[serde(default)]
    pub residual_space: ResidualSpace,
    /// Scale of the colour part of the generator's change: `d` is split
    /// into its mean over the three channels (a grey change) and the rest
    /// (a colour change), and the rest is scaled by this, so that the
    /// network can still grey hair or tint skin but draws colour less
    /// easily than light and shade. 1 as built (the change as drawn), 0 a
    /// grey change only. No weight depends on it; configs written before it
    /// existed read as 1.
    #[serde(default = "one")]
    pub change_chroma: f64,
    /// Discriminator channels, one per stride-2 level; the patch logits are
    /// `image_size / 2^len` on a side.
    pub d_channels: Vec<usize>,
    /// Give the discriminator an auxiliary age-classification head.
    pub d_aux_classifier: bool,
}

impl FaceGanConfig {
    /// Names of the presets accepted by [`FaceGanConfig::preset`].
    pub const PRESETS: [&'static str; 4] = ["tiny", "cpu64", "paper128", "gpu256"];

    /// The widest layer (and largest age embedding) a config may ask for.
    pub const MAX_WIDTH: usize = 8192;

    fn base(preset: &str, image_size: usize, g: Vec<usize>, d: Vec<usize>) -> Self {
        FaceGanConfig {
            preset: preset.to_string(),
            image_size,
            age_bins: AgeBins::default().lower_bounds().to_vec(),
            g_channels: g,
            g_res_blocks: 2,
            bottleneck_age: BottleneckAge::Modulation,
            age_embed_dim: 32,
            residual_output: true,
            full_res_skip: 1.0,
            residual_space: ResidualSpace::Channel,
            change_chroma: 1.0,
            d_channels: d,
            d_aux_classifier: true,
        }
    }

    /// 16×16, a few thousand parameters: for tests.
    pub fn tiny() -> Self {
        FaceGanConfig {
            g_res_blocks: 1,
            age_embed_dim: 8,
            ..Self::base("tiny", 16, vec![8, 16, 32], vec![8, 16])
        }
    }

    /// 64×64, sized to train on two CPU cores (bottleneck 8×8, 8×8 patches).
    pub fn cpu64() -> Self {
        Self::base("cpu64", 64, vec![32, 64, 128, 256], vec![32, 64, 128])
    }

    /// 128×128, the paper's resolution (bottleneck 8×8, 16×16 patches).
    pub fn paper128() -> Self {
        Self::base(
            "paper128",
            128,
            vec![32, 64, 128, 256, 256],
            vec![64, 128, 256],
        )
    }

    /// 256×256 for a GPU (bottleneck 8×8, 16×16 patches).
    pub fn gpu256() -> Self {
        FaceGanConfig {
            g_res_blocks: 4,
            age_embed_dim: 64,
            ..Self::base(
                "gpu256",
                256,
                vec![32, 64, 128, 256, 512, 512],
                vec![64, 128, 256, 512],
            )
        }
    }

    /// The preset called `name` (one of [`FaceGanConfig::PRESETS`]).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "cpu64" => Ok(Self::cpu64()),
            "paper128" => Ok(Self::paper128()),
            "gpu256" => Ok(Self::gpu256()),
            other => Err(Error::Config(format!(
                "unknown FaceGAN preset `{other}` (known: {})",
                Self::PRESETS.join(", ")
            ))),
        }
    }

    /// The age bins of [`FaceGanConfig::age_bins`].
    pub fn bins(&self) -> Result<AgeBins> {
        AgeBins::new(self.age_bins.clone())
    }

    /// Number of age groups.
    pub fn num_groups(&self) -> usize {
        self.age_bins.len()
    }

    /// Side of the generator's bottleneck.
    pub fn bottleneck_size(&self) -> usize {
        self.image_size >> self.g_channels.len().saturating_sub(1)
    }

    /// Side of the discriminator's patch logits.
    pub fn patch_size(&self) -> usize {
        self.image_size >> self.d_channels.len()
    }

    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Config(format!(
                "FaceGAN config `{}`: {m}",
                self.preset
            )))
        };
        if !Self::PRESETS.contains(&self.preset.as_str()) {
            return bad(format!(
                "unknown preset (known: {}): the file was not written by agesynth, or is damaged",
                Self::PRESETS.join(", ")
            ));
        }
        self.bins()
            .map_err(|e| Error::Config(format!("FaceGAN config `{}`: {e}", self.preset)))?;
        if self.g_channels.len() < 2 {
            return bad("g_channels needs the stem and at least one level".into());
        }
        if self.d_channels.is_empty() {
            return bad("d_channels needs at least one level".into());
        }
        // Sizes a damaged or hostile config could make absurd (a model is
        // built from them before any weight is read).
        let widest = self
            .g_channels
            .iter()
            .chain(&self.d_channels)
            .chain([&self.age_embed_dim])
            .max()
            .copied()
            .unwrap_or(0);
        if widest > Self::MAX_WIDTH
            || self.g_channels.len() > 16
            || self.d_channels.len() > 16
            || self.g_res_blocks > 64
            || self.image_size > 4096
            || self.age_bins.len() > 1000
        {
            return bad(format!(
                "a width above {}, more than 16 levels, 64 residual blocks or 4096 px: not a model agesynth makes",
                Self::MAX_WIDTH
            ));
        }
        if self
            .g_channels
            .iter()
            .chain(&self.d_channels)
            .any(|&c| c == 0)
            || self.age_embed_dim == 0
        {
            return bad("channel counts and age_embed_dim must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.change_chroma) {
            return bad(format!(
                "change_chroma {} must be in [0, 1]",
                self.change_chroma
            ));
        }
        if !(0.0..=1.0).contains(&self.full_res_skip) {
            return bad(format!(
                "full_res_skip {} must be in [0, 1]",
                self.full_res_skip
            ));
        }
        let g_div = 1usize << (self.g_channels.len() - 1);
        let d_div = 1usize << self.d_channels.len();
        if self.image_size == 0
            || !self.image_size.is_multiple_of(g_div)
            || !self.image_size.is_multiple_of(d_div)
        {
            return bad(format!(
                "image_size {} must be a positive multiple of {g_div} (generator levels) and {d_div} (discriminator levels)",
                self.image_size
            ));
        }
        Ok(())
    }
}

/// The serde default of scales that read as 1 in configs written before
/// they existed.
fn one() -> f64 {
    1.0
}

impl Default for FaceGanConfig {
    fn default() -> Self {
        Self::cpu64()
    }
}
