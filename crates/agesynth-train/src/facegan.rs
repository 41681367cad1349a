//! The semi-supervised FaceGAN training task (SS-FaceGAN stages 2 and 3),
//! driven by the generic [`Trainer`](crate::Trainer).
//!
//! Each step draws `batch` inputs: `round(batch · synthetic_fraction)` from a
//! synthetic-pairs folder ([`SynthPairs`]) and the rest from real faces
//! ([`RealFaces`], e.g. UTKFace). Every input gets a target age group drawn
//! uniformly; the generator renders all of them in one pass.
//!
//! - **Synthetic rows** (one synthetic person at a source group `s`, and the
//!   cStyleGAN image of the same person at the target group `t`):
//!   supervised reconstruction of the target image, plus the adversarial and
//!   identity terms.
//! - **Real rows** (a real face at its own group `g`, no pair): adversarial at
//!   the target group, identity to the input, cycle reconstruction
//!   `G(G(x, t), g) ≈ x`, and self-reconstruction `G(x, g) ≈ x` on the rows
//!   whose target is their own group.
//!
//! The discriminator sees the real faces as real (and the synthetic target
//! images too when `d_on_synthetic` is set, or when the batch has no real
//! rows), the generated faces as fake, each at its group; its auxiliary head,
//! if any, learns the real groups and its verdict on the fakes drives the
//! age term of G. `synthetic_fraction` 0 and 1 are the real-only and
//! synthetic-only ablations.
//!
//! All randomness (data order, flips, identities, groups) comes from the
//! seed and the step, so a resumed run repeats the straight one.

use std::{path::Path, sync::Arc};

use agesynth_core::{
    AgeBins, AgeClassifier, AgeGenerator, AgeGroup, ConditionalDiscriminator, FaceEmbedder,
    FaceImage, Gender, GenderClassifier, RealismCritic,
};
use agesynth_cstylegan::CStyleGanConfig;
use agesynth_facegan::seeded_var_builder;
use agesynth_facegan::{Discriminator, FaceGanConfig, Generator};
use agesynth_losses::{
    age::cross_entropy, AdversarialLoss, AgeLoss, ChromaChangeLoss, ClassifierAgeLoss,
    ClassifierGenderLoss, ColourSpeckLoss, DarkPatchLoss, EmbeddingDistance, GeneratorAdversarial,
    PalePatchLoss, RealismLoss, Reconstruction, ReconstructionLoss, SharedIdentityLoss,
    SharpChangeLoss, TotalVariationLoss,
};
use agesynth_nn::vars::{copy_vars, ema_decay, ema_update};
use candle_core::{backprop::GradStore, DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{Checkpoint, CheckpointContents},
    data::{DataOrder, RealFaces},
    gan::GanState,
    objective::{GeneratorStep, Objective, Operand, Rows, Term},
    optim::{Adam, AdamConfig, ParamGroup},
    pairs::SynthPairs,
    phase::LazyR1,
    rng::step_rng,
    trainer::{StepReport, TrainTask},
    Result, TrainError,
};

/// The weights of the generator's loss terms (0 switches a term off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceGanLossWeights {
    /// Adversarial term of G.
    pub adversarial: f64,
    /// Supervised reconstruction of the synthetic target images.
    pub synthetic_reconstruction: f64,
    /// Cycle reconstruction of the real inputs.
    pub cycle: f64,
    /// Self-reconstruction of real inputs whose target is their own group.
    pub self_reconstruction: f64,
    /// Identity distance between outputs and inputs (needs an embedder).
    pub identity: f64,
    /// Cross-entropy of the target group from D's auxiliary head (for G),
    /// and of the real groups (for D).
    pub age: f64,
    /// Total variation of the outputs.
    pub total_variation: f64,
    /// Cross-entropy of the target group from a frozen age critic trained
    /// apart (`agesynth train critic --kind age`), on every output (needs
    /// the critic; configs written before it existed read as 0).
    #[serde(default)]
    pub age_critic: f64,
    /// Total variation of the change of colour from input to output
    /// ([`agesynth_losses::ChromaChangeLoss`]): stripes and speckle of colour
    /// cost, tone changes and brightness (wrinkles) do not. Configs written
    /// before it existed read as 0.
    #[serde(default)]
    pub chroma_change: f64,
    /// The sharp part of the change from input to output
    /// ([`agesynth_losses::SharpChangeLoss`], at
    /// [`FaceGanTrainConfig::sharp_change_sigma`]): a change the blurred
    /// age critic cannot see costs. Configs written before it existed read
    /// as 0.
    #[serde(default)]
    pub sharp_change: f64,
    /// Cross-entropy of the target group from a second frozen age critic,
    /// on the rows whose target is [`FaceGanTrainConfig::old_age_critic_from`]
    /// or older; the first critic then reads only the younger targets
    /// (0: no second critic; configs written before it read as 0).
    #[serde(default)]
    pub old_age_critic: f64,
    /// Cross-entropy of the target group from a third frozen age critic, on
    /// the rows whose target is
    /// [`FaceGanTrainConfig::oldest_age_critic_from`] or older; the second
    /// critic then reads only the targets from
    /// [`FaceGanTrainConfig::old_age_critic_from`] up to that group (0: no
    /// third critic; configs written before it read as 0).
    #[serde(default)]
    pub oldest_age_critic: f64,
    /// Dark patches the input lacks ([`agesynth_losses::DarkPatchLoss`], at
    /// [`FaceGanTrainConfig::dark_patch_sigma`] and
    /// [`FaceGanTrainConfig::dark_patch_threshold`]): a blot that a critic
    /// reads as age costs. Configs written before it existed read as 0.
    #[serde(default)]
    pub dark_patch: f64,
    /// Pale patches the input lacks ([`agesynth_losses::PalePatchLoss`], at
    /// [`FaceGanTrainConfig::pale_patch_sigma`] and
    /// [`FaceGanTrainConfig::pale_patch_threshold`]): a washed-out face
    /// that a critic reads as age costs. Configs written before it existed
    /// read as 0.
    #[serde(default)]
    pub pale_patch: f64,
    /// Coloured specks the input lacks ([`agesynth_losses::ColourSpeckLoss`]
    /// at [`FaceGanTrainConfig::colour_speck_threshold`]): each pixel whose
    /// colour changes by more than the threshold costs. Configs written
    /// before it existed read as 0.
    #[serde(default)]
    pub colour_speck: f64,
    /// A second identity term, on the rows whose target is
    /// [`FaceGanTrainConfig::old_age_critic_from`] or older only (the same
    /// network and settings as [`FaceGanLossWeights::identity`], which
    /// still reads every row): where the old targets' critic pulls hardest,
    /// identity is held harder (0: none; configs written before it read
    /// as 0).
    #[serde(default)]
    pub identity_old: f64,
    /// A third identity term, on the rows whose target is younger than
    /// [`FaceGanTrainConfig::identity_young_below`] only (the same network
    /// and settings as [`FaceGanLossWeights::identity`]): where making a
    /// child of an adult changes the face most, identity is held harder
    /// (0: none; configs written before it read as 0).
    #[serde(default)]
    pub identity_young: f64,
    /// Gender keeping ([`agesynth_losses::ClassifierGenderLoss`]): a frozen
    /// gender critic (trained apart on real faces' labels, never an
    /// evaluation network) reads each output whose target is
    /// [`FaceGanTrainConfig::gender_keep_from`] or older, and a row whose
    /// person's gender is known pays when it no longer looks it: a
    /// moustache painted on a woman costs (0: none; configs written before
    /// it read as 0).
    #[serde(default)]
    pub gender_keep: f64,
    /// Realism ([`agesynth_losses::RealismLoss`]): a frozen discriminator
    /// trained apart on real faces (a cStyleGAN's, never an evaluation
    /// network) reads each output whose target is
    /// [`FaceGanTrainConfig::realism_from`] or older against its target
    /// group and gender, and a row pays while it scores below
    /// [`FaceGanTrainConfig::realism_satisfied`]: paint that a critic reads
    /// as age but no photo shows costs (0: none; configs written before it
    /// read as 0).
    #[serde(default)]
    pub realism: f64,
}

impl Default for FaceGanLossWeights {
    fn default() -> Self {
        FaceGanLossWeights {
            adversarial: 1.0,
            synthetic_reconstruction: 10.0,
            cycle: 10.0,
            self_reconstruction: 10.0,
            identity: 1.0,
            age: 1.0,
            total_variation: 0.0,
            age_critic: 0.0,
            chroma_change: 0.0,
            sharp_change: 0.0,
            old_age_critic: 0.0,
            oldest_age_critic: 0.0,
            dark_patch: 0.0,
            pale_patch: 0.0,
            colour_speck: 0.0,
            identity_old: 0.0,
            identity_young: 0.0,
            gender_keep: 0.0,
            realism: 0.0,
        }
    }
}

/// Which discriminator a FaceGAN run trains against.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaceGanDiscriminator {
    /// FaceGAN's own conditional PatchGAN (`agesynth_facegan::Discriminator`,
    /// from the model config).
    #[default]
    #[serde(rename = "patchgan")]
    PatchGan,
    /// A cStyleGAN discriminator of this config (a gender-conditioned one
    /// judges every image with its gender unknown), usually started from a
    /// trained cStyleGAN's ([`FaceGanSources::discriminator_init`]): it
    /// knows real faces of each group before it sees a FaceGAN output. It
    /// has no age head.
    #[serde(rename = "cstylegan")]
    CStyleGan {
        /// The discriminator's model config.
        config: Box<CStyleGanConfig>,
    },
}

/// Everything a FaceGAN run is started with (saved as the run's
/// `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceGanTrainConfig {
    /// The model.
    pub model: FaceGanConfig,
    /// Inputs per step, real and synthetic together.
    pub batch: usize,
    /// Share of each batch drawn from the synthetic pairs (0: real only, 1:
    /// synthetic only).
    pub synthetic_fraction: f64,
    /// Generator learning rate.
    pub g_lr: f64,
    /// Discriminator learning rate.
    pub d_lr: f64,
    /// Adam betas.
    pub betas: (f64, f64),
    /// The adversarial objective.
    pub adversarial: AdversarialLoss,
    /// The distance of the reconstruction terms.
    pub reconstruction: Reconstruction,
    /// How identity embeddings are compared.
    pub identity_distance: EmbeddingDistance,
    /// Loss weights.
    pub weights: FaceGanLossWeights,
    /// Show D the synthetic target images as real faces too.
    pub d_on_synthetic: bool,
    /// Mirror real inputs left–right at random.
    pub xflip: bool,
    /// The run's seed: weights init, data order, targets.
    pub seed: u64,
    /// Rows (inputs) of the sample grids.
    pub sample_rows: usize,
    /// Half-life, in images, of the generator's exponential moving average
    /// (0: no averaging, the EMA copy follows the live weights). The EMA
    /// copy is what sample grids show and what gets exported.
    #[serde(default = "default_ema_half_life")]
    pub ema_half_life_images: f64,
    /// Weight γ of the R1 penalty `γ/2 · E‖∇ₓ D(x)‖²` on the real images
    /// (0: off). Configs written before R1 existed read as 0.
    #[serde(default)]
    pub r1_gamma: f64,
    /// Apply R1 every this many steps, weighted by the interval (lazy
    /// regularisation, as in StyleGAN2).
    #[serde(default = "default_r1_every")]
    pub r1_every: u64,
    /// How the real rows' targets are drawn (default: uniformly over the
    /// groups, as before the policy existed).
    #[serde(default)]
    pub targets: TargetPolicy,
    /// Which real rows the cycle reconstruction applies to (default: all).
    #[serde(default = "default_cycle_rows")]
    pub cycle_rows: Rows,
    /// Which rows the identity term applies to (default: all).
    #[serde(default = "default_identity_rows")]
    pub identity_rows: Rows,
    /// Weight of the discriminator's "wrong age" term: real faces shown with
    /// a group other than their own count as fakes (IPCGAN's second D term),
    /// so that a copy of the input at another target cannot pass as real
    /// (0: off).
    #[serde(default)]
    pub d_wrong_age: f64,
    /// Standard deviation (pixels) of the Gaussian blur through which the age
    /// critic sees the outputs, so that pixel-scale patterns cannot fool it
    /// (configs written before it existed read as 0: no blur).
    #[serde(default)]
    pub age_critic_blur: f64,
    /// What counts as smooth for the sharp-change term: the standard
    /// deviation (pixels) of its blur (configs written before it read as 2).
    #[serde(default = "default_sharp_change_sigma")]
    pub sharp_change_sigma: f64,
    /// Whether the age critic sees the outputs' luminance only, so that its
    /// gradient cannot paint colour (configs written before it read as
    /// false).
    #[serde(default)]
    pub age_critic_luma: bool,
    /// Target-group probability at which the age critic stops pushing a row
    /// (1: plain cross-entropy, what configs written before it read as).
    #[serde(default = "one_f64")]
    pub age_critic_satisfied: f64,
    /// Standard deviation (pixels) of the Gaussian blur through which the
    /// identity network sees outputs and inputs (0: none; configs written
    /// before it existed read as 0).
    #[serde(default)]
    pub identity_blur: f64,
    /// Whether the identity network sees outputs and inputs as luminance
    /// only (configs written before it read as false).
    #[serde(default)]
    pub identity_luma: bool,
    /// Probability that a row of the batch is shown in greyscale (its input,
    /// and for a synthetic row its target too): black-and-white photos, rare
    /// in UTKFace and common in FG-NET, are then inputs the generator has
    /// seen (configs written before it read as 0).
    #[serde(default)]
    pub grey_prob: f64,
    /// The first target group the second age critic reads instead of the
    /// first ([`FaceGanLossWeights::old_age_critic`]; configs written before
    /// it read as 0).
    #[serde(default)]
    pub old_age_critic_from: usize,
    /// The first target group the third age critic reads instead of the
    /// second ([`FaceGanLossWeights::oldest_age_critic`]; configs written
    /// before it read as 0).
    #[serde(default)]
    pub oldest_age_critic_from: usize,
    /// The young rows' identity term ([`FaceGanLossWeights::identity_young`])
    /// reads the targets younger than this group (configs written before it
    /// read as 1: the 0–9 group).
    #[serde(default = "default_identity_young_below")]
    pub identity_young_below: usize,
    /// The dark-patch term's blur (pixels): darker changes narrower than
    /// this count as lines, not patches (configs written before it read as
    /// 1.5).
    #[serde(default = "default_dark_patch_sigma")]
    pub dark_patch_sigma: f64,
    /// How far (luma, images in `[-1, 1]`) the blurred brightness may fall
    /// before the dark-patch term charges (configs written before it read
    /// as 0.2).
    #[serde(default = "default_dark_patch_threshold")]
    pub dark_patch_threshold: f64,
    /// The pale-patch term's blur (pixels; configs written before it read
    /// as 1.5).
    #[serde(default = "default_pale_patch_sigma")]
    pub pale_patch_sigma: f64,
    /// How far (luma, images in `[-1, 1]`) the blurred brightness may rise
    /// before the pale-patch term charges (configs written before it read
    /// as 0.3).
    #[serde(default = "default_pale_patch_threshold")]
    pub pale_patch_threshold: f64,
    /// How far (images in `[-1, 1]`) a pixel's colour may change before the
    /// colour-speck term charges (configs written before it read 0.1).
    #[serde(default = "default_colour_speck_threshold")]
    pub colour_speck_threshold: f64,
    /// The first target group the gender-keeping term reads
    /// ([`FaceGanLossWeights::gender_keep`]; 0: every row).
    #[serde(default)]
    pub gender_keep_from: usize,
    /// Probability of the row's gender at which the gender-keeping term
    /// stops charging (configs written before it read as 0.9).
    #[serde(default = "default_gender_keep_satisfied")]
    pub gender_keep_satisfied: f64,
    /// The first target group the realism term reads
    /// ([`FaceGanLossWeights::realism`]; 0: every row).
    #[serde(default)]
    pub realism_from: usize,
    /// The realism critic's logit at which a row stops paying (about where
    /// real faces score; configs written before it read as 2).
    #[serde(default = "default_realism_satisfied")]
    pub realism_satisfied: f64,
    /// The discriminator (configs written before it read as FaceGAN's own
    /// PatchGAN).
    #[serde(default)]
    pub discriminator: FaceGanDiscriminator,
    /// Where the frozen networks of the run came from (recorded for resume
    /// and for the model card): the age critic, the identity network and
    /// the generator the run was started from.
    #[serde(default)]
    pub sources: FaceGanSources,
}

/// Files a FaceGAN run was started with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaceGanSources {
    /// The age critic's weights (the age-critic term).
    #[serde(default)]
    pub age_critic: Option<std::path::PathBuf>,
    /// The second age critic's weights (the old targets' term).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_age_critic: Option<std::path::PathBuf>,
    /// The third age critic's weights (the oldest targets' term).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_age_critic: Option<std::path::PathBuf>,
    /// The identity network's weights (the identity term).
    #[serde(default)]
    pub identity: Option<std::path::PathBuf>,
    /// A generator the run's weights were initialised from.
    #[serde(default)]
    pub init_generator: Option<std::path::PathBuf>,
    /// The gender critic that labelled the synthetic identities' genders
    /// (for an age-given-gender critic), and that the gender-keeping term
    /// reads the outputs with.
    #[serde(default)]
    pub pair_gender_critic: Option<std::path::PathBuf>,
    /// The realism critic's weights (a cStyleGAN discriminator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realism_critic: Option<std::path::PathBuf>,
    /// A trained cStyleGAN discriminator the run's discriminator started
    /// from ([`FaceGanDiscriminator::CStyleGan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discriminator_init: Option<std::path::PathBuf>,
}

/// How a step draws the real rows' target groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetPolicy {
    /// Probability that a real row's target is its own group (the rows the
    /// self-reconstruction applies to); `None`: every group equally likely.
    #[serde(default)]
    pub own_group: Option<f64>,
    /// Other targets are drawn among the groups at least this many groups
    /// from the source (among all other groups when none is that far).
    #[serde(default)]
    pub min_distance: usize,
    /// Rows by target: with `Some(k)`, the synthetic rows take their targets
    /// from the groups `k` and up, and the real rows' targets other than
    /// their own group are drawn among the groups below `k`. `None`: every
    /// row draws from all groups (configs written before this field read so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_from: Option<usize>,
    /// With `Some(k)`, a real row of group `k` or older never takes its own
    /// group as the target (no self-reconstruction there), so that no real
    /// row teaches the old targets to copy. `None`: every group may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_group_below: Option<usize>,
}

impl TargetPolicy {
    /// Draws the target of a real face of group `source` among `groups`.
    ///
    /// With [`synthetic_from`](Self::synthetic_from) set, targets other than
    /// the source's own group are drawn among the groups below it.
    pub fn draw(&self, source: AgeGroup, groups: usize, rng: &mut impl Rng) -> AgeGroup {
        let allowed = self.real_targets(groups);
        let Some(p) = self.own_group else {
            return AgeGroup(rng.random_range(allowed));
        };
        let may_stay = self.own_group_below.is_none_or(|k| source.0 < k);
        if groups <= 1 || (rng.random::<f64>() < p && may_stay) {
            return source;
        }
        let far: Vec<usize> = allowed
            .clone()
            .filter(|&g| g.abs_diff(source.0) >= self.min_distance.max(1))
            .collect();
        let pool: Vec<usize> = if far.is_empty() {
            allowed.filter(|&g| g != source.0).collect()
        } else {
            far
        };
        if pool.is_empty() {
            return source;
        }
        AgeGroup(pool[rng.random_range(0..pool.len())])
    }

    /// The groups a real row's target may be drawn from (its own group
    /// aside): all `groups`, or those below [`synthetic_from`](Self::synthetic_from).
    pub fn real_targets(&self, groups: usize) -> std::ops::Range<usize> {
        0..self
            .synthetic_from
            .map_or(groups, |k| k.clamp(1, groups.max(1)))
    }

    /// The groups a synthetic row's target is drawn from: all `groups`, or
    /// those from [`synthetic_from`](Self::synthetic_from) up.
    pub fn synthetic_targets(&self, groups: usize) -> std::ops::Range<usize> {
        self.synthetic_from
            .map_or(0, |k| k.min(groups.saturating_sub(1)))..groups
    }
}

fn default_cycle_rows() -> Rows {
    Rows::Real
}

fn default_identity_rows() -> Rows {
    Rows::All
}

fn default_sharp_change_sigma() -> f64 {
    2.0
}

fn default_identity_young_below() -> usize {
    1
}

fn default_dark_patch_sigma() -> f64 {
    1.5
}

fn default_dark_patch_threshold() -> f64 {
    0.2
}

fn default_colour_speck_threshold() -> f64 {
    0.1
}

fn default_pale_patch_sigma() -> f64 {
    1.5
}

fn default_pale_patch_threshold() -> f64 {
    0.3
}

fn default_realism_satisfied() -> f64 {
    2.0
}

fn default_gender_keep_satisfied() -> f64 {
    0.9
}

fn default_r1_every() -> u64 {
    16
}

fn one_f64() -> f64 {
    1.0
}

fn default_ema_half_life() -> f64 {
    10_000.0
}

impl FaceGanTrainConfig {
    /// Defaults for `model`: a half-synthetic batch, Adam (lr 2e-4, β =
    /// (0.5, 0.999), pix2pix's setting), non-saturating logistic GAN, L1
    /// reconstructions.
    pub fn new(model: FaceGanConfig, batch: usize, seed: u64) -> Self {
        FaceGanTrainConfig {
            model,
            batch,
            synthetic_fraction: 0.5,
            g_lr: 2e-4,
            d_lr: 2e-4,
            betas: (0.5, 0.999),
            adversarial: AdversarialLoss::Logistic,
            reconstruction: Reconstruction::L1,
            identity_distance: EmbeddingDistance::L2,
            weights: FaceGanLossWeights::default(),
            d_on_synthetic: false,
            xflip: true,
            seed,
            sample_rows: 6,
            ema_half_life_images: default_ema_half_life(),
            r1_gamma: 1.0,
            r1_every: default_r1_every(),
            targets: TargetPolicy::default(),
            cycle_rows: default_cycle_rows(),
            identity_rows: default_identity_rows(),
            d_wrong_age: 0.0,
            age_critic_blur: 1.0,
            sharp_change_sigma: default_sharp_change_sigma(),
            age_critic_luma: false,
            age_critic_satisfied: 1.0,
            identity_blur: 0.0,
            identity_luma: false,
            grey_prob: 0.0,
            old_age_critic_from: 0,
            oldest_age_critic_from: 0,
            identity_young_below: default_identity_young_below(),
            dark_patch_sigma: default_dark_patch_sigma(),
            dark_patch_threshold: default_dark_patch_threshold(),
            pale_patch_sigma: default_pale_patch_sigma(),
            pale_patch_threshold: default_pale_patch_threshold(),
            colour_speck_threshold: default_colour_speck_threshold(),
            gender_keep_from: 0,
            gender_keep_satisfied: default_gender_keep_satisfied(),
            realism_from: 0,
            realism_satisfied: default_realism_satisfied(),
            discriminator: FaceGanDiscriminator::default(),
            sources: FaceGanSources::default(),
        }
    }

    /// Synthetic inputs per step.
    pub fn synthetic_per_step(&self) -> usize {
        ((self.batch as f64 * self.synthetic_fraction).round() as usize).min(self.batch)
    }

    /// Real inputs per step.
    pub fn real_per_step(&self) -> usize {
        self.batch - self.synthetic_per_step()
    }

    fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let bad = |m: String| Err(agesynth_core::Error::Config(m).into());
        if self.batch == 0 {
            return bad("batch must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.synthetic_fraction) {
            return bad(format!(
                "synthetic_fraction {} must be in [0, 1]",
                self.synthetic_fraction
            ));
        }
        let w = &self.weights;
        let all = [
            w.adversarial,
            w.synthetic_reconstruction,
            w.cycle,
            w.self_reconstruction,
            w.identity,
            w.age,
            w.total_variation,
            w.age_critic,
            w.chroma_change,
            w.sharp_change,
            w.old_age_critic,
            w.oldest_age_critic,
            w.dark_patch,
            w.pale_patch,
            w.colour_speck,
            w.identity_old,
            w.identity_young,
            w.gender_keep,
            w.realism,
            self.d_wrong_age,
        ];
        if all.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return bad(format!("loss weights must be finite and ≥ 0: {w:?}"));
        }
        if let Some(p) = self.targets.own_group {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("targets.own_group {p} must be in [0, 1]"));
            }
        }
        let groups = self.model.num_groups();
        for (name, k) in [
            ("synthetic_from", self.targets.synthetic_from),
            ("own_group_below", self.targets.own_group_below),
        ] {
            if let Some(k) = k.filter(|&k| k == 0 || k >= groups) {
                return bad(format!(
                    "targets.{name} {k} must leave groups on both sides: 1 to {}",
                    groups.saturating_sub(1)
                ));
            }
        }
        if !self.cycle_rows.is_real_only() {
            return bad(format!(
                "the cycle applies to real rows only, not {:?}",
                self.cycle_rows
            ));
        }
        for (name, v) in [
            ("age_critic_blur", self.age_critic_blur),
            ("identity_blur", self.identity_blur),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v} must be finite and ≥ 0"));
            }
        }
        for (name, v) in [
            ("sharp_change_sigma", self.sharp_change_sigma),
            ("dark_patch_sigma", self.dark_patch_sigma),
            ("pale_patch_sigma", self.pale_patch_sigma),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} {v} must be finite and > 0"));
            }
        }
        for (name, v) in [
            ("dark_patch_threshold", self.dark_patch_threshold),
            ("pale_patch_threshold", self.pale_patch_threshold),
            ("colour_speck_threshold", self.colour_speck_threshold),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v} must be finite and ≥ 0"));
            }
        }
        if !(0.0..=1.0).contains(&self.grey_prob) {
            return bad(format!("grey_prob {} must be in [0, 1]", self.grey_prob));
        }
        let groups = self.model.age_bins.len();
        if (w.old_age_critic > 0.0 || w.identity_old > 0.0)
            && !(1..groups).contains(&self.old_age_critic_from)
        {
            return bad(format!(
                "old_age_critic_from {} must name a group from 1 to {} (the second critic and the old rows' identity term read that group and older)",
                self.old_age_critic_from,
                groups.saturating_sub(1)
            ));
        }
        if w.oldest_age_critic > 0.0 {
            if w.old_age_critic <= 0.0 {
                return bad(
                    "a third age critic (oldest_age_critic) needs the second (old_age_critic) weighted too".into(),
                );
            }
            if !(self.old_age_critic_from + 1..groups).contains(&self.oldest_age_critic_from) {
                return bad(format!(
                    "oldest_age_critic_from {} must name a group from {} to {} (after old_age_critic_from {}, whose critic reads the groups up to it)",
                    self.oldest_age_critic_from,
                    self.old_age_critic_from + 1,
                    groups.saturating_sub(1),
                    self.old_age_critic_from
                ));
            }
        }
        if w.identity_young > 0.0 && !(1..groups).contains(&self.identity_young_below) {
            return bad(format!(
                "identity_young_below {} must name a group from 1 to {} (the young rows' identity term reads the targets below it)",
                self.identity_young_below,
                groups.saturating_sub(1)
            ));
        }
        if w.gender_keep > 0.0 && self.gender_keep_from >= groups {
            return bad(format!(
                "gender_keep_from {} must name a group below {groups}",
                self.gender_keep_from
            ));
        }
        if w.realism > 0.0 && self.realism_from >= groups {
            return bad(format!(
                "realism_from {} must name a group below {groups}",
                self.realism_from
            ));
        }
        if let FaceGanDiscriminator::CStyleGan { config } = &self.discriminator {
            config.validate()?;
            if config.image_size != self.model.image_size || config.age_bins != self.model.age_bins
            {
                return bad(format!(
                    "the cStyleGAN discriminator judges {} px faces in groups {:?}, the model makes {} px faces in groups {:?}",
                    config.image_size, config.age_bins, self.model.image_size, self.model.age_bins
                ));
            }
            if self.model.d_aux_classifier && w.age > 0.0 {
                return bad(
                    "a cStyleGAN discriminator has no age head: set the D-age weight to 0 (or no auxiliary classifier)"
                        .into(),
                );
            }
        }
        if !self.realism_satisfied.is_finite() {
            return bad(format!(
                "realism_satisfied {} must be finite",
                self.realism_satisfied
            ));
        }
        if !(self.gender_keep_satisfied > 0.0 && self.gender_keep_satisfied <= 1.0) {
            return bad(format!(
                "gender_keep_satisfied {} must be in (0, 1]",
                self.gender_keep_satisfied
            ));
        }
        if !(self.age_critic_satisfied > 0.0 && self.age_critic_satisfied <= 1.0) {
            return bad(format!(
                "age_critic_satisfied {} must be in (0, 1]",
                self.age_critic_satisfied
            ));
        }
        if !(self.r1_gamma.is_finite() && self.r1_gamma >= 0.0) {
            return bad(format!("r1_gamma {} must be finite and ≥ 0", self.r1_gamma));
        }
        if !(self.ema_half_life_images.is_finite() && self.ema_half_life_images >= 0.0) {
            return bad(format!(
                "ema_half_life_images {} must be finite and ≥ 0",
                self.ema_half_life_images
            ));
        }
        Ok(())
    }
}

/// The FaceGAN task: G, D, their optimisers, the data and the identity
/// network.
pub struct FaceGanTask {
    cfg: FaceGanTrainConfig,
    bins: AgeBins,
    device: Device,
    state: GanState,
    g: Box<dyn AgeGenerator>,
    g_ema: Box<dyn AgeGenerator>,
    d: Box<dyn ConditionalDiscriminator>,
    real: Option<Arc<RealFaces>>,
    order: Option<DataOrder>,
    pairs: Option<Arc<SynthPairs>>,
    embedder: Option<Arc<dyn FaceEmbedder>>,
    /// The frozen critics given so far.
    critics: FaceGanCritics,
    /// The gender of each synthetic identity, where known.
    synthetic_genders: Option<Vec<Option<Gender>>>,
    objective: Objective,
    /// Shards each generator step's batch is split into, their forward and
    /// backward passes run in parallel (1: the whole batch at once).
    shards: usize,
}

/// The frozen critics a FaceGAN objective reads (each trained apart on
/// real faces, never an evaluation network); a term whose critic is absent
/// is left out.
#[derive(Clone, Default)]
pub struct FaceGanCritics {
    /// The age critic (`age_critic`: every target, or those below the
    /// second critic's group).
    pub age: Option<Arc<dyn AgeClassifier>>,
    /// The second age critic (`age_critic_old`: the targets from
    /// `old_age_critic_from`, up to the third critic's group).
    pub old_age: Option<Arc<dyn AgeClassifier>>,
    /// The third age critic (`age_critic_oldest`: the targets from
    /// `oldest_age_critic_from` up).
    pub oldest_age: Option<Arc<dyn AgeClassifier>>,
    /// The gender critic of the gender-keeping term.
    pub gender: Option<Arc<dyn GenderClassifier>>,
    /// The realism critic of the realism term.
    pub realism: Option<Arc<dyn RealismCritic>>,
}

impl FaceGanCritics {
    /// The config with the weight of every critic term whose critic is
    /// missing set to 0.
    pub fn config_without_missing(&self, cfg: &FaceGanTrainConfig) -> FaceGanTrainConfig {
        let mut c = cfg.clone();
        let w = &mut c.weights;
        if self.age.is_none() {
            w.age_critic = 0.0;
        }
        if self.old_age.is_none() {
            w.old_age_critic = 0.0;
        }
        if self.oldest_age.is_none() {
            w.oldest_age_critic = 0.0;
        }
        if self.gender.is_none() {
            w.gender_keep = 0.0;
        }
        if self.realism.is_none() {
            w.realism = 0.0;
        }
        c
    }
}

/// The generator objective a FaceGAN config describes, given the identity
/// network and the age critic (terms whose network is absent, or whose
/// weight is 0, are left out). In order: `g_adv` (all rows, through D),
/// `g_age` (D's age head), `syn_rec` (synthetic rows, the paired target),
/// `identity`, `identity_old` (the targets from `old_age_critic_from` up),
/// `identity_young` (the targets below `identity_young_below`),
/// `cycle`, `self_rec` (real rows at their own group), `tv`,
/// `chroma_change`, `dark_patch`, `pale_patch`, `colour_speck`,
/// `age_critic` (all rows, or the targets younger than
/// `old_age_critic_from` when a second critic is given), `age_critic_old`
/// (the second critic, on the older targets, up to `oldest_age_critic_from`
/// when a third is given), `age_critic_oldest` (the third critic, on the
/// targets from `oldest_age_critic_from` up), `gender_keep` (the gender
/// critic, on the targets from `gender_keep_from` up), `realism` (the
/// realism critic, on the targets from `realism_from` up).
pub fn facegan_objective(
    cfg: &FaceGanTrainConfig,
    embedder: Option<Arc<dyn FaceEmbedder>>,
    critics: &FaceGanCritics,
) -> Result<Objective> {
    let w = &cfg.weights;
    let mut terms = Vec::new();
    if w.adversarial > 0.0 {
        let l = GeneratorAdversarial {
            kind: cfg.adversarial,
            weight: w.adversarial,
        };
        terms.push(Term::new(
            "g_adv",
            Box::new(l),
            Rows::All,
            Operand::DiscriminatorLogits,
        ));
    }
    if w.age > 0.0 && cfg.model.d_aux_classifier {
        let l = AgeLoss { weight: w.age };
        terms.push(Term::new(
            "g_age",
            Box::new(l),
            Rows::All,
            Operand::DiscriminatorClassLogits,
        ));
    }
    if w.synthetic_reconstruction > 0.0 {
        let l = ReconstructionLoss::new(cfg.reconstruction, w.synthetic_reconstruction);
        terms.push(Term::new(
            "syn_rec",
            Box::new(l),
            Rows::Synthetic,
            Operand::OutputVsSyntheticTarget,
        ));
    }
    if let Some(e) = embedder {
        let identity = |weight| SharedIdentityLoss {
            embedder: e.clone(),
            distance: cfg.identity_distance,
            weight,
            blur_sigma: cfg.identity_blur,
            luma: cfg.identity_luma,
        };
        for (name, weight, rows) in [
            ("identity", w.identity, cfg.identity_rows),
            (
                "identity_old",
                w.identity_old,
                Rows::TargetFrom(cfg.old_age_critic_from),
            ),
            (
                "identity_young",
                w.identity_young,
                Rows::TargetBelow(cfg.identity_young_below),
            ),
        ] {
            if weight > 0.0 {
                terms.push(Term::new(
                    name,
                    Box::new(identity(weight)),
                    rows,
                    Operand::OutputVsInput,
                ));
            }
        }
    }
    if w.cycle > 0.0 {
        let l = ReconstructionLoss::new(cfg.reconstruction, w.cycle);
        terms.push(Term::new(
            "cycle",
            Box::new(l),
            cfg.cycle_rows,
            Operand::CycleVsInput,
        ));
    }
    if w.self_reconstruction > 0.0 {
        let l = ReconstructionLoss::new(cfg.reconstruction, w.self_reconstruction);
        terms.push(Term::new(
            "self_rec",
            Box::new(l),
            Rows::RealAtSource,
            Operand::OutputVsInput,
        ));
    }
    if w.total_variation > 0.0 {
        let l = TotalVariationLoss {
            weight: w.total_variation,
        };
        terms.push(Term::new("tv", Box::new(l), Rows::All, Operand::Output));
    }
    if w.sharp_change > 0.0 {
        let l = SharpChangeLoss {
            weight: w.sharp_change,
            sigma: cfg.sharp_change_sigma,
        };
        terms.push(Term::new(
            "sharp_change",
            Box::new(l),
            Rows::All,
            Operand::OutputVsInput,
        ));
    }
    if w.chroma_change > 0.0 {
        let l = ChromaChangeLoss {
            weight: w.chroma_change,
        };
        terms.push(Term::new(
            "chroma_change",
            Box::new(l),
            Rows::All,
            Operand::OutputVsInput,
        ));
    }
    if w.dark_patch > 0.0 {
        let l = DarkPatchLoss {
            weight: w.dark_patch,
            sigma: cfg.dark_patch_sigma,
            threshold: cfg.dark_patch_threshold,
        };
        terms.push(Term::new(
            "dark_patch",
            Box::new(l),
            Rows::All,
            Operand::OutputVsInput,
        ));
    }
    if w.pale_patch > 0.0 {
        let l = PalePatchLoss {
            weight: w.pale_patch,
            sigma: cfg.pale_patch_sigma,
            threshold: cfg.pale_patch_threshold,
        };
        terms.push(Term::new(
            "pale_patch",
            Box::new(l),
            Rows::All,
            Operand::OutputVsInput,
        ));
    }
    if w.colour_speck > 0.0 {
        let l = ColourSpeckLoss {
            weight: w.colour_speck,
            threshold: cfg.colour_speck_threshold,
        };
        terms.push(Term::new(
            "colour_speck",
            Box::new(l),
            Rows::All,
            Operand::OutputVsInput,
        ));
    }
    // Both critic terms read the outputs with the same settings.
    let critic_loss = |classifier, weight| ClassifierAgeLoss {
        classifier,
        weight,
        blur_sigma: cfg.age_critic_blur,
        luma: cfg.age_critic_luma,
        satisfied: cfg.age_critic_satisfied,
    };
    if w.age_critic > 0.0 {
        let c = critics.age.clone().ok_or_else(|| {
            TrainError::from(agesynth_core::Error::Config(
                "the config weights an age-critic term but no age critic was given".into(),
            ))
        })?;
        let l = critic_loss(c, w.age_critic);
        let rows = match critics.old_age {
            Some(_) if w.old_age_critic > 0.0 => Rows::TargetBelow(cfg.old_age_critic_from),
            _ => Rows::All,
        };
        terms.push(Term::new("age_critic", Box::new(l), rows, Operand::Output));
    }
    if w.old_age_critic > 0.0 {
        let c = critics.old_age.clone().ok_or_else(|| {
            TrainError::from(agesynth_core::Error::Config(
                "the config weights a second age critic for the old targets but none was given"
                    .into(),
            ))
        })?;
        let l = critic_loss(c, w.old_age_critic);
        let rows = match critics.oldest_age {
            Some(_) if w.oldest_age_critic > 0.0 => {
                Rows::TargetIn(cfg.old_age_critic_from, cfg.oldest_age_critic_from)
            }
            _ => Rows::TargetFrom(cfg.old_age_critic_from),
        };
        terms.push(Term::new(
            "age_critic_old",
            Box::new(l),
            rows,
            Operand::Output,
        ));
    }
    if w.oldest_age_critic > 0.0 {
        let c = critics.oldest_age.clone().ok_or_else(|| {
            TrainError::from(agesynth_core::Error::Config(
                "the config weights a third age critic for the oldest targets but none was given"
                    .into(),
            ))
        })?;
        let l = critic_loss(c, w.oldest_age_critic);
        terms.push(Term::new(
            "age_critic_oldest",
            Box::new(l),
            Rows::TargetFrom(cfg.oldest_age_critic_from),
            Operand::Output,
        ));
    }
    if w.gender_keep > 0.0 {
        let c = critics.gender.clone().ok_or_else(|| {
            TrainError::from(agesynth_core::Error::Config(
                "the config weights a gender-keeping term but no gender critic was given".into(),
            ))
        })?;
        let l = ClassifierGenderLoss {
            classifier: c,
            weight: w.gender_keep,
            blur_sigma: cfg.age_critic_blur,
            satisfied: cfg.gender_keep_satisfied,
        };
        terms.push(Term::new(
            "gender_keep",
            Box::new(l),
            Rows::TargetFrom(cfg.gender_keep_from),
            Operand::Output,
        ));
    }
    if w.realism > 0.0 {
        let c = critics.realism.clone().ok_or_else(|| {
            TrainError::from(agesynth_core::Error::Config(
                "the config weights a realism term but no realism critic was given".into(),
            ))
        })?;
        let l = RealismLoss {
            critic: c,
            weight: w.realism,
            satisfied: cfg.realism_satisfied,
        };
        terms.push(Term::new(
            "realism",
            Box::new(l),
            Rows::TargetFrom(cfg.realism_from),
            Operand::Output,
        ));
    }
    Objective::new(terms)
}

/// The networks a FaceGAN task trains, through the traits: a generator, its
/// exponential moving average (same architecture, its own variables), and a
/// conditional discriminator, each with the `VarMap` holding its weights.
/// [`FaceGanModels::from_config`] builds the U-Net and PatchGAN of
/// `agesynth-facegan`; [`FaceGanModels::build`] any other pair.
pub struct FaceGanModels {
    /// The generator (live weights).
    pub generator: Box<dyn AgeGenerator>,
    /// Its variables (what the optimiser updates).
    pub generator_vars: VarMap,
    /// The generator's EMA.
    pub generator_ema: Box<dyn AgeGenerator>,
    /// The EMA's variables.
    pub ema_vars: VarMap,
    /// The discriminator. Its [`judge`](ConditionalDiscriminator::judge)
    /// gives the age head's logits when it has one; R1 needs its
    /// [`logits_jvp`](ConditionalDiscriminator::logits_jvp).
    pub discriminator: Box<dyn ConditionalDiscriminator>,
    /// Its variables.
    pub discriminator_vars: VarMap,
}

/// Builds a model into `vars` through a seeded `VarBuilder`.
pub type ModelBuilder<'a, M> = dyn Fn(VarBuilder<'static>) -> agesynth_core::Result<M> + 'a;

impl FaceGanModels {
    /// Any generator and discriminator: `generator` is called twice (the
    /// live generator and its EMA, which starts as a copy), `discriminator`
    /// once, each with a `VarBuilder` seeded from `seed` on `device`.
    pub fn build(
        generator: &ModelBuilder<'_, Box<dyn AgeGenerator>>,
        discriminator: &ModelBuilder<'_, Box<dyn ConditionalDiscriminator>>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let (generator_vars, ema_vars, discriminator_vars) =
            (VarMap::new(), VarMap::new(), VarMap::new());
        let g = generator(seeded_var_builder(
            &generator_vars,
            seed,
            DType::F32,
            device,
        ))?;
        let g_ema = generator(seeded_var_builder(&ema_vars, seed, DType::F32, device))?;
        copy_vars(&ema_vars, &generator_vars)?;
        let d = discriminator(seeded_var_builder(
            &discriminator_vars,
            seed.wrapping_add(1),
            DType::F32,
            device,
        ))?;
        Ok(FaceGanModels {
            generator: g,
            generator_vars,
            generator_ema: g_ema,
            ema_vars,
            discriminator: d,
            discriminator_vars,
        })
    }

    /// The U-Net generator and PatchGAN discriminator of `agesynth-facegan`
    /// that `cfg.model` describes, initialised from `cfg.seed`.
    pub fn from_config(cfg: &FaceGanTrainConfig, device: &Device) -> Result<Self> {
        let model = &cfg.model;
        Self::build(
            &|vb| Ok(Box::new(Generator::new(model, vb)?) as Box<dyn AgeGenerator>),
            &|vb| match &cfg.discriminator {
                FaceGanDiscriminator::PatchGan => {
                    Ok(Box::new(Discriminator::new(model, vb)?)
                        as Box<dyn ConditionalDiscriminator>)
                }
                FaceGanDiscriminator::CStyleGan { config } => Ok(Box::new(
                    agesynth_cstylegan::Discriminator::new(config, vb)?,
                )
                    as Box<dyn ConditionalDiscriminator>),
            },
            cfg.seed,
            device,
        )
    }
}

/// One step's inputs: images, their own groups, the targets, and the
/// synthetic target images.
struct StepBatch {
    inputs: Tensor,
    sources: Vec<AgeGroup>,
    targets: Vec<AgeGroup>,
    n_real: usize,
    synthetic_targets: Option<Tensor>,
    /// Each row's gender where known (empty when none is).
    genders: Vec<Option<Gender>>,
}

impl FaceGanTask {
    /// A new task on `device`: models initialised from the seed, real faces
    /// `real` (needed unless the batch is all synthetic), synthetic pairs
    /// `pairs` (needed unless it is all real), and the identity network
    /// `embedder` (without one the identity term is off). The objective is
    /// [`facegan_objective`] of the config; [`with_age_critic`] adds the
    /// age critic, [`with_objective`] replaces the objective.
    ///
    /// [`with_age_critic`]: Self::with_age_critic
    /// [`with_objective`]: Self::with_objective
    pub fn new(
        cfg: FaceGanTrainConfig,
        real: Option<Arc<RealFaces>>,
        pairs: Option<Arc<SynthPairs>>,
        embedder: Option<Box<dyn FaceEmbedder>>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let models = FaceGanModels::from_config(&cfg, device)?;
        Self::with_models(cfg, models, real, pairs, embedder, device)
    }

    /// A task training `models` (any generator and discriminator behind the
    /// traits) with the run `cfg`: the config's `model` gives the image size
    /// and age groups the models must share, and is written as the
    /// generator's sidecar. Otherwise as [`FaceGanTask::new`].
    pub fn with_models(
        cfg: FaceGanTrainConfig,
        models: FaceGanModels,
        real: Option<Arc<RealFaces>>,
        pairs: Option<Arc<SynthPairs>>,
        embedder: Option<Box<dyn FaceEmbedder>>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let bins = cfg.model.bins()?;
        let s = cfg.model.image_size;
        let cfg_err = |m: String| -> TrainError { agesynth_core::Error::Config(m).into() };
        let FaceGanModels {
            generator: g,
            generator_vars: g_vars,
            generator_ema: g_ema,
            ema_vars,
            discriminator: d,
            discriminator_vars: d_vars,
        } = models;
        for (what, b, size) in [
            ("generator", g.age_bins(), Some(g.image_size())),
            ("generator EMA", g_ema.age_bins(), Some(g_ema.image_size())),
            ("discriminator", d.age_bins(), None),
        ] {
            if b != &bins || size.is_some_and(|z| z != s) {
                return Err(cfg_err(format!(
                    "the {what} works with age bins {:?}{}, the run's config with {:?} at {s}x{s}",
                    b.lower_bounds(),
                    size.map(|z| format!(" at {z}x{z}")).unwrap_or_default(),
                    bins.lower_bounds()
                )));
            }
        }
        if cfg.real_per_step() > 0 {
            let r = real.as_ref().ok_or_else(|| {
                cfg_err("the batch has real rows but no real faces were given".into())
            })?;
            if r.size() != s {
                return Err(cfg_err(format!(
                    "the real faces are {0}x{0} but the model takes {s}x{s}",
                    r.size()
                )));
            }
        }
        if cfg.synthetic_per_step() > 0 {
            let p = pairs.as_ref().ok_or_else(|| {
                cfg_err("the batch has synthetic rows but no synthetic pairs were given".into())
            })?;
            if p.image_size() != s {
                return Err(cfg_err(format!(
                    "the synthetic pairs are {0}x{0} but the model takes {s}x{s}",
                    p.image_size()
                )));
            }
            if p.bins() != &bins {
                return Err(cfg_err(format!(
                    "the synthetic pairs have age bins {:?}, the model {:?}",
                    p.bins().lower_bounds(),
                    bins.lower_bounds()
                )));
            }
            if p.identities() == 0 {
                return Err(cfg_err("the synthetic-pairs set is empty".into()));
            }
        }
        let adam = |lr: f64| AdamConfig {
            lr,
            beta1: cfg.betas.0,
            beta2: cfg.betas.1,
            ..AdamConfig::default()
        };
        let opt_g = Adam::new(
            vec![ParamGroup::from_varmap("generator", &g_vars, 1.0)],
            adam(cfg.g_lr),
        )?;
        let opt_d = Adam::new(
            vec![ParamGroup::from_varmap("discriminator", &d_vars, 1.0)],
            adam(cfg.d_lr),
        )?;
        let order = real.as_ref().map(|r| DataOrder::new(r.len(), cfg.seed));
        let embedder: Option<Arc<dyn FaceEmbedder>> = embedder.map(Arc::from);
        // Completed by `with_age_critic`, `with_old_age_critic`,
        // `with_oldest_age_critic`, `with_gender_critic` and
        // `with_realism_critic`; until then the critic terms are out.
        let critics = FaceGanCritics::default();
        let objective = facegan_objective(
            &critics.config_without_missing(&cfg),
            embedder.clone(),
            &critics,
        )?;
        Ok(FaceGanTask {
            cfg,
            bins,
            device: device.clone(),
            state: GanState {
                g_vars,
                ema_vars,
                d_vars,
                opt_g,
                opt_d,
            },
            g,
            g_ema,
            d,
            real,
            order,
            pairs,
            embedder,
            critics,
            synthetic_genders: None,
            objective,
            shards: 1,
        })
    }

    /// Tells the task the gender of each synthetic identity (one per
    /// identity of the pairs; `None` where unknown), so that the age critic
    /// reads a synthetic row's age given its person's gender, as it does for
    /// a real face from its label.
    pub fn with_synthetic_genders(mut self, genders: Vec<Option<Gender>>) -> Result<Self> {
        let n = self.pairs.as_ref().map_or(0, |p| p.identities());
        if genders.len() != n {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "{} synthetic genders for {n} synthetic identities",
                genders.len()
            ))
            .into());
        }
        self.synthetic_genders = Some(genders);
        Ok(self)
    }

    /// Gives the task its frozen age critic (a classifier trained apart on
    /// real faces, never an evaluation network), rebuilding the objective
    /// with the `age_critic` term the config weights.
    pub fn with_age_critic(mut self, critic: Arc<dyn AgeClassifier>) -> Result<Self> {
        self.critics.age = Some(self.checked_age_critic(critic, "the age critic")?);
        self.rebuild_objective()?;
        Ok(self)
    }

    /// Gives the task a second frozen age critic for the targets from
    /// [`FaceGanTrainConfig::old_age_critic_from`] up (the first then reads
    /// the younger ones), rebuilding the objective.
    pub fn with_old_age_critic(mut self, critic: Arc<dyn AgeClassifier>) -> Result<Self> {
        self.critics.old_age = Some(self.checked_age_critic(critic, "the second age critic")?);
        self.rebuild_objective()?;
        Ok(self)
    }

    /// Gives the task a third frozen age critic for the targets from
    /// [`FaceGanTrainConfig::oldest_age_critic_from`] up (the second then
    /// reads the targets from [`FaceGanTrainConfig::old_age_critic_from`]
    /// up to that group), rebuilding the objective.
    pub fn with_oldest_age_critic(mut self, critic: Arc<dyn AgeClassifier>) -> Result<Self> {
        self.critics.oldest_age = Some(self.checked_age_critic(critic, "the third age critic")?);
        self.rebuild_objective()?;
        Ok(self)
    }

    /// Gives the task its frozen gender critic (trained apart on real
    /// faces' labels, never an evaluation network), rebuilding the
    /// objective with the `gender_keep` term the config weights.
    pub fn with_gender_critic(mut self, critic: Arc<dyn GenderClassifier>) -> Result<Self> {
        self.critics.gender = Some(critic);
        self.rebuild_objective()?;
        Ok(self)
    }

    /// Gives the task its frozen realism critic (a discriminator trained
    /// apart on real faces, never an evaluation network), rebuilding the
    /// objective with the `realism` term the config weights.
    pub fn with_realism_critic(mut self, critic: Arc<dyn RealismCritic>) -> Result<Self> {
        if critic.age_bins() != &self.bins {
            return Err(agesynth_core::Error::Config(format!(
                "the realism critic knows groups {:?}, the model uses {:?}",
                critic.age_bins().lower_bounds(),
                self.bins.lower_bounds()
            ))
            .into());
        }
        self.critics.realism = Some(critic);
        self.rebuild_objective()?;
        Ok(self)
    }

    /// `critic`, refused when it classifies other groups than the model's
    /// (`which` names it in the error).
    fn checked_age_critic(
        &self,
        critic: Arc<dyn AgeClassifier>,
        which: &str,
    ) -> Result<Arc<dyn AgeClassifier>> {
        if critic.age_bins() != &self.bins {
            return Err(agesynth_core::Error::Config(format!(
                "{which} classifies groups {:?}, the model uses {:?}",
                critic.age_bins().lower_bounds(),
                self.bins.lower_bounds()
            ))
            .into());
        }
        Ok(critic)
    }

    /// The config's objective with the critics given so far (a critic term
    /// whose critic is still missing stays out).
    fn rebuild_objective(&mut self) -> Result<()> {
        self.objective = facegan_objective(
            &self.critics.config_without_missing(&self.cfg),
            self.embedder.clone(),
            &self.critics,
        )?;
        Ok(())
    }

    /// Replaces the generator objective (for objectives beyond what the
    /// config describes).
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// The generator objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// Initialises the generator and its EMA from `vars` (a generator of the
    /// same config, e.g. shipped weights): a warm start. The discriminator
    /// and the optimisers stay as they are.
    pub fn init_generator_from(&mut self, vars: &VarMap) -> Result<()> {
        copy_vars(&self.state.g_vars, vars)?;
        copy_vars(&self.state.ema_vars, vars)?;
        Ok(())
    }

    /// Warm-starts the discriminator from trained weights (a cStyleGAN
    /// discriminator's for [`FaceGanDiscriminator::CStyleGan`]): every
    /// variable by name; a missing or misshapen one is an error.
    pub fn init_discriminator_from(&mut self, vars: &VarMap) -> Result<()> {
        copy_vars(&self.state.d_vars, vars)?;
        Ok(())
    }

    /// Splits each generator step's batch into `shards` parts whose
    /// forward and backward passes run in parallel, their gradients summed
    /// before one optimiser step: on a CPU, where many of a step's small ops
    /// run on one core, two shards on two cores train more images per
    /// second (1.1–1.2× for the shipped recipe on 2 cores). Each part keeps its real rows first and gets an equal share
    /// of the real and of the synthetic rows; each term's value is scaled by
    /// the share of its rows the part holds
    /// ([`Objective::evaluate_share`]), so for terms that average over their
    /// rows (every per-image term) the step is the whole batch's, up to the
    /// order of floating-point sums. It is a setting of the process, not of
    /// the run: a run resumed with another count goes on from its
    /// checkpoint. Needs a batch of at least `shards` rows, and a generator
    /// objective that does not read D (D's pass and update stay whole).
    pub fn set_shards(&mut self, shards: usize) -> Result<()> {
        if shards == 0 || shards > self.cfg.batch {
            return Err(agesynth_core::Error::Config(format!(
                "shards {shards} must be between 1 and the batch ({})",
                self.cfg.batch
            ))
            .into());
        }
        if shards > 1 && self.trains_discriminator() {
            return Err(agesynth_core::Error::Config(format!(
                "shards {shards}: the generator objective reads the discriminator (adversarial or D-age \
                 weight above 0), whose pass runs on the whole batch; use one shard"
            ))
            .into());
        }
        self.shards = shards;
        Ok(())
    }

    /// Shards each generator step is split into ([`FaceGanTask::set_shards`]).
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The configuration.
    pub fn config(&self) -> &FaceGanTrainConfig {
        &self.cfg
    }

    /// The generator (live weights).
    pub fn generator(&self) -> &dyn AgeGenerator {
        self.g.as_ref()
    }

    /// The exponential moving average of the generator: smoother than the
    /// live weights, and what [`export_ema`](Self::export_ema) ships.
    pub fn generator_ema(&self) -> &dyn AgeGenerator {
        self.g_ema.as_ref()
    }

    /// The discriminator.
    pub fn discriminator(&self) -> &dyn ConditionalDiscriminator {
        self.d.as_ref()
    }

    /// The generator's variables.
    pub fn generator_vars(&self) -> &VarMap {
        &self.state.g_vars
    }

    /// Saves the live generator at `path` with its config as the sidecar
    /// (`PATH.json`), atomically.
    pub fn export_generator(&self, path: &Path) -> Result<()> {
        agesynth_core::io::save_varmap(&self.state.g_vars, path, &self.cfg.model)?;
        Ok(())
    }

    /// Saves the generator's EMA at `path` with its config as the sidecar
    /// (`PATH.json`), atomically: the shipped weights file.
    pub fn export_ema(&self, path: &Path) -> Result<()> {
        agesynth_core::io::save_varmap(&self.state.ema_vars, path, &self.cfg.model)?;
        Ok(())
    }

    fn draw_batch(&mut self, step: u64) -> Result<StepBatch> {
        let g = self.bins.len();
        let (n_syn, n_real) = (self.cfg.synthetic_per_step(), self.cfg.real_per_step());
        let mut rng = step_rng(self.cfg.seed, "facegan-targets", step);
        let mut parts = Vec::new();
        let mut sources = Vec::with_capacity(self.cfg.batch);
        let mut genders: Vec<Option<Gender>> = Vec::with_capacity(self.cfg.batch);
        if n_real > 0 {
            let (real, order) = match (&self.real, &mut self.order) {
                (Some(r), Some(o)) => (r, o),
                _ => {
                    return Err(agesynth_core::Error::Config(
                        "the batch has real rows but no real faces were given".into(),
                    )
                    .into())
                }
            };
            let (idx, b) =
                real.next_batch_indexed(order, n_real, self.cfg.xflip, step, &self.device)?;
            parts.push(b.images);
            sources.extend(b.groups);
            genders.extend(
                idx.iter()
                    .map(|&i| real.genders().get(i).copied().flatten()),
            );
        }
        let mut synthetic_targets = None;
        let policy = &self.cfg.targets;
        let mut targets: Vec<AgeGroup> = (0..n_real)
            .map(|i| policy.draw(sources[i], g, &mut rng))
            .collect();
        if n_syn > 0 {
            let pairs = self.pairs.as_ref().ok_or_else(|| {
                TrainError::from(agesynth_core::Error::Config(
                    "the batch has synthetic rows but no synthetic pairs were given".into(),
                ))
            })?;
            let mut srng = step_rng(self.cfg.seed, "facegan-synthetic", step);
            let ids: Vec<usize> = (0..n_syn)
                .map(|_| srng.random_range(0..pairs.identities()))
                .collect();
            let src: Vec<AgeGroup> = (0..n_syn)
                .map(|_| AgeGroup(srng.random_range(0..g)))
                .collect();
            let syn_targets = policy.synthetic_targets(g);
            let tgt: Vec<AgeGroup> = (0..n_syn)
                .map(|_| AgeGroup(srng.random_range(syn_targets.clone())))
                .collect();
            genders.extend(ids.iter().map(|&i| {
                self.synthetic_genders
                    .as_ref()
                    .and_then(|g| g.get(i).copied().flatten())
            }));
            let (a, b) = pairs.pair_batch(&ids, &src, &tgt, &self.device)?;
            parts.push(a.images);
            sources.extend(src);
            targets.extend(tgt);
            synthetic_targets = Some(b.images);
        }
        let mut inputs = Tensor::cat(&parts, 0)?;
        if self.cfg.grey_prob > 0.0 {
            let mut grng = step_rng(self.cfg.seed, "facegan-grey", step);
            let grey: Vec<bool> = (0..inputs.dim(0)?)
                .map(|_| grng.random::<f64>() < self.cfg.grey_prob)
                .collect();
            inputs = grey_rows(&inputs, &grey)?;
            if let Some(y) = synthetic_targets.take() {
                synthetic_targets = Some(grey_rows(&y, &grey[n_real..])?);
            }
        }
        if genders.iter().all(Option::is_none) {
            genders.clear();
        }
        Ok(StepBatch {
            inputs,
            sources,
            targets,
            n_real,
            synthetic_targets,
            genders,
        })
    }
}

/// `images (N, 3, H, W)` with the rows where `grey` is set replaced by their
/// luma in all three channels.
pub(crate) fn grey_rows(images: &Tensor, grey: &[bool]) -> Result<Tensor> {
    if !grey.iter().any(|&g| g) {
        return Ok(images.clone());
    }
    let n = images.dim(0)?;
    if grey.len() != n {
        return Err(agesynth_core::Error::InvalidInput(format!(
            "{} greyscale flags for {n} images",
            grey.len()
        ))
        .into());
    }
    let m: Vec<f32> = grey.iter().map(|&g| if g { 1.0 } else { 0.0 }).collect();
    let m = Tensor::from_vec(m, (n, 1, 1, 1), images.device())?.to_dtype(images.dtype())?;
    let y = agesynth_losses::age::luma(images)?;
    Ok((images.broadcast_mul(&(1.0 - &m)?)? + y.broadcast_mul(&m)?)?)
}

fn value(t: &Tensor) -> Result<f32> {
    Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()?)
}

impl FaceGanTask {
    /// D's update: real faces (and optionally the synthetic targets) as
    /// real, the detached fakes as fake, real faces at a wrong group as fake,
    /// the age head on the reals, and the lazy R1 phase.
    fn discriminator_step(
        &mut self,
        step: u64,
        b: &StepBatch,
        fake: &Tensor,
        report: &mut StepReport,
    ) -> Result<()> {
        let (adv, n_real) = (self.cfg.adversarial, b.n_real);
        let mut reals = Vec::new();
        let mut real_groups = Vec::new();
        if n_real > 0 {
            reals.push(b.inputs.narrow(0, 0, n_real)?);
            real_groups.extend_from_slice(&b.sources[..n_real]);
        }
        if let Some(y) = &b.synthetic_targets {
            if self.cfg.d_on_synthetic || n_real == 0 {
                reals.push(y.clone());
                real_groups.extend_from_slice(&b.targets[n_real..]);
            }
        }
        let real_images = Tensor::cat(&reals, 0)?;
        let d_real = self.d.judge(&real_images, &real_groups)?;
        let d_fake = self.d.judge(&fake.detach(), &b.targets)?;
        let mut d_loss = adv.d_loss(&d_real.logits, &d_fake.logits)?;
        let (losses, metrics) = (&mut report.losses, &mut report.metrics);
        losses.push(("d_adv".to_string(), value(&d_loss)?));
        metrics.push(("d_real".to_string(), value(&d_real.logits.mean_all()?)?));
        metrics.push(("d_fake".to_string(), value(&d_fake.logits.mean_all()?)?));
        if self.cfg.d_wrong_age > 0.0 && n_real > 0 && self.bins.len() > 1 {
            // Real faces claimed to be of another group are fakes: a copy of
            // the input at another target cannot pass as real.
            let mut rng = step_rng(self.cfg.seed, "facegan-wrong-age", step);
            let g = self.bins.len();
            let wrong: Vec<AgeGroup> = b.sources[..n_real]
                .iter()
                .map(|s| AgeGroup((s.0 + rng.random_range(1..g)) % g))
                .collect();
            let out = self.d.judge(&b.inputs.narrow(0, 0, n_real)?, &wrong)?;
            let l = (adv.d_fake_loss(&out.logits)? * self.cfg.d_wrong_age)?;
            losses.push(("d_wrong_age".to_string(), value(&l)?));
            metrics.push(("d_wrong".to_string(), value(&out.logits.mean_all()?)?));
            d_loss = (d_loss + l)?;
        }
        let w_age = self.cfg.weights.age;
        if let (Some(cl), true) = (&d_real.class_logits, w_age > 0.0) {
            let ce = cross_entropy(cl, &real_groups)?;
            losses.push(("d_age".to_string(), value(&ce)?));
            d_loss = (d_loss + (ce * w_age)?)?;
        }
        let r1 = LazyR1 {
            gamma: self.cfg.r1_gamma,
            every: self.cfg.r1_every,
        };
        if let Some((penalty, v)) = r1.run(step, self.d.as_ref(), &real_images, &real_groups)? {
            losses.push(("r1".to_string(), v));
            d_loss = (d_loss + penalty)?;
        }
        self.state.opt_d.backward_step(&d_loss)?;
        Ok(())
    }

    /// Whether a step trains D: only when a term of the generator's
    /// objective reads it (the adversarial term or D's age head). With both
    /// weighted 0, D's update would cost a third of the step and change
    /// nothing G learns, so it is skipped and D stays as it started.
    pub fn trains_discriminator(&self) -> bool {
        self.objective.terms().iter().any(|t| {
            matches!(
                t.operand,
                Operand::DiscriminatorLogits | Operand::DiscriminatorClassLogits
            )
        })
    }

    /// G's update: the objective's terms on the fakes of this step.
    fn generator_step(
        &mut self,
        b: &StepBatch,
        fake: &Tensor,
        report: &mut StepReport,
    ) -> Result<()> {
        let (d, g) = (&self.d, &self.g);
        let discriminator = |x: &Tensor, groups: &[AgeGroup]| -> Result<(Tensor, Option<Tensor>)> {
            let o = d.judge(x, groups)?;
            Ok((o.logits, o.class_logits))
        };
        let generator =
            |x: &Tensor, groups: &[AgeGroup]| -> Result<Tensor> { Ok(g.generate(x, groups)?) };
        let (total, terms) = self.objective.evaluate(&GeneratorStep {
            inputs: &b.inputs,
            outputs: fake,
            sources: &b.sources,
            targets: &b.targets,
            n_real: b.n_real,
            genders: &b.genders,
            synthetic_targets: b.synthetic_targets.as_ref(),
            discriminator: &discriminator,
            generator: &generator,
        })?;
        report.losses.extend(terms);
        report.losses.push(("g".to_string(), value(&total)?));
        self.state.opt_g.backward_step(&total)?;
        Ok(())
    }

    /// G's update with the batch split into [`FaceGanTask::shards`] parts:
    /// each part's generator pass, objective and backward pass on its own
    /// thread, the gradients summed, one optimiser step.
    fn generator_step_sharded(&mut self, b: &StepBatch, report: &mut StepReport) -> Result<()> {
        use rayon::prelude::*;
        let whole = self
            .objective
            .rows_per_term(b.n_real, &b.sources, &b.targets);
        let parts = b.split(self.shards)?;
        let (g, objective) = (&self.g, &self.objective);
        let results: Vec<Result<ShardResult>> = parts
            .par_iter()
            .map(|p| {
                let fake = g.generate(&p.inputs, &p.targets)?;
                let discriminator =
                    |_: &Tensor, _: &[AgeGroup]| -> Result<(Tensor, Option<Tensor>)> {
                        Err(agesynth_core::Error::Config(
                            "a sharded generator step cannot read the discriminator".into(),
                        )
                        .into())
                    };
                let generator = |x: &Tensor, groups: &[AgeGroup]| -> Result<Tensor> {
                    Ok(g.generate(x, groups)?)
                };
                let (total, terms) = objective.evaluate_share(
                    &GeneratorStep {
                        inputs: &p.inputs,
                        outputs: &fake,
                        sources: &p.sources,
                        targets: &p.targets,
                        n_real: p.n_real,
                        genders: &p.genders,
                        synthetic_targets: p.synthetic_targets.as_ref(),
                        discriminator: &discriminator,
                        generator: &generator,
                    },
                    &whole,
                )?;
                Ok((total.backward()?, terms))
            })
            .collect();
        let mut grads: Option<GradStore> = None;
        let mut named: Vec<(String, f32)> = Vec::new();
        for r in results {
            let (gs, terms) = r?;
            for (name, v) in terms {
                match named.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, sum)) => *sum += v,
                    None => named.push((name, v)),
                }
            }
            // `extend` adds the gradients of the variables both shards reach.
            match &mut grads {
                None => grads = Some(gs),
                Some(acc) => acc.extend(gs)?,
            }
        }
        // Terms in the objective's order, as the whole-batch step logs them.
        let order: Vec<&str> = objective.terms().iter().map(|t| t.name.as_str()).collect();
        named.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
        let total: f32 = named.iter().map(|(_, v)| v).sum();
        report.losses.extend(named);
        report.losses.push(("g".to_string(), total));
        let grads = grads.ok_or_else(|| {
            TrainError::from(agesynth_core::Error::Config("no shard to train on".into()))
        })?;
        self.state.opt_g.step(&grads)?;
        Ok(())
    }
}

/// One shard's gradients and its share of each named term.
type ShardResult = (GradStore, Vec<(String, f32)>);

impl StepBatch {
    /// The batch in `k` parts for [`FaceGanTask::generator_step_sharded`]:
    /// each keeps its real rows first, the real and the synthetic rows
    /// dealt out in contiguous runs as evenly as they go.
    fn split(&self, k: usize) -> Result<Vec<StepBatch>> {
        let n = self.inputs.dim(0)?;
        let n_syn = n - self.n_real;
        let cut = |len: usize, i: usize| (len * i / k, len * (i + 1) / k);
        let mut out = Vec::with_capacity(k);
        for i in 0..k {
            let (r0, r1) = cut(self.n_real, i);
            let (s0, s1) = cut(n_syn, i);
            if r1 == r0 && s1 == s0 {
                continue;
            }
            let mut rows: Vec<usize> = (r0..r1).collect();
            rows.extend((self.n_real + s0)..(self.n_real + s1));
            let take = |v: &[AgeGroup]| rows.iter().map(|&r| v[r]).collect::<Vec<_>>();
            let mut parts = Vec::new();
            if r1 > r0 {
                parts.push(self.inputs.narrow(0, r0, r1 - r0)?);
            }
            if s1 > s0 {
                parts.push(self.inputs.narrow(0, self.n_real + s0, s1 - s0)?);
            }
            let synthetic_targets = match &self.synthetic_targets {
                Some(y) if s1 > s0 => Some(y.narrow(0, s0, s1 - s0)?),
                _ => None,
            };
            out.push(StepBatch {
                inputs: Tensor::cat(&parts, 0)?,
                sources: take(&self.sources),
                targets: take(&self.targets),
                n_real: r1 - r0,
                synthetic_targets,
                genders: if self.genders.is_empty() {
                    Vec::new()
                } else {
                    rows.iter().map(|&r| self.genders[r]).collect()
                },
            });
        }
        Ok(out)
    }
}

impl TrainTask for FaceGanTask {
    fn step(&mut self, step: u64) -> Result<StepReport> {
        let batch = self.draw_batch(step)?;
        let n = batch.inputs.dim(0)?;
        let mut report = StepReport {
            images: n,
            ..StepReport::default()
        };
        if self.shards > 1 && !self.trains_discriminator() {
            self.generator_step_sharded(&batch, &mut report)?;
        } else {
            // One generator pass serves both updates: D sees it detached, and
            // G's weights do not change before G's own update.
            let fake = self.g.generate(&batch.inputs, &batch.targets)?;
            if self.trains_discriminator() {
                self.discriminator_step(step, &batch, &fake, &mut report)?;
            }
            self.generator_step(&batch, &fake, &mut report)?;
        }
        let decay = ema_decay(n, self.cfg.ema_half_life_images);
        ema_update(&self.state.ema_vars, &self.state.g_vars, decay, |_| false)?;
        Ok(report)
    }

    fn checkpoint(&self) -> Result<CheckpointContents> {
        self.state
            .contents()?
            // The sidecar of generator.safetensors: a checkpoint's generator
            // loads like a shipped weights file.
            .json("generator", &self.cfg.model)?
            .json("generator_ema", &self.cfg.model)?
            .json("data", &self.order)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let model: FaceGanConfig = ck.load_json("generator")?;
        if model != self.cfg.model {
            return Err(TrainError::checkpoint(
                ck.dir(),
                format!(
                    "was made with another FaceGAN config than this run's ({})",
                    crate::checkpoint::config_differences(&model, &self.cfg.model)
                ),
            ));
        }
        let order: Option<DataOrder> = ck.load_json("data")?;
        match (&order, &self.real) {
            (Some(o), Some(r)) if o.len != r.len() => {
                return Err(TrainError::checkpoint(
                    ck.dir(),
                    format!(
                        "was trained on {} real faces, the data now holds {}: the data order cannot continue",
                        o.len,
                        r.len()
                    ),
                ))
            }
            _ => {}
        }
        // Checkpoints written before the EMA existed start it from G.
        self.state.restore(ck)?;
        if order.is_some() {
            self.order = order;
        }
        Ok(())
    }

    fn sample_grid(&mut self) -> Result<Option<FaceImage>> {
        let rows = self.cfg.sample_rows.max(1);
        let g = self.bins.len();
        // Fixed inputs spread over the ages: row r shows a face of group
        // r mod G (the first real face of that group, else a synthetic
        // identity rendered at that group).
        let inputs = if let Some(r) = &self.real {
            let idx = age_spread_rows(r.groups(), rows, g);
            r.batch(&idx, &[], &self.device)?.images
        } else if let Some(p) = &self.pairs {
            let ids: Vec<usize> = (0..rows.min(p.identities())).collect();
            let groups: Vec<AgeGroup> = (0..ids.len()).map(|i| AgeGroup(i % g)).collect();
            p.batch(&ids, &groups, &self.device)?.images
        } else {
            return Ok(None);
        };
        sample_grid(self.g_ema.as_ref(), &inputs).map(Some)
    }
}

/// `rows` face indices whose groups cycle through `0..groups` (row `r` takes
/// the first face of group `r mod groups` not taken yet); groups without
/// faces are skipped, and the rest is filled with the first unused faces.
fn age_spread_rows(face_groups: &[AgeGroup], rows: usize, groups: usize) -> Vec<usize> {
    let rows = rows.min(face_groups.len());
    let mut taken = vec![false; face_groups.len()];
    let mut out = Vec::with_capacity(rows);
    let mut misses = 0;
    let mut r = 0;
    while out.len() < rows && misses < groups.max(1) {
        let want = AgeGroup(r % groups.max(1));
        r += 1;
        match (0..face_groups.len()).find(|&i| !taken[i] && face_groups[i] == want) {
            Some(i) => {
                taken[i] = true;
                out.push(i);
                misses = 0;
            }
            None => misses += 1,
        }
    }
    let rest: Vec<usize> = (0..face_groups.len()).filter(|&i| !taken[i]).collect();
    out.extend(rest.into_iter().take(rows - out.len()));
    out
}

/// A grid with one row per input of `inputs (n, 3, S, S)`: the input, then
/// the generator's output at every age group (labelled on top).
pub fn sample_grid(generator: &dyn AgeGenerator, inputs: &Tensor) -> Result<FaceImage> {
    let bins = generator.age_bins().clone();
    let n = inputs.dim(0)?;
    let mut outs = Vec::with_capacity(bins.len());
    for t in bins.groups() {
        outs.push(generator.generate(inputs, &vec![t; n])?.unsqueeze(1)?);
    }
    let all = Tensor::cat(&outs, 1)?; // (n, G, 3, S, S)
    let (n, g, c, h, w) = all.dims5()?;
    let rows = Tensor::cat(&[&inputs.unsqueeze(1)?, &all], 1)?.clamp(-1f32, 1f32)?;
    let tiles = agesynth_core::batch::tensor_to_images(&rows.reshape((n * (g + 1), c, h, w))?)?;
    let mut labels = vec![String::new()];
    labels.extend(bins.groups().map(|g| bins.label(g)));
    Ok(agesynth_data::draw::grid(&tiles, g + 1, Some(&labels))?)
}

pub use agesynth_facegan::load_generator;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_rows_turn_only_the_flagged_rows_grey() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::rand(-1f32, 1f32, (3, 3, 4, 4), &dev).unwrap();
        let y = grey_rows(&x, &[false, true, false]).unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        // Rows 0 and 2 unchanged.
        for r in [0, 2] {
            assert_eq!(diff(&x.get(r).unwrap(), &y.get(r).unwrap()), 0.0);
        }
        // Row 1: three equal channels, the Rec. 601 luma of the original.
        let g = y.get(1).unwrap();
        assert!(diff(&g.get(0).unwrap(), &g.get(1).unwrap()) < 1e-6);
        assert!(diff(&g.get(0).unwrap(), &g.get(2).unwrap()) < 1e-6);
        let o = x.get(1).unwrap();
        let want = ((o.get(0).unwrap() * 0.299).unwrap()
            + (o.get(1).unwrap() * 0.587).unwrap()
            + (o.get(2).unwrap() * 0.114).unwrap())
        .unwrap();
        assert!(diff(&g.get(0).unwrap(), &want) < 1e-5);
        assert!(grey_rows(&x, &[true]).is_err());
    }

    #[test]
    fn the_target_policy_keeps_its_distances() {
        let mut rng = step_rng(5, "test", 1);
        let uniform = TargetPolicy::default();
        let mut seen = [0usize; 6];
        for _ in 0..600 {
            seen[uniform.draw(AgeGroup(2), 6, &mut rng).0] += 1;
        }
        assert!(seen.iter().all(|&c| c > 50), "uniform draws {seen:?}");
        let far = TargetPolicy {
            own_group: Some(0.25),
            min_distance: 2,
            synthetic_from: None,
            own_group_below: None,
        };
        let (mut own, mut n) = (0, 2000);
        for i in 0..n {
            let s = AgeGroup(i % 6);
            let t = far.draw(s, 6, &mut rng);
            if t == s {
                own += 1;
            } else {
                assert!(t.0.abs_diff(s.0) >= 2, "{s:?} -> {t:?}");
            }
        }
        let share = own as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.04, "own-group share {share}");
        // No group is 7 away among 6: the other groups are used.
        let none_far = TargetPolicy {
            own_group: Some(0.0),
            min_distance: 7,
            synthetic_from: None,
            own_group_below: None,
        };
        n = 200;
        for _ in 0..n {
            assert_ne!(none_far.draw(AgeGroup(0), 6, &mut rng), AgeGroup(0));
        }
        // One group: the source is the only target.
        assert_eq!(none_far.draw(AgeGroup(0), 1, &mut rng), AgeGroup(0));
    }

    #[test]
    fn rows_by_target_split_the_groups_between_real_and_synthetic_rows() {
        let mut rng = step_rng(6, "test", 1);
        let split = TargetPolicy {
            own_group: Some(0.25),
            min_distance: 2,
            synthetic_from: Some(4),
            own_group_below: None,
        };
        assert_eq!(split.real_targets(6), 0..4);
        assert_eq!(split.synthetic_targets(6), 4..6);
        let (mut own, n) = (0, 3000);
        let mut seen = [0usize; 6];
        for i in 0..n {
            let s = AgeGroup(i % 6);
            let t = split.draw(s, 6, &mut rng);
            seen[t.0] += 1;
            if t == s {
                own += 1;
            } else {
                assert!(t.0 < 4, "a real row of {s:?} was sent to {t:?}");
                assert!(t.0.abs_diff(s.0) >= 2, "{s:?} -> {t:?}");
            }
        }
        // Groups 4 and 5 are reached only as their own group.
        assert!(seen[..4].iter().all(|&c| c > 100), "{seen:?}");
        let share = own as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.04, "own-group share {share}");
        // With own_group_below, old real faces always go below k.
        let no_copy = TargetPolicy {
            own_group_below: Some(4),
            ..split.clone()
        };
        let (mut young_own, mut young) = (0, 0);
        for i in 0..n {
            let s = AgeGroup(i % 6);
            let t = no_copy.draw(s, 6, &mut rng);
            assert!(t.0 < 4, "a real row of {s:?} was sent to {t:?}");
            if s.0 < 4 {
                young += 1;
                young_own += usize::from(t == s);
            }
        }
        let share = young_own as f64 / young as f64;
        assert!((share - 0.25).abs() < 0.05, "young own-group share {share}");
        // Without the own-group policy the real targets are uniform below k.
        let uniform = TargetPolicy {
            synthetic_from: Some(2),
            ..TargetPolicy::default()
        };
        for _ in 0..200 {
            assert!(uniform.draw(AgeGroup(5), 6, &mut rng).0 < 2);
        }
        // Unset: every row draws from every group.
        let all = TargetPolicy::default();
        assert_eq!(all.real_targets(6), 0..6);
        assert_eq!(all.synthetic_targets(6), 0..6);
    }

    #[test]
    fn configs_written_before_the_new_terms_read_as_before() {
        let mut v =
            serde_json::to_value(FaceGanTrainConfig::new(FaceGanConfig::tiny(), 4, 0)).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in [
            "targets",
            "cycle_rows",
            "identity_rows",
            "d_wrong_age",
            "sources",
            "age_critic_blur",
            "identity_blur",
        ] {
            o.remove(k);
        }
        o["weights"].as_object_mut().unwrap().remove("age_critic");
        let c: FaceGanTrainConfig = serde_json::from_value(v).unwrap();
        let mut want = FaceGanTrainConfig::new(FaceGanConfig::tiny(), 4, 0);
        want.age_critic_blur = 0.0;
        assert_eq!(c, want);
        let mut bad = c.clone();
        bad.cycle_rows = Rows::All;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.targets.own_group = Some(1.5);
        assert!(bad.validate().is_err());
        // Rows by target must leave groups to both kinds of rows.
        let groups = c.model.num_groups();
        for (k, ok) in [(0, false), (1, true), (groups - 1, true), (groups, false)] {
            let mut split = c.clone();
            split.targets.synthetic_from = Some(k);
            assert_eq!(split.validate().is_ok(), ok, "synthetic_from {k}");
            let mut stay = c.clone();
            stay.targets.own_group_below = Some(k);
            assert_eq!(stay.validate().is_ok(), ok, "own_group_below {k}");
        }
    }

    #[test]
    fn sample_rows_cycle_through_the_age_groups() {
        let g = |v: &[usize]| v.iter().map(|&i| AgeGroup(i)).collect::<Vec<_>>();
        // Faces' groups: 2 2 0 1 0 3; four groups, six rows.
        let faces = g(&[2, 2, 0, 1, 0, 3]);
        // Rows want groups 0 1 2 3 0 1: faces 2, 3, 0, 5, 4, then group 1
        // has no face left, group 2 gives face 1.
        assert_eq!(age_spread_rows(&faces, 6, 4), vec![2, 3, 0, 5, 4, 1]);
        // Fewer faces than rows: every face once.
        assert_eq!(age_spread_rows(&faces[..2], 6, 4), vec![0, 1]);
        // A group list with no face of any wanted group still fills up.
        assert_eq!(age_spread_rows(&g(&[7, 7]), 2, 4), vec![0, 1]);
    }
}
