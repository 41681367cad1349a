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

use agesynth_core::{AgeBins, AgeGroup, FaceEmbedder, FaceImage};
use agesynth_facegan::seeded_var_builder;
use agesynth_facegan::{Discriminator, FaceGanConfig, Generator};
use agesynth_losses::{
    age::cross_entropy, r1_penalty, AdversarialLoss, AgeLoss, EmbeddingDistance, IdentityLoss,
    Loss, LossInput, Reconstruction, ReconstructionLoss, TotalVariationLoss,
};
use agesynth_nn::vars::{copy_vars, ema_decay, ema_update};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{Checkpoint, CheckpointContents},
    data::{DataOrder, RealFaces},
    grid,
    optim::{Adam, AdamConfig, ParamGroup},
    pairs::SynthPairs,
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
        }
    }
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
}

fn default_r1_every() -> u64 {
    16
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
        ];
        if all.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return bad(format!("loss weights must be finite and ≥ 0: {w:?}"));
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
    g_vars: VarMap,
    d_vars: VarMap,
    ema_vars: VarMap,
    g: Generator,
    g_ema: Generator,
    d: Discriminator,
    opt_g: Adam,
    opt_d: Adam,
    real: Option<Arc<RealFaces>>,
    order: Option<DataOrder>,
    pairs: Option<Arc<SynthPairs>>,
    embedder: Option<Box<dyn FaceEmbedder>>,
}

/// One step's inputs: images, their own groups, the targets, and the
/// synthetic target images.
struct StepBatch {
    inputs: Tensor,
    sources: Vec<AgeGroup>,
    targets: Vec<AgeGroup>,
    n_real: usize,
    synthetic_targets: Option<Tensor>,
}

impl FaceGanTask {
    /// A new task on `device`: models initialised from the seed, real faces
    /// `real` (needed unless the batch is all synthetic), synthetic pairs
    /// `pairs` (needed unless it is all real), and the identity network
    /// `embedder` (without one the identity term is off).
    pub fn new(
        cfg: FaceGanTrainConfig,
        real: Option<Arc<RealFaces>>,
        pairs: Option<Arc<SynthPairs>>,
        embedder: Option<Box<dyn FaceEmbedder>>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let bins = cfg.model.bins()?;
        let s = cfg.model.image_size;
        let cfg_err = |m: String| -> TrainError { agesynth_core::Error::Config(m).into() };
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
        let (g_vars, d_vars, ema_vars) = (VarMap::new(), VarMap::new(), VarMap::new());
        let g = Generator::new(
            &cfg.model,
            seeded_var_builder(&g_vars, cfg.seed, DType::F32, device),
        )?;
        let g_ema = Generator::new(
            &cfg.model,
            seeded_var_builder(&ema_vars, cfg.seed, DType::F32, device),
        )?;
        copy_vars(&ema_vars, &g_vars)?;
        let d = Discriminator::new(
            &cfg.model,
            seeded_var_builder(&d_vars, cfg.seed.wrapping_add(1), DType::F32, device),
        )?;
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
        Ok(FaceGanTask {
            cfg,
            bins,
            device: device.clone(),
            g_vars,
            d_vars,
            ema_vars,
            g,
            g_ema,
            d,
            opt_g,
            opt_d,
            real,
            order,
            pairs,
            embedder,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FaceGanTrainConfig {
        &self.cfg
    }

    /// The generator (live weights).
    pub fn generator(&self) -> &Generator {
        &self.g
    }

    /// The exponential moving average of the generator: smoother than the
    /// live weights, and what [`export_ema`](Self::export_ema) ships.
    pub fn generator_ema(&self) -> &Generator {
        &self.g_ema
    }

    /// The discriminator.
    pub fn discriminator(&self) -> &Discriminator {
        &self.d
    }

    /// The generator's variables.
    pub fn generator_vars(&self) -> &VarMap {
        &self.g_vars
    }

    /// Saves the live generator at `path` with its config as the sidecar
    /// (`PATH.json`), atomically.
    pub fn export_generator(&self, path: &Path) -> Result<()> {
        agesynth_core::io::save_varmap(&self.g_vars, path, &self.cfg.model)?;
        Ok(())
    }

    /// Saves the generator's EMA at `path` with its config as the sidecar
    /// (`PATH.json`), atomically: the shipped weights file.
    pub fn export_ema(&self, path: &Path) -> Result<()> {
        agesynth_core::io::save_varmap(&self.ema_vars, path, &self.cfg.model)?;
        Ok(())
    }

    fn draw_batch(&mut self, step: u64) -> Result<StepBatch> {
        let g = self.bins.len();
        let (n_syn, n_real) = (self.cfg.synthetic_per_step(), self.cfg.real_per_step());
        let mut rng = step_rng(self.cfg.seed, "facegan-targets", step);
        let mut parts = Vec::new();
        let mut sources = Vec::with_capacity(self.cfg.batch);
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
            let b = real.next_batch(order, n_real, self.cfg.xflip, step, &self.device)?;
            parts.push(b.images);
            sources.extend(b.groups);
        }
        let mut synthetic_targets = None;
        let mut targets: Vec<AgeGroup> = (0..n_real)
            .map(|_| AgeGroup(rng.random_range(0..g)))
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
            let tgt: Vec<AgeGroup> = (0..n_syn)
                .map(|_| AgeGroup(srng.random_range(0..g)))
                .collect();
            let (a, b) = pairs.pair_batch(&ids, &src, &tgt, &self.device)?;
            parts.push(a.images);
            sources.extend(src);
            targets.extend(tgt);
            synthetic_targets = Some(b.images);
        }
        let inputs = Tensor::cat(&parts, 0)?;
        Ok(StepBatch {
            inputs,
            sources,
            targets,
            n_real,
            synthetic_targets,
        })
    }
}

fn value(t: &Tensor) -> Result<f32> {
    Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()?)
}

impl TrainTask for FaceGanTask {
    fn step(&mut self, step: u64) -> Result<StepReport> {
        let batch = self.draw_batch(step)?;
        let StepBatch {
            inputs,
            sources,
            targets,
            n_real,
            synthetic_targets,
        } = batch;
        let n = inputs.dim(0)?;
        let n_syn = n - n_real;
        let w = self.cfg.weights.clone();
        let adv = self.cfg.adversarial;
        let mut losses = Vec::new();

        // One generator pass serves both steps: D sees it detached, and G's
        // weights do not change before G's own update.
        let fake = self.g.forward(&inputs, &targets)?;

        // D step: real faces (and optionally the synthetic targets) as real.
        let mut reals = Vec::new();
        let mut real_groups = Vec::new();
        if n_real > 0 {
            reals.push(inputs.narrow(0, 0, n_real)?);
            real_groups.extend_from_slice(&sources[..n_real]);
        }
        if let Some(y) = &synthetic_targets {
            if self.cfg.d_on_synthetic || n_real == 0 {
                reals.push(y.clone());
                real_groups.extend_from_slice(&targets[n_real..]);
            }
        }
        let real_images = Tensor::cat(&reals, 0)?;
        let d_real = self.d.forward(&real_images, &real_groups)?;
        let d_fake = self.d.forward(&fake.detach(), &targets)?;
        let mut d_loss = adv.d_loss(&d_real.logits, &d_fake.logits)?;
        losses.push(("d_adv".to_string(), value(&d_loss)?));
        losses.push(("d_real".to_string(), value(&d_real.logits.mean_all()?)?));
        losses.push(("d_fake".to_string(), value(&d_fake.logits.mean_all()?)?));
        if let (Some(cl), true) = (&d_real.class_logits, w.age > 0.0) {
            let ce = cross_entropy(cl, &real_groups)?;
            losses.push(("d_age".to_string(), value(&ce)?));
            d_loss = (d_loss + (ce * w.age)?)?;
        }
        if self.cfg.r1_every > 0
            && self.cfg.r1_gamma > 0.0
            && step.is_multiple_of(self.cfg.r1_every)
        {
            let d = &self.d;
            let r1 = r1_penalty(
                &|x: &Tensor| Ok(d.forward(x, &real_groups)?.logits),
                &|x: &Tensor, t: &Tensor| Ok(d.forward_jvp(x, t, &real_groups)?.1),
                &real_images,
            )?;
            losses.push(("r1".to_string(), r1.value as f32));
            let weight = self.cfg.r1_gamma / 2.0 * self.cfg.r1_every as f64;
            d_loss = (d_loss + (r1.loss * weight)?)?;
        }
        self.opt_d.backward_step(&d_loss)?;

        // G step.
        let mut total = Tensor::zeros((), DType::F32, &self.device)?;
        let mut add = |name: &str, t: Tensor, losses: &mut Vec<(String, f32)>| -> Result<()> {
            losses.push((name.to_string(), value(&t)?));
            total = (&total + t.to_dtype(DType::F32)?)?;
            Ok(())
        };
        if w.adversarial > 0.0 || w.age > 0.0 {
            let out = self.d.forward(&fake, &targets)?;
            if w.adversarial > 0.0 {
                add(
                    "g_adv",
                    (adv.g_loss(&out.logits)? * w.adversarial)?,
                    &mut losses,
                )?;
            }
            if let (Some(cl), true) = (&out.class_logits, w.age > 0.0) {
                let l = AgeLoss { weight: w.age };
                let input = LossInput::new(&fake).groups(&targets).class_logits(cl);
                add("g_age", l.weighted(&input)?, &mut losses)?;
            }
        }
        if let (Some(y), true) = (&synthetic_targets, w.synthetic_reconstruction > 0.0) {
            let l = ReconstructionLoss::new(self.cfg.reconstruction, w.synthetic_reconstruction);
            let out = fake.narrow(0, n_real, n_syn)?;
            add(
                "syn_rec",
                l.weighted(&LossInput::new(&out).reference(y))?,
                &mut losses,
            )?;
        }
        if let (Some(e), true) = (&self.embedder, w.identity > 0.0) {
            let l = IdentityLoss {
                embedder: e.as_ref(),
                distance: self.cfg.identity_distance,
                weight: w.identity,
            };
            add(
                "identity",
                l.weighted(&LossInput::new(&fake).reference(&inputs))?,
                &mut losses,
            )?;
        }
        if n_real > 0 && w.cycle > 0.0 {
            let x = inputs.narrow(0, 0, n_real)?;
            let back = self
                .g
                .forward(&fake.narrow(0, 0, n_real)?, &sources[..n_real])?;
            let l = ReconstructionLoss::new(self.cfg.reconstruction, w.cycle);
            add(
                "cycle",
                l.weighted(&LossInput::new(&back).reference(&x))?,
                &mut losses,
            )?;
        }
        if n_real > 0 && w.self_reconstruction > 0.0 {
            let rows: Vec<u32> = (0..n_real)
                .filter(|&i| sources[i] == targets[i])
                .map(|i| i as u32)
                .collect();
            if !rows.is_empty() {
                let idx = Tensor::from_vec(rows.clone(), rows.len(), &self.device)?;
                let out = fake.index_select(&idx, 0)?;
                let x = inputs.index_select(&idx, 0)?;
                let l = ReconstructionLoss::new(self.cfg.reconstruction, w.self_reconstruction);
                add(
                    "self_rec",
                    l.weighted(&LossInput::new(&out).reference(&x))?,
                    &mut losses,
                )?;
            }
        }
        if w.total_variation > 0.0 {
            let l = TotalVariationLoss {
                weight: w.total_variation,
            };
            add("tv", l.weighted(&LossInput::new(&fake))?, &mut losses)?;
        }
        losses.push(("g".to_string(), value(&total)?));
        self.opt_g.backward_step(&total)?;
        let decay = ema_decay(n, self.cfg.ema_half_life_images);
        ema_update(&self.ema_vars, &self.g_vars, decay, |_| false)?;
        Ok(StepReport { images: n, losses })
    }

    fn checkpoint(&self) -> Result<CheckpointContents> {
        CheckpointContents::new()
            .vars("generator", &self.g_vars)
            .vars("generator_ema", &self.ema_vars)
            .vars("discriminator", &self.d_vars)
            .optimizer("optim_g", &self.opt_g)
            .optimizer("optim_d", &self.opt_d)
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
                    "was made with FaceGAN config `{}` ({} px), this run uses `{}` ({} px)",
                    model.preset,
                    model.image_size,
                    self.cfg.model.preset,
                    self.cfg.model.image_size
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
        ck.restore_vars("generator", &self.g_vars)?;
        ck.restore_vars("discriminator", &self.d_vars)?;
        // Checkpoints written before the EMA existed start it from G.
        if ck.tensors_path("generator_ema").is_file() {
            ck.restore_vars("generator_ema", &self.ema_vars)?;
        } else {
            copy_vars(&self.ema_vars, &self.g_vars)?;
        }
        ck.restore_optimizer("optim_g", &mut self.opt_g)?;
        ck.restore_optimizer("optim_d", &mut self.opt_d)?;
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
        sample_grid(&self.g_ema, &inputs).map(Some)
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
pub fn sample_grid(generator: &Generator, inputs: &Tensor) -> Result<FaceImage> {
    let bins = generator.config().bins()?;
    let all = generator.all_groups(inputs)?; // (n, G, 3, S, S)
    let (n, g, c, h, w) = all.dims5()?;
    let rows = Tensor::cat(&[&inputs.unsqueeze(1)?, &all], 1)?.clamp(-1f32, 1f32)?;
    let tiles = agesynth_core::batch::tensor_to_images(&rows.reshape((n * (g + 1), c, h, w))?)?;
    let mut labels = vec![String::new()];
    labels.extend(bins.groups().map(|g| bins.label(g)));
    Ok(grid::compose(&tiles, g + 1, Some(&labels))?)
}

/// Loads a FaceGAN generator: `path` is a weights file with its config
/// sidecar (`PATH.json`, as [`FaceGanTask::export_ema`] and the checkpoints
/// write), a checkpoint folder, or a run folder (its latest checkpoint). In
/// a folder the EMA generator is preferred to the live one.
pub fn load_generator(path: &Path, device: &Device) -> Result<(Generator, VarMap)> {
    crate::checkpoint::load_model(
        path,
        &["generator_ema", "generator"],
        "FaceGanConfig",
        device,
        |cfg: &FaceGanConfig, vb| Generator::new(cfg, vb),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
