//! The cStyleGAN training task: non-saturating logistic GAN with lazy R1,
//! style mixing and an EMA generator, on real faces at the preset's
//! resolution, driven by the generic [`Trainer`](crate::Trainer).
//!
//! Each step:
//! 1. **D step**: a real batch (seeded order, x-flips), fakes from fresh
//!    latents at age groups drawn from the real data's label distribution;
//!    `softplus(−D(x)) + softplus(D(G(z)))`; every `r1_every` steps the R1
//!    penalty on the real batch (`agesynth_losses::r1_penalty`, whose
//!    parameter gradient comes from the discriminator's forward-mode JVP),
//!    weighted `γ/2 · r1_every` (lazy regularisation; Adam's lr and betas of D
//!    are adjusted by `r1_every/(r1_every+1)` as in StyleGAN2).
//! 2. **G step**: `softplus(−D(G(z)))` with style mixing at probability
//!    `style_mixing`; the running mean of `w` per group is updated.
//! 3. **EMA** of the generator's weights.
//!
//! A gender-conditioned model (`CStyleGanConfig::gender_conditioned`) shows
//! D each real face with its labelled gender and each fake with its latent's
//! gender, so G learns to keep the latent's gender at every age. With
//! `cross_age_identity` above 0 and an identity critic
//! ([`CStyleGanTask::with_identity_critic`]), the G step also renders its
//! latents at a second age group and pays the mean squared distance between
//! the critic's descriptors of the two renders: one person at every age. With
//! `d_warmup_steps` the first steps train D alone (a fresh D beside a
//! warm-started G: [`CStyleGanTask::init_generator_from`]).
//! With `age_critic` above 0 and an age critic
//! ([`CStyleGanTask::with_age_critic`], trained on real faces' labels) the G
//! step also pays the critic's cross-entropy of each render's condition
//! (its gender and age group together, for an age-given-gender critic and a
//! gender-conditioned model): a cheap, direct push towards the asked age that
//! the projection discriminator gives only slowly after a warm start.
//!
//! All randomness (latents, noise, groups, mixing, flips, data order) comes
//! from the seed and the step, so a resumed run repeats the straight one.

use crate::gan::GanState;
use std::{collections::HashMap, path::Path, sync::Arc};

use agesynth_core::{filters::gaussian_blur, AgeGroup, FaceImage, Gender};
use agesynth_critic::AgeCritic;
use agesynth_cstylegan::{
    copy_vars, ema_decay, ema_update, seeded_var_builder, trainable_vars, CStyleGanConfig,
    Discriminator, GenerateOptions, Generator, Noise, StyleMix,
};
use agesynth_losses::AdversarialLoss;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{Checkpoint, CheckpointContents},
    data::{DataOrder, RealFaces},
    optim::{Adam, AdamConfig, ParamGroup},
    params,
    phase::LazyR1,
    rng::{randn, step_rng},
    trainer::{StepReport, TrainTask},
    Result, TrainError,
};

/// Everything a cStyleGAN run is started with (saved as the run's
/// `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CStyleGanTrainConfig {
    /// The model.
    pub model: CStyleGanConfig,
    /// Real images per step (and fakes per D and G pass).
    pub batch: usize,
    /// Generator learning rate.
    pub g_lr: f64,
    /// Discriminator learning rate.
    pub d_lr: f64,
    /// Adam betas (StyleGAN2: 0, 0.99).
    pub betas: (f64, f64),
    /// R1 weight γ (StyleGAN2 uses about 0.0002·res²/batch·...; 1 at 64 px).
    pub r1_gamma: f64,
    /// Apply R1 every this many steps (lazy regularisation; 0 disables R1).
    pub r1_every: u64,
    /// Probability of style mixing in the G step.
    pub style_mixing: f64,
    /// EMA half-life of the generator weights, in images.
    pub ema_half_life_images: f64,
    /// Mirror real images left–right at random.
    pub xflip: bool,
    /// The run's seed: weights init, data order, latents, noise.
    pub seed: u64,
    /// Rows (fixed latents) of the sample grids.
    pub sample_rows: usize,
    /// Truncation ψ of the sample grids.
    pub sample_truncation: f64,
    /// Train D alone (no G update, no EMA) up to this step: a fresh D beside
    /// a warm-started G learns what real faces look like before G follows
    /// its gradient (configs written before it read as 0).
    #[serde(default)]
    pub d_warmup_steps: u64,
    /// Weight of the cross-age identity term: the mean squared distance
    /// between an identity critic's descriptors of each G-step latent at its
    /// group and at a second group (0: off; configs written before it read
    /// as 0).
    #[serde(default)]
    pub cross_age_identity: f64,
    /// The cross-age term's second group: `None` draws any other group;
    /// `Some(k)` pairs every render with the same latent at group `k` (a
    /// render of group `k` with any other group), so that each age is held
    /// to one anchor age's face, the 20–29 one for `k = 2` (configs written
    /// before it read as `None`).
    #[serde(default)]
    pub cross_age_anchor: Option<usize>,
    /// The cross-age term's form: 0 is the mean squared distance between
    /// the two renders' descriptors; above 0 it is a contrastive loss
    /// ([`agesynth_losses::identity::contrastive_identity`]) at this
    /// temperature, asking that each render be closer to its own second
    /// render than to the batch's other latents' (identification rather
    /// than closeness; configs written before it read as 0).
    #[serde(default)]
    pub cross_age_temperature: f64,
    /// The contrastive cross-age term's queue: the second renders'
    /// descriptors of up to this many earlier latents are kept (newest
    /// first, no gradient) as further identities each render must not be
    /// mistaken for, so that it is told apart from many more than the
    /// batch's ([`agesynth_losses::identity::contrastive_identity_with_negatives`];
    /// the queue is saved in checkpoints; 0: the batch only, as configs
    /// written before it read).
    #[serde(default)]
    pub cross_age_queue: usize,
    /// Centre the contrastive cross-age term's descriptors by age group:
    /// each is taken less a running mean of the descriptors of its group
    /// (an exponential average with this decay per step, saved in
    /// checkpoints), so that what every face of a group shares (what the
    /// identity critic reads of age) neither helps nor hurts telling the
    /// latents apart, and the generator gains nothing by ageing its renders
    /// less (0: no centring, as configs written before it read).
    #[serde(default)]
    pub cross_age_centre: f64,
    /// The identity critic of the cross-age term (provenance).
    #[serde(default)]
    pub identity_critic: Option<std::path::PathBuf>,
    /// The generator the run's G started from, if warm-started (provenance).
    #[serde(default)]
    pub init_generator: Option<std::path::PathBuf>,
    /// The discriminator the run's D started from, if warm-started
    /// (provenance; [`CStyleGanTask::init_discriminator_from`]).
    #[serde(default)]
    pub init_discriminator: Option<std::path::PathBuf>,
    /// Weight of the age-critic term: the cross-entropy of each G-step
    /// render's condition under a frozen age critic trained on real faces
    /// (joint gender and age for an age-given-gender critic and a
    /// gender-conditioned model; 0: off; configs written before it read as
    /// 0).
    #[serde(default)]
    pub age_critic: f64,
    /// Standard deviation, in pixels, of the blur through which the age
    /// critic sees the renders, so that its gradient asks for shapes rather
    /// than pixel patterns (configs written before it read as 1).
    #[serde(default = "default_age_critic_blur")]
    pub age_critic_blur: f64,
    /// The age critic of that term (provenance).
    #[serde(default)]
    pub age_critic_file: Option<std::path::PathBuf>,
    /// The age-critic term asks renders of groups from this index up for
    /// their gender too (the joint reading); younger ones for their age
    /// only. At 0–9 a face shows little of its sex, and asking the critic
    /// for a boy draws adult male cues such as moustaches on children
    /// (configs written before it read as 0: every group).
    #[serde(default)]
    pub age_critic_gender_from_group: usize,
}

fn default_age_critic_blur() -> f64 {
    1.0
}

/// The cross-age identity term's second group for each row of `groups` (of
/// `g_count` groups): another group than the row's own, drawn uniformly, or
/// the `anchor` group where one is given (a row already at the anchor draws
/// any other group).
/// Running means of identity descriptors per age group (see
/// [`CStyleGanTrainConfig::cross_age_centre`]), kept on the host: a
/// group's mean starts at the first batch's mean of it and then decays by
/// `beta` per update.
#[derive(Clone, Debug)]
struct GroupMeans {
    beta: f64,
    means: Vec<Option<Vec<f32>>>,
}

impl GroupMeans {
    fn new(groups: usize, beta: f64) -> Self {
        GroupMeans {
            beta,
            means: vec![None; groups],
        }
    }

    /// The mean of the rows of `x` `(N, D)` per group of `groups` (`None`
    /// for a group with no row).
    fn batch_means(&self, x: &Tensor, groups: &[AgeGroup]) -> Result<Vec<Option<Vec<f32>>>> {
        let rows = x.detach().to_dtype(DType::F32)?.to_vec2::<f32>()?;
        if rows.len() != groups.len() {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "{} descriptors for {} groups",
                rows.len(),
                groups.len()
            ))
            .into());
        }
        let mut sums: Vec<Option<(Vec<f32>, usize)>> = vec![None; self.means.len()];
        for (r, g) in rows.iter().zip(groups) {
            let slot = sums.get_mut(g.0).ok_or_else(|| {
                agesynth_core::Error::InvalidInput(format!(
                    "group {} of {} groups",
                    g.0,
                    self.means.len()
                ))
            })?;
            let (sum, n) = slot.get_or_insert_with(|| (vec![0.0; r.len()], 0));
            for (s, v) in sum.iter_mut().zip(r) {
                *s += v;
            }
            *n += 1;
        }
        Ok(sums
            .into_iter()
            .map(|s| s.map(|(sum, n)| sum.into_iter().map(|v| v / n as f32).collect()))
            .collect())
    }

    /// `x` less each row's group mean: the running one, or the batch's own
    /// (without gradient) for a group not seen before.
    fn centre(&self, x: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        let batch = self.batch_means(x, groups)?;
        let d = x.dim(1)?;
        let mut flat = Vec::with_capacity(groups.len() * d);
        for g in groups {
            let m = self.means[g.0]
                .as_ref()
                .filter(|m| m.len() == d)
                .or(batch[g.0].as_ref())
                .expect("every group of a row has a batch mean");
            flat.extend_from_slice(m);
        }
        let m = Tensor::from_vec(flat, (groups.len(), d), x.device())?.to_dtype(x.dtype())?;
        Ok((x - m)?)
    }

    /// Moves the means of the groups in `groups` towards `x`'s batch means.
    fn update(&mut self, x: &Tensor, groups: &[AgeGroup]) -> Result<()> {
        let beta = self.beta as f32;
        let batch = self.batch_means(x, groups)?;
        for (slot, b) in self.means.iter_mut().zip(batch) {
            let Some(b) = b else { continue };
            *slot = Some(match slot.take().filter(|m| m.len() == b.len()) {
                Some(m) => m
                    .iter()
                    .zip(&b)
                    .map(|(m, v)| beta * m + (1.0 - beta) * v)
                    .collect(),
                None => b,
            });
        }
        Ok(())
    }

    /// The means as checkpoint tensors (`means (G, D)`, `seen (G)`), `None`
    /// before any group was seen.
    fn to_tensors(&self, device: &Device) -> Result<Option<HashMap<String, Tensor>>> {
        let Some(d) = self.means.iter().flatten().map(Vec::len).next() else {
            return Ok(None);
        };
        let g = self.means.len();
        let mut flat = Vec::with_capacity(g * d);
        let mut seen = Vec::with_capacity(g);
        for m in &self.means {
            match m {
                Some(m) => {
                    flat.extend_from_slice(m);
                    seen.push(1f32);
                }
                None => {
                    flat.extend(std::iter::repeat_n(0f32, d));
                    seen.push(0f32);
                }
            }
        }
        Ok(Some(HashMap::from([
            ("means".to_string(), Tensor::from_vec(flat, (g, d), device)?),
            ("seen".to_string(), Tensor::from_vec(seen, g, device)?),
        ])))
    }

    /// Takes the means back from [`GroupMeans::to_tensors`]' tensors;
    /// leaves them empty where they hold another number of groups or
    /// another width than `width` (another critic's).
    fn restore(
        &mut self,
        t: &HashMap<String, Tensor>,
        width: Option<usize>,
    ) -> std::result::Result<(), String> {
        let (Some(means), Some(seen)) = (t.get("means"), t.get("seen")) else {
            return Err("holds no `means` and `seen` tensors".into());
        };
        let read = || -> candle_core::Result<(Vec<Vec<f32>>, Vec<f32>)> {
            Ok((
                means.to_dtype(DType::F32)?.to_vec2::<f32>()?,
                seen.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            ))
        };
        let (rows, seen) = read().map_err(|e| format!("unreadable means: {e}"))?;
        if rows.len() != self.means.len()
            || seen.len() != rows.len()
            || rows.first().map(Vec::len) != width
        {
            return Ok(());
        }
        self.means = rows
            .into_iter()
            .zip(seen)
            .map(|(r, s)| (s > 0.5).then_some(r))
            .collect();
        Ok(())
    }
}

fn second_groups(
    groups: &[AgeGroup],
    g_count: usize,
    anchor: Option<usize>,
    rng: &mut impl Rng,
) -> Vec<AgeGroup> {
    groups
        .iter()
        .map(|a| match anchor {
            Some(k) if a.0 != k => AgeGroup(k),
            _ => AgeGroup((a.0 + rng.random_range(1..g_count.max(2))) % g_count),
        })
        .collect()
}

impl CStyleGanTrainConfig {
    /// Defaults for `model` at batch `batch`: StyleGAN2's optimiser and
    /// regularisation settings (lr 0.0025, β = (0, 0.99), R1 every 16 steps,
    /// mixing 0.9, EMA half-life 10k images), γ scaled with resolution.
    pub fn new(model: CStyleGanConfig, batch: usize, seed: u64) -> Self {
        // StyleGAN2-ADA's heuristic γ = 0.0002 · res² / batch, at least 0.1.
        let res = model.image_size as f64;
        let gamma = (0.0002 * res * res / batch.max(1) as f64).max(0.1);
        CStyleGanTrainConfig {
            model,
            batch,
            g_lr: 0.0025,
            d_lr: 0.0025,
            betas: (0.0, 0.99),
            r1_gamma: gamma,
            r1_every: 16,
            style_mixing: 0.9,
            ema_half_life_images: 10_000.0,
            xflip: true,
            seed,
            sample_rows: 6,
            sample_truncation: 0.7,
            d_warmup_steps: 0,
            cross_age_identity: 0.0,
            cross_age_anchor: None,
            cross_age_temperature: 0.0,
            cross_age_queue: 0,
            cross_age_centre: 0.0,
            identity_critic: None,
            init_generator: None,
            init_discriminator: None,
            age_critic: 0.0,
            age_critic_blur: default_age_critic_blur(),
            age_critic_file: None,
            age_critic_gender_from_group: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let bad = |m: String| Err(agesynth_core::Error::Config(m).into());
        if self.batch == 0 {
            return bad("batch must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.style_mixing) {
            return bad(format!(
                "style_mixing {} is not a probability",
                self.style_mixing
            ));
        }
        if !(self.r1_gamma >= 0.0 && self.r1_gamma.is_finite()) {
            return bad(format!("r1_gamma {} must be ≥ 0", self.r1_gamma));
        }
        for (name, v) in [
            ("cross_age_identity", self.cross_age_identity),
            ("cross_age_temperature", self.cross_age_temperature),
            ("age_critic", self.age_critic),
            ("age_critic_blur", self.age_critic_blur),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v} must be a finite number ≥ 0"));
            }
        }
        if !(0.0..1.0).contains(&self.cross_age_centre) {
            return bad(format!(
                "cross_age_centre {} must be a decay in [0, 1)",
                self.cross_age_centre
            ));
        }
        if self.cross_age_centre > 0.0 && self.cross_age_temperature == 0.0 {
            return bad(format!(
                "cross_age_centre {} needs the contrastive form (cross_age_temperature > 0)",
                self.cross_age_centre
            ));
        }
        if self.cross_age_queue > 0 && self.cross_age_temperature == 0.0 {
            return bad(format!(
                "cross_age_queue {} needs the contrastive form (cross_age_temperature > 0)",
                self.cross_age_queue
            ));
        }
        let groups = self.model.num_groups();
        if let Some(k) = self.cross_age_anchor.filter(|&k| k >= groups) {
            return bad(format!(
                "cross_age_anchor {k} must name a group below {groups}"
            ));
        }
        Ok(())
    }
}

/// The cStyleGAN task: G, D, the EMA generator, their optimisers and the data.
pub struct CStyleGanTask {
    cfg: CStyleGanTrainConfig,
    device: Device,
    state: GanState,
    g: Generator,
    d: Discriminator,
    g_ema: Generator,
    data: Arc<RealFaces>,
    order: DataOrder,
    loss: AdversarialLoss,
    identity: Option<Arc<dyn agesynth_core::FaceEmbedder>>,
    age_critic: Option<Arc<AgeCritic>>,
    /// The contrastive cross-age term's queue of earlier second renders'
    /// descriptors `(M, D)`, newest first (`None`: empty).
    cross_age_queue: Option<Tensor>,
    /// The running per-group means the cross-age term's descriptors are
    /// centred by (with `cross_age_centre` above 0).
    cross_age_means: GroupMeans,
}

impl CStyleGanTask {
    /// A new task: models initialised from the seed (the EMA generator a copy
    /// of G), on `device`, training on `data` (at the model's image size).
    pub fn new(cfg: CStyleGanTrainConfig, data: Arc<RealFaces>, device: &Device) -> Result<Self> {
        cfg.validate()?;
        if data.size() != cfg.model.image_size {
            return Err(agesynth_core::Error::Config(format!(
                "the faces are {0}x{0} but the model makes {1}x{1}",
                data.size(),
                cfg.model.image_size
            ))
            .into());
        }
        if cfg.model.gender_conditioned {
            let unlabelled = data.genders().iter().filter(|g| g.is_none()).count();
            if unlabelled > 0 || data.genders().len() != data.len() {
                return Err(agesynth_core::Error::Config(format!(
                    "a gender-conditioned model learns from faces labelled with their gender; \
                     {unlabelled} of {} are not",
                    data.len()
                ))
                .into());
            }
        }
        let (g_vars, d_vars, ema_vars) = (VarMap::new(), VarMap::new(), VarMap::new());
        let g = Generator::new(
            &cfg.model,
            seeded_var_builder(&g_vars, cfg.seed, DType::F32, device),
        )?;
        let d = Discriminator::new(
            &cfg.model,
            seeded_var_builder(&d_vars, cfg.seed.wrapping_add(1), DType::F32, device),
        )?;
        let g_ema = Generator::new(
            &cfg.model,
            seeded_var_builder(&ema_vars, cfg.seed, DType::F32, device),
        )?;
        copy_vars(&ema_vars, &g_vars)?;

        let (b1, b2) = cfg.betas;
        let opt_g = Adam::new(
            vec![ParamGroup {
                name: "generator".into(),
                lr_scale: 1.0,
                params: trainable_vars(&g_vars)?,
            }],
            AdamConfig {
                lr: cfg.g_lr,
                beta1: b1,
                beta2: b2,
                ..AdamConfig::stylegan2(cfg.g_lr)
            },
        )?;
        // Lazy regularisation (StyleGAN2): with R1 every k steps, D's
        // updates are scaled by c = k/(k+1) in lr and as an exponent of β.
        let c = LazyR1 {
            gamma: cfg.r1_gamma,
            every: cfg.r1_every,
        }
        .adam_ratio();
        let opt_d = Adam::new(
            vec![ParamGroup {
                name: "discriminator".into(),
                lr_scale: 1.0,
                params: trainable_vars(&d_vars)?,
            }],
            AdamConfig {
                lr: cfg.d_lr * c,
                beta1: b1.powf(c),
                beta2: b2.powf(c),
                ..AdamConfig::stylegan2(cfg.d_lr)
            },
        )?;
        let order = DataOrder::new(data.len(), cfg.seed);
        let cross_age_means = GroupMeans::new(cfg.model.num_groups(), cfg.cross_age_centre);
        Ok(CStyleGanTask {
            cfg,
            device: device.clone(),
            state: GanState {
                g_vars,
                ema_vars,
                d_vars,
                opt_g,
                opt_d,
            },
            g,
            d,
            g_ema,
            data,
            order,
            loss: AdversarialLoss::Logistic,
            identity: None,
            age_critic: None,
            cross_age_queue: None,
            cross_age_means,
        })
    }

    /// Gives the task the frozen identity critic of the cross-age identity
    /// term (a network trained apart, never an evaluation network).
    pub fn with_identity_critic(mut self, critic: Arc<dyn agesynth_core::FaceEmbedder>) -> Self {
        self.identity = Some(critic);
        self
    }

    /// Gives the task the frozen age critic of the age-critic term (trained
    /// on real faces' labels apart, never an evaluation network). Its groups
    /// must be the model's.
    pub fn with_age_critic(mut self, critic: Arc<AgeCritic>) -> Result<Self> {
        let ours = self.cfg.model.bins()?;
        if critic.bins() != &ours {
            return Err(agesynth_core::Error::Config(format!(
                "the age critic classifies {:?} but the model's groups are {:?}",
                critic.bins(),
                ours
            ))
            .into());
        }
        self.age_critic = Some(critic);
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &CStyleGanTrainConfig {
        &self.cfg
    }

    /// The EMA generator (what is shipped and sampled).
    pub fn generator_ema(&self) -> &Generator {
        &self.g_ema
    }

    /// The trained generator.
    pub fn generator(&self) -> &Generator {
        &self.g
    }

    /// The discriminator.
    pub fn discriminator(&self) -> &Discriminator {
        &self.d
    }

    /// Warm start: copies a trained generator's weights (`vars`, e.g. a
    /// shipped file) into G and its EMA. Weights a new config adds stay as
    /// initialised: a gender-conditioned model's `mapping.gender_offset`,
    /// zero, so that the warm-started mapping first computes what the source
    /// did; a source's running means `w_avg (groups, w_dim)` fill every
    /// gender's rows. Any other difference in names or shapes is an error.
    pub fn init_generator_from(&mut self, vars: &VarMap) -> Result<()> {
        for target in [&self.state.g_vars, &self.state.ema_vars] {
            adapt_copy(target, vars)?;
        }
        Ok(())
    }

    /// Warm start of D: loads a trained discriminator's weights (a weights
    /// file such as the shipped `cstylegan-cpu64-discriminator.safetensors`
    /// or a checkpoint's `discriminator.safetensors`, any float precision)
    /// into D, so that a warm-started G meets the critic it was trained
    /// against instead of a fresh one. Every tensor must match D's names
    /// and shapes; a mismatch is an error naming the file, and D is left as
    /// it was.
    pub fn init_discriminator_from(&mut self, path: &Path) -> Result<()> {
        let tensors = agesynth_core::io::load_tensors(path, &self.device)?;
        crate::params::restore(&self.state.d_vars, tensors, path)
    }

    /// The data order (where the run is in its data).
    pub fn data_order(&self) -> &DataOrder {
        &self.order
    }

    /// Saves the EMA generator at `path` with its config as the sidecar
    /// (`PATH.json`), atomically: the file `synth-pairs` and `sample` read.
    pub fn export_ema(&self, path: &Path) -> Result<()> {
        agesynth_core::io::save_varmap(&self.state.ema_vars, path, &self.cfg.model)?;
        Ok(())
    }

    /// Age groups for `n` fakes, drawn from the real faces' labels.
    fn sample_groups(&self, rng: &mut impl Rng, n: usize) -> Vec<AgeGroup> {
        let all = self.data.groups();
        (0..n)
            .map(|_| all[rng.random_range(0..all.len())])
            .collect()
    }

    fn latents(&self, rng: &mut impl Rng, n: usize) -> Result<Tensor> {
        randn(rng, (n, self.cfg.model.z_dim), &self.device)
    }

    fn noise_seed(&self, stream: &str, step: u64) -> u64 {
        step_rng(self.cfg.seed, stream, step).random()
    }
}

impl TrainTask for CStyleGanTask {
    fn step(&mut self, step: u64) -> Result<StepReport> {
        let b = self.cfg.batch;
        let seed = self.cfg.seed;
        // D step.
        let (real_idx, real) =
            self.data
                .next_batch_indexed(&mut self.order, b, self.cfg.xflip, step, &self.device)?;
        let real_genders: Option<Vec<Gender>> = if self.cfg.model.gender_conditioned {
            Some(
                real_idx
                    .iter()
                    .map(|&i| {
                        self.data
                            .genders()
                            .get(i)
                            .copied()
                            .flatten()
                            .ok_or_else(|| {
                                TrainError::from(agesynth_core::Error::InvalidInput(format!(
                                    "face {i} has no gender label"
                                )))
                            })
                    })
                    .collect::<Result<_>>()?,
            )
        } else {
            None
        };
        let mut rng = step_rng(seed, "d-step", step);
        let groups = self.sample_groups(&mut rng, b);
        let z = self.latents(&mut rng, b)?;
        let opts = GenerateOptions {
            truncation: 1.0,
            mixing: None,
            noise: Noise::Seeded(self.noise_seed("d-noise", step)),
            age_free_layers: 0,
        };
        let fake = self.g.forward(&z, &groups, &opts)?.detach();
        let fake_genders = self.g.latent_genders(&z)?;
        let real_logits =
            self.d
                .forward_given(&real.images, &real.groups, real_genders.as_deref())?;
        let fake_logits = self
            .d
            .forward_given(&fake, &groups, fake_genders.as_deref())?;
        let d_loss = self.loss.d_loss(&real_logits, &fake_logits)?;
        let mut losses = vec![("d".to_string(), d_loss.to_scalar::<f32>()?)];
        // Mean logits are metrics, not losses: the divergence guard skips them.
        let metrics = vec![
            (
                "d_real".to_string(),
                real_logits.mean_all()?.to_scalar::<f32>()?,
            ),
            (
                "d_fake".to_string(),
                fake_logits.mean_all()?.to_scalar::<f32>()?,
            ),
        ];
        let mut total = d_loss;
        let r1 = LazyR1 {
            gamma: self.cfg.r1_gamma,
            every: self.cfg.r1_every,
        };
        let r1_out = match &real_genders {
            None => r1.run(step, &self.d, &real.images, &real.groups)?,
            Some(s) => r1.run(step, &self.d.given_genders(s), &real.images, &real.groups)?,
        };
        if let Some((penalty, v)) = r1_out {
            losses.push(("r1".to_string(), v));
            total = (total + penalty)?;
        }
        self.state.opt_d.backward_step(&total)?;
        if step <= self.cfg.d_warmup_steps {
            return Ok(StepReport {
                images: b,
                losses,
                metrics,
            });
        }

        // G step.
        let mut rng = step_rng(seed, "g-step", step);
        let groups = self.sample_groups(&mut rng, b);
        let z = self.latents(&mut rng, b)?;
        let mix = if self.cfg.style_mixing > 0.0
            && self.g.num_ws() > 1
            && rng.random::<f64>() < self.cfg.style_mixing
        {
            Some(StyleMix {
                z: self.latents(&mut rng, b)?,
                crossover: rng.random_range(1..self.g.num_ws()),
            })
        } else {
            None
        };
        let opts = GenerateOptions {
            truncation: 1.0,
            mixing: mix,
            noise: Noise::Seeded(self.noise_seed("g-noise", step)),
            age_free_layers: 0,
        };
        let (fake, w) = self.g.forward_with_w(&z, &groups, &opts)?;
        let fake_genders = self.g.latent_genders(&z)?;
        let mut g_loss = self.loss.g_loss(&self.d.forward_given(
            &fake,
            &groups,
            fake_genders.as_deref(),
        )?)?;
        losses.push(("g".to_string(), g_loss.to_scalar::<f32>()?));
        if self.cfg.age_critic > 0.0 {
            let critic = self.age_critic.as_ref().ok_or_else(|| {
                TrainError::from(agesynth_core::Error::Config(
                    "the age-critic term needs an age critic".into(),
                ))
            })?;
            let seen = gaussian_blur(&fake, self.cfg.age_critic_blur)?;
            let asked: Vec<Option<Gender>> = match &fake_genders {
                Some(s) => s
                    .iter()
                    .zip(&groups)
                    .map(|(&x, a)| (a.0 >= self.cfg.age_critic_gender_from_group).then_some(x))
                    .collect(),
                None => vec![None; groups.len()],
            };
            let ce = critic.condition_cross_entropy(&seen, &groups, &asked)?;
            losses.push(("age_critic".to_string(), ce.to_scalar::<f32>()?));
            g_loss = (g_loss + (ce * self.cfg.age_critic)?)?;
        }
        if self.cfg.cross_age_identity > 0.0 {
            let critic = self.identity.as_ref().ok_or_else(|| {
                TrainError::from(agesynth_core::Error::Config(
                    "the cross-age identity term needs an identity critic".into(),
                ))
            })?;
            // The same latents, noise and mixing at another group each.
            let other = second_groups(
                &groups,
                self.cfg.model.num_groups(),
                self.cfg.cross_age_anchor,
                &mut rng,
            );
            let second = self.g.forward(&z, &other, &opts)?;
            let (mut ea, mut eb) = (critic.embed(&fake)?, critic.embed(&second)?);
            if self.cfg.cross_age_centre > 0.0 {
                // Centred by the means before this step; then the means
                // learn this step's descriptors.
                let (ca, cb) = (
                    self.cross_age_means.centre(&ea, &groups)?,
                    self.cross_age_means.centre(&eb, &other)?,
                );
                self.cross_age_means.update(&ea, &groups)?;
                self.cross_age_means.update(&eb, &other)?;
                (ea, eb) = (ca, cb);
            }
            let id = if self.cfg.cross_age_temperature > 0.0 {
                let nce = agesynth_losses::identity::contrastive_identity_with_negatives(
                    &ea,
                    &eb,
                    self.cross_age_queue.as_ref(),
                    self.cfg.cross_age_temperature,
                )?;
                if self.cfg.cross_age_queue > 0 {
                    let newest = eb.detach();
                    let all = match self.cross_age_queue.take() {
                        Some(q) => Tensor::cat(&[&newest, &q], 0)?,
                        None => newest,
                    };
                    let keep = all.dim(0)?.min(self.cfg.cross_age_queue);
                    self.cross_age_queue = Some(all.narrow(0, 0, keep)?.contiguous()?);
                }
                // The plain distance, for the log only.
                let d = (&ea - &eb)?.sqr()?.sum(1)?.mean_all()?;
                losses.push(("cross_age_id".to_string(), d.to_scalar::<f32>()?));
                losses.push(("cross_age_nce".to_string(), nce.to_scalar::<f32>()?));
                nce
            } else {
                let d = (ea - eb)?.sqr()?.sum(1)?.mean_all()?;
                losses.push(("cross_age_id".to_string(), d.to_scalar::<f32>()?));
                d
            };
            g_loss = (g_loss + (id * self.cfg.cross_age_identity)?)?;
        }
        self.state.opt_g.backward_step(&g_loss)?;
        self.g.update_w_avg(&w, &z, &groups)?;

        // EMA.
        let beta = ema_decay(b, self.cfg.ema_half_life_images);
        ema_update(&self.state.ema_vars, &self.state.g_vars, beta)?;
        Ok(StepReport {
            images: b,
            losses,
            metrics,
        })
    }

    fn checkpoint(&self) -> Result<CheckpointContents> {
        let mut contents = self.state.contents()?;
        if let Some(q) = &self.cross_age_queue {
            contents = contents.tensors(
                "cross_age_queue",
                HashMap::from([("descriptors".to_string(), q.clone())]),
                None,
            );
        }
        if let Some(t) = self.cross_age_means.to_tensors(&self.device)? {
            contents = contents.tensors("cross_age_means", t, None);
        }
        contents
            // The sidecar of generator_ema.safetensors: the checkpoint's EMA
            // weights load like a shipped weights file.
            .json("generator_ema", &self.cfg.model)?
            // And of discriminator.safetensors: a checkpoint's D loads as a
            // frozen realism critic (`load_discriminator`).
            .json("discriminator", &self.cfg.model)?
            .json("data", &self.order)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let model: CStyleGanConfig = ck.load_json("generator_ema")?;
        // Which groups read the age-free styles changes no weight: a run may
        // resume with another choice.
        let same_weights = CStyleGanConfig {
            age_free_from_group: self.cfg.model.age_free_from_group,
            ..model.clone()
        };
        if same_weights != self.cfg.model {
            return Err(TrainError::checkpoint(
                ck.dir(),
                format!(
                    "was made with another model config than this run's ({})",
                    crate::checkpoint::config_differences(&model, &self.cfg.model)
                ),
            ));
        }
        let order: DataOrder = ck.load_json("data")?;
        if order.len != self.data.len() {
            return Err(TrainError::checkpoint(
                ck.dir(),
                format!(
                    "was trained on {} faces, the data now holds {}: the data order cannot continue",
                    order.len,
                    self.data.len()
                ),
            ));
        }
        self.state.restore(ck)?;
        self.order = order;
        // The queue, where the run keeps one and the checkpoint holds one
        // of this critic's width (a run resumed with another critic or none
        // yet saved starts it empty; a shorter queue keeps the newest).
        self.cross_age_queue = None;
        let path = ck.tensors_path("cross_age_queue");
        if self.cfg.cross_age_queue > 0 && path.is_file() {
            let (mut t, _) = ck.load_tensors("cross_age_queue")?;
            let q = t.remove("descriptors").ok_or_else(|| {
                TrainError::checkpoint(path.clone(), "holds no `descriptors` tensor")
            })?;
            let width = self.identity.as_ref().map(|c| c.dim());
            if q.rank() == 2 && Some(q.dim(1)?) == width {
                let keep = q.dim(0)?.min(self.cfg.cross_age_queue);
                self.cross_age_queue = Some(q.narrow(0, 0, keep)?.to_device(&self.device)?);
            }
        }
        // The centring means likewise (a run that starts centring, or
        // resumes with another critic, learns them afresh).
        self.cross_age_means =
            GroupMeans::new(self.cfg.model.num_groups(), self.cfg.cross_age_centre);
        let path = ck.tensors_path("cross_age_means");
        if self.cfg.cross_age_centre > 0.0 && path.is_file() {
            let (t, _) = ck.load_tensors("cross_age_means")?;
            let width = self.identity.as_ref().map(|c| c.dim());
            self.cross_age_means
                .restore(&t, width)
                .map_err(|why| TrainError::checkpoint(path.clone(), why))?;
        }
        Ok(())
    }

    fn sample_grid(&mut self) -> Result<Option<FaceImage>> {
        sample_grid(
            &self.g_ema,
            self.cfg.sample_rows,
            self.cfg.sample_truncation,
            self.cfg.seed,
        )
        .map(Some)
    }
}

/// Copies every variable of `source` into `target` by name, adapting the
/// shapes a gender-conditioned config changes (see
/// [`CStyleGanTask::init_generator_from`]).
fn adapt_copy(target: &VarMap, source: &VarMap) -> Result<()> {
    let src = source.data().lock().map_err(|_| {
        TrainError::from(agesynth_core::Error::Config(
            "a poisoned variable map".into(),
        ))
    })?;
    let dst = target.data().lock().map_err(|_| {
        TrainError::from(agesynth_core::Error::Config(
            "a poisoned variable map".into(),
        ))
    })?;
    let bad = |m: String| -> TrainError { agesynth_core::Error::Config(m).into() };
    for name in src.keys() {
        if !dst.contains_key(name) {
            return Err(bad(format!(
                "the initial generator has `{name}`, which this model does not"
            )));
        }
    }
    // Every value is worked out before any is set: a mismatch leaves the
    // target as it was.
    let mut updates = Vec::with_capacity(dst.len());
    for (name, var) in dst.iter() {
        let Some(s) = src.get(name) else {
            if name.ends_with("gender_offset") {
                continue;
            }
            return Err(bad(format!("the initial generator lacks `{name}`")));
        };
        let s = s
            .as_tensor()
            .to_dtype(var.dtype())?
            .to_device(var.device())?;
        let (sd, dd) = (s.dims().to_vec(), var.dims().to_vec());
        let value = if sd == dd {
            s
        } else if name == "w_avg"
            && sd.len() == 2
            && sd[1] == dd[1]
            && sd[0] > 0
            && dd[0] % sd[0] == 0
        {
            let reps = vec![&s; dd[0] / sd[0]];
            Tensor::cat(&reps, 0)?
        } else {
            return Err(bad(format!(
                "`{name}` is {sd:?} in the initial generator but {dd:?} in this model"
            )));
        };
        updates.push((var, value));
    }
    for (var, value) in updates {
        var.set(&value)?;
    }
    Ok(())
}

/// A grid of `rows` fixed latents (drawn from `seed`) × every age group,
/// with the group labels on top, from `generator` with truncation `psi` and
/// seeded noise.
pub fn sample_grid(generator: &Generator, rows: usize, psi: f64, seed: u64) -> Result<FaceImage> {
    sample_grid_of(generator, rows, psi, seed, None)
}

/// [`sample_grid`] with every latent of one gender (a gender-conditioned
/// model only; `None`: as drawn).
pub fn sample_grid_of(
    generator: &Generator,
    rows: usize,
    psi: f64,
    seed: u64,
    gender: Option<Gender>,
) -> Result<FaceImage> {
    let cfg = generator.config();
    if gender.is_some() && !cfg.gender_conditioned {
        return Err(agesynth_core::Error::Config(
            "this cStyleGAN is not conditioned on gender: it cannot be asked for one".into(),
        )
        .into());
    }
    let bins = cfg.bins()?;
    check_render_budget(
        generator,
        rows.max(1) as u64 * bins.len() as u64,
        "lower --rows",
    )?;
    let dev = generator.w_avg().device().clone();
    let z = randn(
        &mut step_rng(seed, "sample-grid", 0),
        (rows.max(1), cfg.z_dim),
        &dev,
    )?;
    let z = match gender {
        Some(g) => agesynth_cstylegan::set_latent_gender(&z, g)?,
        None => z,
    };
    let images = render_all_groups(generator, &z, psi, seed)?; // (rows, G, 3, S, S)
    let (r, g, c, h, w) = images.dims5()?;
    let tiles = agesynth_core::batch::tensor_to_images(&images.reshape((r * g, c, h, w))?)?;
    let labels: Vec<String> = bins.groups().map(|g| bins.label(g)).collect();
    Ok(agesynth_data::draw::grid(&tiles, g, Some(&labels))?)
}

/// Checks that rendering `images` images in one pass fits the memory budget
/// ([`agesynth_core::budget::MemoryBudget::from_env`]); `hint` says how to
/// render fewer.
pub fn check_render_budget(generator: &Generator, images: u64, hint: &str) -> Result<()> {
    let cfg = generator.config();
    let bytes = crate::budget::render_bytes(&cfg.g_channels, cfg.image_size, images);
    agesynth_core::budget::MemoryBudget::from_env()?.check(
        format!("rendering {images} images of {0}x{0}", cfg.image_size),
        bytes,
        hint,
    )?;
    Ok(())
}

pub use agesynth_cstylegan::{load_generator, render_all_groups, render_all_groups_split};

/// Options of [`synth_pairs`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthPairsOptions {
    /// Synthetic identities to write.
    pub count: usize,
    /// Truncation ψ (1: none; 0.7 is a usual trade of variety for quality).
    pub truncation: f64,
    /// Seed of the latents and noise.
    pub seed: u64,
    /// Identities rendered per forward pass.
    pub batch: usize,
    /// Identities per shard file.
    pub shard_size: usize,
    /// Synthesis layers that read each latent's age-free `w` (0: none): the
    /// coarse styles stay the same at every age.
    pub age_free_layers: usize,
}

impl Default for SynthPairsOptions {
    fn default() -> Self {
        SynthPairsOptions {
            count: 1000,
            truncation: 0.7,
            seed: 0,
            batch: 16,
            shard_size: 512,
            age_free_layers: 0,
        }
    }
}

/// Writes `opts.count` synthetic identities × every age group of
/// `generator` to a synthetic-pairs folder `out` (see [`crate::pairs`]),
/// `opts.batch` identities at a time; latents and noise come from
/// `opts.seed`, and each identity keeps its noise at every age. `source`
/// goes into the index as provenance; `progress` is called with the number
/// of identities done.
pub fn synth_pairs(
    generator: &Generator,
    out: &Path,
    opts: &SynthPairsOptions,
    source: serde_json::Value,
    progress: impl FnMut(usize),
) -> Result<crate::pairs::PairsIndex> {
    Ok(synth_pairs_filtered(generator, out, opts, None, source, progress)?.0)
}

/// What [`synth_pairs_filtered`]'s filter did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterStats {
    /// Identities rendered.
    pub rendered: usize,
    /// Identities dropped as inconsistent.
    pub dropped: usize,
    /// Of those, identities the gender critic reads as changing gender.
    pub gender_changed: usize,
    /// The inconsistency of every rendered identity, in render order.
    pub inconsistency: Vec<f32>,
}

impl FilterStats {
    /// The `q`-quantile (0 to 1) of the rendered identities' inconsistency.
    pub fn quantile(&self, q: f64) -> Option<f32> {
        let mut v = self.inconsistency.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(v[i])
    }
}

/// [`synth_pairs`] keeping only the identities `filter` accepts (see
/// [`crate::pairs::PairFilter`]): it renders until `opts.count` identities
/// are kept, at most 20 × `opts.count`, and fails naming the filter's
/// threshold if fewer pass. Without a filter every identity is kept.
pub fn synth_pairs_filtered(
    generator: &Generator,
    out: &Path,
    opts: &SynthPairsOptions,
    filter: Option<&crate::pairs::PairFilter>,
    source: serde_json::Value,
    mut progress: impl FnMut(usize),
) -> Result<(crate::pairs::PairsIndex, FilterStats)> {
    let SynthPairsOptions {
        count,
        truncation: psi,
        seed,
        batch,
        shard_size,
        age_free_layers,
    } = opts.clone();
    let cfg = generator.config();
    let bins = cfg.bins()?;
    if count == 0 || batch == 0 || shard_size == 0 {
        return Err(agesynth_core::Error::InvalidInput(format!(
            "synthetic pairs need count, batch and shard size of at least 1 (got {count}, {batch}, {shard_size})"
        ))
        .into());
    }
    check_render_budget(
        generator,
        batch.min(count) as u64 * bins.len() as u64,
        "lower --batch",
    )?;
    let dev = generator.w_avg().device().clone();
    let mut w = crate::pairs::PairsWriter::create(
        out,
        cfg.image_size,
        &bins,
        cfg.z_dim,
        shard_size,
        source,
    )?;
    let batch = batch.max(1);
    let max_rendered = count.saturating_mul(20);
    let mut stats = FilterStats::default();
    let mut done = 0usize;
    let mut k = 0u64;
    while done < count {
        if stats.rendered >= max_rendered {
            let max = filter.map(|f| f.max_distance).unwrap_or(f32::INFINITY);
            return Err(agesynth_core::Error::InvalidInput(format!(
                "only {done} of {} rendered identities stay within the pair filter's distance \
                 {max}, short of the {count} asked for: raise the distance (median \
                 inconsistency {:.3})",
                stats.rendered,
                stats.quantile(0.5).unwrap_or(f32::NAN)
            ))
            .into());
        }
        let n = if filter.is_some() {
            batch
        } else {
            batch.min(count - done)
        };
        let z = randn(&mut step_rng(seed, "synth-pairs", k), (n, cfg.z_dim), &dev)?;
        let noise_seed = step_rng(seed, "synth-pairs-noise", k).random();
        let images = render_all_groups_split(generator, &z, psi, noise_seed, age_free_layers)?;
        k += 1;
        stats.rendered += n;
        let (images, z) = match filter {
            None => (images, z),
            Some(f) => {
                let verdicts = f.judge(&images)?;
                let mut keep: Vec<u32> = Vec::new();
                for (i, v) in verdicts.into_iter().enumerate() {
                    stats.inconsistency.push(v.inconsistency);
                    if !v.one_gender {
                        stats.gender_changed += 1;
                    }
                    if v.keep && done + keep.len() < count {
                        keep.push(i as u32);
                    } else if !v.keep {
                        stats.dropped += 1;
                    }
                }
                if keep.is_empty() {
                    continue;
                }
                let m = keep.len();
                let idx = Tensor::from_vec(keep, m, &dev)?;
                (images.index_select(&idx, 0)?, z.index_select(&idx, 0)?)
            }
        };
        done += images.dim(0)?;
        w.push(&images, &z)?;
        progress(done);
    }
    Ok((w.finish()?, stats))
}

/// Named tensors of a map (for tests and tools).
pub fn snapshot(vars: &VarMap) -> HashMap<String, Tensor> {
    params::snapshot(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Without an anchor the second group is any group but the row's own,
    /// each drawn; with one, every row away from the anchor is paired with
    /// it and a row at the anchor with another group.
    #[test]
    fn group_means_centre_by_group_learn_by_decay_and_round_trip() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0], [10.0, 0.0]], &dev).unwrap();
        let groups = [AgeGroup(0), AgeGroup(0), AgeGroup(2)];
        let mut m = GroupMeans::new(3, 0.5);
        assert!(m.to_tensors(&dev).unwrap().is_none());
        // Nothing seen: each row less its batch group's mean.
        let c = m.centre(&x, &groups).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(c, [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]);
        m.update(&x, &groups).unwrap();
        assert_eq!(m.means[0].as_deref(), Some(&[2.0f32, 3.0][..]));
        assert!(m.means[1].is_none());
        // A second batch moves group 0 half way (beta 0.5) and is centred
        // by the means from before it.
        let y = Tensor::new(&[[4f32, 5.0]], &dev).unwrap();
        let c = m
            .centre(&y, &[AgeGroup(0)])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(c, [[2.0, 2.0]]);
        m.update(&y, &[AgeGroup(0)]).unwrap();
        assert_eq!(m.means[0].as_deref(), Some(&[3.0f32, 4.0][..]));
        // Saved and restored; another width or group count is not taken.
        let t = m.to_tensors(&dev).unwrap().unwrap();
        assert_eq!(t["seen"].to_vec1::<f32>().unwrap(), [1.0, 0.0, 1.0]);
        let mut back = GroupMeans::new(3, 0.5);
        back.restore(&t, Some(2)).unwrap();
        assert_eq!(back.means, m.means);
        let mut other = GroupMeans::new(3, 0.5);
        other.restore(&t, Some(4)).unwrap();
        assert!(other.means.iter().all(Option::is_none));
        let mut fewer = GroupMeans::new(2, 0.5);
        fewer.restore(&t, Some(2)).unwrap();
        assert!(fewer.means.iter().all(Option::is_none));
        assert!(back.restore(&HashMap::new(), Some(2)).is_err());
        // A row of a group outside the means is an error, not a panic.
        assert!(m.centre(&y, &[AgeGroup(5)]).is_err());
    }

    #[test]
    fn the_cross_age_term_pairs_each_render_with_another_or_the_anchor_group() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let groups: Vec<AgeGroup> = (0..600).map(|i| AgeGroup(i % 6)).collect();
        let free = second_groups(&groups, 6, None, &mut rng);
        assert!(free.iter().zip(&groups).all(|(b, a)| b != a && b.0 < 6));
        let mut seen = [0usize; 6];
        for b in &free {
            seen[b.0] += 1;
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
        let anchored = second_groups(&groups, 6, Some(2), &mut rng);
        for (b, a) in anchored.iter().zip(&groups) {
            if a.0 == 2 {
                assert!(b.0 != 2 && b.0 < 6);
            } else {
                assert_eq!(b.0, 2);
            }
        }
    }

    /// An anchor must name one of the model's groups.
    #[test]
    fn a_cross_age_anchor_outside_the_groups_is_refused() {
        let mut cfg = CStyleGanTrainConfig::new(agesynth_cstylegan::CStyleGanConfig::tiny(), 4, 0);
        cfg.cross_age_anchor = Some(5);
        assert!(cfg.validate().is_ok());
        cfg.cross_age_anchor = Some(6);
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("cross_age_anchor"), "{err}");
    }
}
