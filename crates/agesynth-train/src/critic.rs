//! Training the critics of `agesynth-critic` on real faces (UTKFace's
//! training split): the age-group classifier learns the faces' own groups;
//! the identity embedder is distilled from a teacher embedder's descriptors
//! of the same faces, computed once ([`teacher_embeddings`]) and saved with
//! the run.
//!
//! Batches are augmented by a random shift of up to `max_shift` pixels
//! (edges replicated), when `xflip` is set a left–right mirror, and when
//! `input_noise` is above 0 Gaussian noise; every
//! draw comes from the seed and the step, so a resumed run repeats the
//! straight one.

use crate::checkpoint::CheckpointRestore;
use std::{collections::HashMap, sync::Arc};

use agesynth_core::{AgeGroup, FaceEmbedder, Gender};
use agesynth_critic::{
    AgeCritic, CriticConfig, CriticHead, GenderCritic, IdentityCritic, TrunkKind,
};
use agesynth_losses::age::{cross_entropy, weighted_cross_entropy};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{Checkpoint, CheckpointContents},
    data::{DataOrder, RealFaces},
    optim::{Adam, AdamConfig, ParamGroup},
    rng::step_rng,
    trainer::{StepReport, TrainTask},
    Result, TrainError,
};

/// Everything a critic run is started with (the run's `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriticTrainConfig {
    /// The network.
    pub model: CriticConfig,
    /// Faces per step.
    pub batch: usize,
    /// Peak learning rate (AdamW), reached after a short warm-up and
    /// decayed along a cosine to 1 % at `total_steps`.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// The step the cosine schedule ends at.
    pub total_steps: u64,
    /// Mirror faces left–right at random.
    pub xflip: bool,
    /// Largest random shift, in pixels.
    pub max_shift: usize,
    /// The run's seed.
    pub seed: u64,
    /// Age critic: weight each face's cross-entropy by the inverse frequency
    /// of its group in the training set, so that rare groups (10–19, 40–49)
    /// are learned as well as common ones.
    #[serde(default)]
    pub balanced: bool,
    /// Standard deviation of Gaussian noise added to every training input
    /// (pixel values in [-1, 1]; 0: none). A critic trained on noisy faces
    /// leans on features that survive noise, so the gradient it gives a
    /// generator points to visible change rather than to faint patterns
    /// (configs written before it read as 0).
    #[serde(default)]
    pub input_noise: f64,
    /// Learn from faces labelled with this gender only (`None`: every
    /// face). An age critic that has seen only women cannot reward a
    /// moustache as a sign of age (configs written before it read as
    /// `None`).
    #[serde(default)]
    pub only_gender: Option<Gender>,
    /// Adversarial training (Madry et al.): the largest change of any pixel
    /// (values in [-1, 1]) that a projected-gradient attack may make to each
    /// training input before the critic learns from it (0: off). A critic
    /// trained this way cannot be swayed by faint patterns, so the gradient
    /// it gives a generator asks for visible features (grey hair, folds)
    /// rather than for patterns only it sees (configs written before it
    /// read as 0).
    #[serde(default)]
    pub adversarial_epsilon: f64,
    /// Steps of that attack (each moves every pixel by `2.5 ε / steps`
    /// along the sign of the loss's gradient, then projects back into the
    /// ε-box); at least 1 when `adversarial_epsilon` is above 0.
    #[serde(default)]
    pub adversarial_steps: usize,
    /// The trained critic this run started from (provenance; `None`: a
    /// seeded initialisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<std::path::PathBuf>,
    /// The identity network an identity critic is distilled from
    /// (provenance, e.g. `faceres`; configs written before it read as
    /// `None`, which meant dlib's network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
    /// The MobileNet v1 weights a MobileNet trunk started from (e.g. HSE
    /// FaceRes's; provenance, `None`: a seeded initialisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_backbone: Option<std::path::PathBuf>,
}

impl CriticTrainConfig {
    /// Defaults for `model`: batch 64, lr 2e-3, weight decay 1e-4; mirror and
    /// shift by 4 px for the age critic, shift by 2 px only for the identity
    /// critic (a mirrored face has another teacher descriptor).
    pub fn new(model: CriticConfig, total_steps: u64, seed: u64) -> Self {
        // Age and gender survive a mirror; an identity descriptor does not.
        let age = matches!(
            model.head,
            CriticHead::AgeGroups { .. }
                | CriticHead::AgeGroupsByGender { .. }
                | CriticHead::Gender
        );
        CriticTrainConfig {
            model,
            batch: 64,
            lr: 2e-3,
            weight_decay: 1e-4,
            total_steps,
            xflip: age,
            max_shift: if age { 4 } else { 2 },
            seed,
            balanced: false,
            input_noise: 0.0,
            only_gender: None,
            adversarial_epsilon: 0.0,
            adversarial_steps: 0,
            init: None,
            teacher: None,
            init_backbone: None,
        }
    }

    /// The learning rate at `step`: linear warm-up over the first 2 % (at
    /// most 200 steps), then a cosine from `lr` to `lr / 100`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let total = self.total_steps.max(1) as f64;
        let warm = (total * 0.02).clamp(1.0, 200.0);
        let s = step as f64;
        if s < warm {
            return self.lr * s / warm;
        }
        let t = ((s - warm) / (total - warm).max(1.0)).clamp(0.0, 1.0);
        let floor = self.lr / 100.0;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// The network being trained.
enum Net {
    Age(AgeCritic),
    Gender(GenderCritic),
    Identity {
        net: IdentityCritic,
        /// Teacher descriptors `(faces, D)`, row `i` for face `i`.
        teacher: Tensor,
    },
}

/// A critic training task.
pub struct CriticTask {
    cfg: CriticTrainConfig,
    device: Device,
    vars: VarMap,
    net: Net,
    opt: Adam,
    faces: Arc<RealFaces>,
    /// The faces it learns from (indices into `faces`).
    pool: Vec<usize>,
    order: DataOrder,
    /// Per-group weights of the cross-entropy (all 1 unless balanced).
    group_weights: Vec<f32>,
}

impl CriticTask {
    /// A new task training `cfg.model` on `faces`. An identity critic needs
    /// `teacher`: one descriptor per face (`(faces.len(), D)`).
    pub fn new(
        cfg: CriticTrainConfig,
        faces: Arc<RealFaces>,
        teacher: Option<Tensor>,
        device: &Device,
    ) -> Result<Self> {
        cfg.model.validate()?;
        let cfg_err = |m: String| -> TrainError { agesynth_core::Error::Config(m).into() };
        if cfg.batch == 0 {
            return Err(cfg_err("batch must be at least 1".into()));
        }
        let eps = cfg.adversarial_epsilon;
        if !(eps.is_finite() && (0.0..=2.0).contains(&eps)) {
            return Err(cfg_err(format!(
                "adversarial_epsilon {eps} must be between 0 and 2 (pixels span [-1, 1])"
            )));
        }
        if eps > 0.0 && cfg.adversarial_steps == 0 {
            return Err(cfg_err(
                "adversarial training needs at least one attack step".into(),
            ));
        }
        if faces.size() != cfg.model.image_size {
            return Err(cfg_err(format!(
                "the faces are {0}x{0} but the critic takes {1}x{1}",
                faces.size(),
                cfg.model.image_size
            )));
        }
        let vars = VarMap::new();
        let vb = agesynth_nn::init::seeded_var_builder(&vars, cfg.seed, DType::F32, device);
        let net = match (&cfg.model.head, teacher) {
            (CriticHead::AgeGroups { .. }, _) => Net::Age(AgeCritic::new(&cfg.model, vb)?),
            (CriticHead::AgeGroupsByGender { .. }, _) => {
                if !faces.genders().iter().any(Option::is_some) {
                    return Err(cfg_err(
                        "an age-given-gender critic needs faces labelled with their gender; \
                         none are"
                            .into(),
                    ));
                }
                Net::Age(AgeCritic::new(&cfg.model, vb)?)
            }
            (CriticHead::Gender, _) => {
                if !faces.genders().iter().any(Option::is_some) {
                    return Err(cfg_err(
                        "a gender critic needs faces labelled with their gender; none are".into(),
                    ));
                }
                Net::Gender(GenderCritic::new(&cfg.model, vb)?)
            }
            (CriticHead::Embedding { dim, .. }, Some(t)) => {
                if t.dims() != [faces.len(), *dim] {
                    return Err(cfg_err(format!(
                        "teacher descriptors {:?} do not match {} faces × {dim}",
                        t.dims(),
                        faces.len()
                    )));
                }
                Net::Identity {
                    net: IdentityCritic::new(&cfg.model, vb)?,
                    teacher: t.to_device(device)?.to_dtype(DType::F32)?,
                }
            }
            (CriticHead::Embedding { .. }, None) => {
                return Err(cfg_err(
                    "an identity critic is distilled from teacher descriptors; none were given"
                        .into(),
                ))
            }
        };
        let opt = Adam::new(
            vec![ParamGroup::from_varmap("critic", &vars, 1.0)],
            AdamConfig::adamw(cfg.lr, cfg.weight_decay),
        )?;
        let by_gender = matches!(cfg.model.head, CriticHead::AgeGroupsByGender { .. });
        let pool: Vec<usize> = match cfg.only_gender {
            // A joint head learns from the labelled faces only.
            None if by_gender => (0..faces.len())
                .filter(|&i| faces.genders().get(i).copied().flatten().is_some())
                .collect(),
            None => (0..faces.len()).collect(),
            Some(want) => (0..faces.len())
                .filter(|&i| faces.genders().get(i).copied().flatten() == Some(want))
                .collect(),
        };
        if pool.is_empty() {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "no training face is labelled {:?}",
                cfg.only_gender
            ))
            .into());
        }
        let order = DataOrder::new(pool.len(), cfg.seed);
        let groups = cfg.model.head.age_lower_bounds().map_or(0, <[f32]>::len);
        let mut counts = vec![0usize; groups];
        for &i in &pool {
            if let Some(c) = counts.get_mut(faces.groups()[i].0) {
                *c += 1;
            }
        }
        let group_weights = counts
            .iter()
            .map(|&c| {
                if cfg.balanced && c > 0 {
                    pool.len() as f32 / (groups * c) as f32
                } else {
                    1.0
                }
            })
            .collect();
        Ok(CriticTask {
            cfg,
            device: device.clone(),
            vars,
            net,
            opt,
            faces,
            pool,
            order,
            group_weights,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CriticTrainConfig {
        &self.cfg
    }

    /// The critic's variables.
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// The age critic, if this task trains one.
    pub fn age_critic(&self) -> Option<&AgeCritic> {
        match &self.net {
            Net::Age(c) => Some(c),
            _ => None,
        }
    }

    /// The identity critic, if this task trains one.
    pub fn identity_critic(&self) -> Option<&IdentityCritic> {
        match &self.net {
            Net::Identity { net, .. } => Some(net),
            _ => None,
        }
    }

    /// The gender critic, if this task trains one.
    pub fn gender_critic(&self) -> Option<&GenderCritic> {
        match &self.net {
            Net::Gender(c) => Some(c),
            _ => None,
        }
    }

    /// Starts from the weights of a trained critic of the same config (a
    /// weights file with its sidecar, a checkpoint or a run folder): e.g. to
    /// fine-tune a critic adversarially. A critic of another config is an
    /// error naming the file.
    pub fn init_from(&mut self, path: &std::path::Path) -> Result<()> {
        use agesynth_critic::load as l;
        let (model, source) = match &self.net {
            Net::Age(_) => {
                let (c, v) = l::load_age_critic(path, &self.device)?;
                (c.config().clone(), v)
            }
            Net::Gender(_) => {
                let (c, v) = l::load_gender_critic(path, &self.device)?;
                (c.config().clone(), v)
            }
            Net::Identity { .. } => {
                let (c, v) = l::load_identity_critic(path, &self.device)?;
                (c.config().clone(), v)
            }
        };
        if model != self.cfg.model {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "holds a critic of another config (`{}`, blur {}, luma {}) than this run's (`{}`, blur {}, luma {})",
                    model.preset,
                    model.input_blur,
                    model.input_luma,
                    self.cfg.model.preset,
                    self.cfg.model.input_blur,
                    self.cfg.model.input_luma
                ),
            ));
        }
        crate::params::restore(&self.vars, crate::params::snapshot(&source), path)
    }

    /// Sets a MobileNet trunk's weights from `path`, a MobileNet v1 weights
    /// file holding exactly [`MobileNetV1::tensor_shapes`] (such as
    /// `faceres.safetensors`). An identity critic whose descriptor is as
    /// wide as the features then gets the projection that centres the
    /// features of up to `calibrate` training faces and scales them to mean
    /// length 1 (the shape of centred unit teacher descriptors), so that
    /// fine-tuning starts from the backbone's own notion of identity. A
    /// conv-trunk critic, or a file of other tensors, is an error naming the
    /// file.
    ///
    /// [`MobileNetV1::tensor_shapes`]: agesynth_nn::mobilenet::MobileNetV1::tensor_shapes
    pub fn init_backbone(&mut self, path: &std::path::Path, calibrate: usize) -> Result<()> {
        if !matches!(self.cfg.model.trunk, TrunkKind::MobileNet { .. }) {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "is a MobileNet backbone, but critic `{}` has a convolutional trunk",
                    self.cfg.model.preset
                ),
            ));
        }
        let mut file = agesynth_core::io::load_tensors(path, &self.device)?;
        // Copies: a variable cannot be set from a tensor sharing its storage.
        let mut all: HashMap<String, Tensor> = crate::params::snapshot(&self.vars)
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect::<candle_core::Result<_>>()?;
        for (name, shape) in agesynth_nn::mobilenet::MobileNetV1::tensor_shapes() {
            let t = agesynth_core::io::take_tensor(&mut file, path, &name, &shape)?;
            all.insert(format!("trunk.{name}"), t);
        }
        if let Some(extra) = file.keys().min() {
            return Err(TrainError::checkpoint(
                path,
                format!("holds `{extra}`, which is not a tensor of MobileNet v1"),
            ));
        }
        crate::params::restore(&self.vars, all, path)?;
        let Net::Identity { net, .. } = &self.net else {
            return Ok(());
        };
        let width = self.cfg.model.feature_dim();
        if net.dim() != width || calibrate == 0 {
            return Ok(());
        }
        let n = calibrate.min(self.pool.len());
        let mut parts = Vec::new();
        for chunk in self.pool[..n].chunks(32) {
            let x = self.faces.batch(chunk, &[], &self.device)?.images;
            parts.push(net.features(&x)?.detach());
        }
        let f = Tensor::cat(&parts, 0)?;
        let mean = f.mean_keepdim(0)?;
        let scale = f
            .broadcast_sub(&mean)?
            .sqr()?
            .sum(1)?
            .sqrt()?
            .mean_all()?
            .to_scalar::<f32>()?
            .max(1e-6);
        // Copies: a variable cannot be set from a tensor sharing its storage.
        let mut all: HashMap<String, Tensor> = crate::params::snapshot(&self.vars)
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect::<candle_core::Result<_>>()?;
        let eye = Tensor::eye(width, DType::F32, &self.device)?;
        all.insert("proj.weight".into(), (eye / f64::from(scale))?);
        all.insert(
            "proj.bias".into(),
            (mean.squeeze(0)? * (-1.0 / f64::from(scale)))?,
        );
        crate::params::restore(&self.vars, all, path)
    }

    /// Saves the critic at `path` with its config as the sidecar, atomically.
    pub fn export(&self, path: &std::path::Path) -> Result<()> {
        agesynth_core::io::save_varmap(&self.vars, path, &self.cfg.model)?;
        Ok(())
    }

    /// The batch of `step`: face indices, augmented images.
    fn draw(&mut self, step: u64) -> Result<(Vec<usize>, Tensor)> {
        let idx: Vec<usize> = self
            .order
            .next_indices(self.cfg.batch)
            .into_iter()
            .map(|i| self.pool[i])
            .collect();
        let mut rng = step_rng(self.cfg.seed, "critic-augment", step);
        let flips: Vec<bool> = (0..idx.len())
            .map(|_| self.cfg.xflip && rng.random::<bool>())
            .collect();
        let images = self.faces.batch(&idx, &flips, &self.device)?.images;
        let m = self.cfg.max_shift;
        let images = if m == 0 {
            images
        } else {
            let s = self.faces.size();
            let padded = images.pad_with_same(2, m, m)?.pad_with_same(3, m, m)?;
            let rows = (0..idx.len())
                .map(|k| {
                    let (dy, dx) = (rng.random_range(0..=2 * m), rng.random_range(0..=2 * m));
                    padded.narrow(0, k, 1)?.narrow(2, dy, s)?.narrow(3, dx, s)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&rows, 0)?
        };
        if self.cfg.input_noise <= 0.0 {
            return Ok((idx, images));
        }
        let noise = crate::rng::randn(&mut rng, images.shape(), images.device())?;
        Ok((idx, (images + (noise * self.cfg.input_noise)?)?))
    }
}

/// Per-step readings: `(name, value)` pairs.
type Readings = Vec<(String, f32)>;

impl CriticTask {
    /// The training loss of faces `idx` (indices into `faces`) seen as `x`,
    /// with the step's readings (losses, metrics).
    fn loss(&self, idx: &[usize], x: &Tensor) -> Result<(Tensor, Readings, Readings)> {
        let mut losses = Vec::new();
        let mut metrics = Vec::new();
        let loss = match &self.net {
            Net::Age(c) if c.by_gender() => {
                // One cross-entropy over the joint (gender, group) classes:
                // the half of each gender then reads age given gender.
                let g = c.bins().len();
                let groups: Vec<AgeGroup> = idx.iter().map(|&i| self.faces.groups()[i]).collect();
                let classes: Vec<AgeGroup> = idx
                    .iter()
                    .zip(&groups)
                    .map(
                        |(&i, a)| match self.faces.genders().get(i).copied().flatten() {
                            Some(Gender::Female) => AgeGroup(g + a.0),
                            _ => *a,
                        },
                    )
                    .collect();
                let w: Vec<f32> = idx
                    .iter()
                    .zip(&groups)
                    .map(|(&i, a)| {
                        let labelled = self.faces.genders().get(i).copied().flatten().is_some();
                        if labelled {
                            self.group_weights[a.0]
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let logits = c.head_logits(x)?;
                let loss = weighted_cross_entropy(&logits, &classes, &w)?;
                let pred = logits.argmax(1)?.to_vec1::<u32>()?;
                let hits = pred
                    .iter()
                    .zip(&groups)
                    .filter(|(p, a)| **p as usize % g == a.0)
                    .count();
                losses.push(("ce".to_string(), loss.to_scalar::<f32>()?));
                metrics.push(("train_accuracy".to_string(), hits as f32 / idx.len() as f32));
                loss
            }
            Net::Age(c) => {
                let groups: Vec<AgeGroup> = idx.iter().map(|&i| self.faces.groups()[i]).collect();
                let logits = c.logits(x)?;
                let loss = if self.cfg.balanced {
                    let w: Vec<f32> = groups.iter().map(|g| self.group_weights[g.0]).collect();
                    weighted_cross_entropy(&logits, &groups, &w)?
                } else {
                    cross_entropy(&logits, &groups)?
                };
                let pred = logits.argmax(1)?.to_vec1::<u32>()?;
                let hits = pred
                    .iter()
                    .zip(&groups)
                    .filter(|(p, g)| **p as usize == g.0)
                    .count();
                losses.push(("ce".to_string(), loss.to_scalar::<f32>()?));
                metrics.push(("train_accuracy".to_string(), hits as f32 / idx.len() as f32));
                loss
            }
            Net::Gender(c) => {
                // Class 0 male, 1 female; faces without a label weigh 0.
                let (classes, weights): (Vec<AgeGroup>, Vec<f32>) = idx
                    .iter()
                    .map(|&i| match self.faces.genders().get(i).copied().flatten() {
                        Some(Gender::Male) => (AgeGroup(0), 1.0),
                        Some(Gender::Female) => (AgeGroup(1), 1.0),
                        None => (AgeGroup(0), 0.0),
                    })
                    .unzip();
                let logits = c.logits(x)?;
                let loss = weighted_cross_entropy(&logits, &classes, &weights)?;
                let pred = logits.argmax(1)?.to_vec1::<u32>()?;
                let labelled = weights.iter().filter(|&&w| w > 0.0).count();
                let hits = pred
                    .iter()
                    .zip(&classes)
                    .zip(&weights)
                    .filter(|((p, g), w)| **w > 0.0 && **p as usize == g.0)
                    .count();
                losses.push(("ce".to_string(), loss.to_scalar::<f32>()?));
                metrics.push((
                    "train_accuracy".to_string(),
                    hits as f32 / labelled.max(1) as f32,
                ));
                loss
            }
            Net::Identity { net, teacher } => {
                let ix = Tensor::from_vec(
                    idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    idx.len(),
                    &self.device,
                )?;
                let target = teacher.index_select(&ix, 0)?;
                let e = net.embed(x)?;
                // Mean squared L2 distance to the teacher's descriptor.
                let loss = (e - target)?.sqr()?.sum(1)?.mean_all()?;
                losses.push(("l2sq".to_string(), loss.to_scalar::<f32>()?));
                loss
            }
        };
        Ok((loss, losses, metrics))
    }

    /// The inputs `x` moved by a projected-gradient attack of
    /// [`CriticTrainConfig::adversarial_steps`] steps within an L∞ box of
    /// [`CriticTrainConfig::adversarial_epsilon`] around them, from a random
    /// start (seeded by the step): each step climbs the critic's own loss.
    /// `x` itself when adversarial training is off.
    pub fn adversarial_inputs(&self, step: u64, idx: &[usize], x: &Tensor) -> Result<Tensor> {
        let eps = self.cfg.adversarial_epsilon;
        if eps <= 0.0 {
            return Ok(x.clone());
        }
        let x = x.detach();
        let n = self.cfg.adversarial_steps.max(1);
        let alpha = 2.5 * eps / n as f64;
        let mut rng = step_rng(self.cfg.seed, "critic-adversarial", step);
        let start: Vec<f32> = (0..x.elem_count())
            .map(|_| rng.random_range(-eps..=eps) as f32)
            .collect();
        let mut delta = Tensor::from_vec(start, x.shape(), x.device())?;
        for _ in 0..n {
            let moved = candle_core::Var::from_tensor(&(&x + &delta)?)?;
            let (loss, _, _) = self.loss(idx, moved.as_tensor())?;
            let grads = loss.backward()?;
            let g = grads.get(moved.as_tensor()).ok_or_else(|| {
                TrainError::from(agesynth_core::Error::Config(
                    "the critic's loss does not reach its input".into(),
                ))
            })?;
            let sign = (g.gt(0f32)?.to_dtype(x.dtype())? - g.lt(0f32)?.to_dtype(x.dtype())?)?;
            delta = (delta + (sign * alpha)?)?.clamp(-eps as f32, eps as f32)?;
        }
        Ok((x + delta)?.detach())
    }
}

impl TrainTask for CriticTask {
    fn step(&mut self, step: u64) -> Result<StepReport> {
        let (idx, x) = self.draw(step)?;
        let x = self.adversarial_inputs(step, &idx, &x)?;
        self.opt.set_lr(self.cfg.lr_at(step));
        let (loss, losses, metrics) = self.loss(&idx, &x)?;
        self.opt.backward_step(&loss)?;
        Ok(StepReport {
            images: idx.len(),
            losses,
            metrics,
        })
    }

    fn checkpoint(&self) -> Result<CheckpointContents> {
        CheckpointContents::new()
            .vars("critic", &self.vars)
            .optimizer("optim", &self.opt)?
            .json("critic", &self.cfg.model)?
            .json("data", &self.order)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let model: CriticConfig = ck.load_json("critic")?;
        if model != self.cfg.model {
            return Err(TrainError::checkpoint(
                ck.dir(),
                format!(
                    "was made with critic `{}`, this run uses `{}`",
                    model.preset, self.cfg.model.preset
                ),
            ));
        }
        let order: DataOrder = ck.load_json("data")?;
        if order.len != self.pool.len() {
            return Err(TrainError::checkpoint(
                ck.dir(),
                format!(
                    "was trained on {} faces, the data now holds {}",
                    order.len,
                    self.pool.len()
                ),
            ));
        }
        ck.restore_vars("critic", &self.vars)?;
        ck.restore_optimizer("optim", &mut self.opt)?;
        self.order = order;
        Ok(())
    }
}

/// Descriptors `rows (N, D)` less `mean (1, D)`, each scaled to unit
/// length: teacher descriptors that share a large common part (HSE
/// FaceRes's) tell people apart better centred on the training faces' mean.
pub fn centre_descriptors(rows: &Tensor, mean: &Tensor) -> Result<Tensor> {
    let c = rows.broadcast_sub(mean)?;
    let norm = c.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    Ok(c.broadcast_div(&norm)?)
}

/// Descriptors `(faces.len(), D)` of every face of `faces` by `teacher`, in
/// batches of `batch` (no gradient).
pub fn teacher_embeddings(
    teacher: &dyn FaceEmbedder,
    faces: &RealFaces,
    batch: usize,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tensor> {
    let n = faces.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch.max(1)).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let x = faces.batch(&idx, &[], device)?.images;
        parts.push(teacher.embed(&x)?.detach());
        start = end;
        progress(end, n);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// How well a critic does on held-out faces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CriticReport {
    /// Faces measured.
    pub faces: usize,
    /// Age critic: share of faces whose most likely group is their own.
    pub age_accuracy: Option<f64>,
    /// Age critic: accuracy per group (group label, faces, accuracy).
    pub per_group: Vec<(String, usize, f64)>,
    /// Age critic: share within one group of their own.
    pub age_within_one: Option<f64>,
    /// Identity critic: mean L2 distance to the teacher's descriptor.
    pub teacher_l2: Option<f64>,
    /// Identity critic: for pairs of different faces, the share on which
    /// the critic and the teacher agree about "same person" at their
    /// thresholds.
    pub pair_agreement: Option<f64>,
    /// Identity critic: mean critic distance of a face to its own mirror
    /// image, and to a different face.
    pub mirror_distance: Option<f64>,
    /// Identity critic: mean critic distance between different faces.
    pub other_distance: Option<f64>,
    /// Gender critic (or age-given-gender critic): share of the labelled
    /// faces classified as labelled.
    #[serde(default)]
    pub gender_accuracy: Option<f64>,
    /// Age-given-gender critic: age-group accuracy whatever the gender (the
    /// marginal over both genders), to compare with a plain age critic.
    #[serde(default)]
    pub age_accuracy_any_gender: Option<f64>,
    /// Gender critic: accuracy per age group (group label, labelled faces,
    /// accuracy).
    #[serde(default)]
    pub gender_per_group: Vec<(String, usize, f64)>,
}

/// Measures the age critic on `faces` (their own groups as the truth). An
/// age-given-gender critic reads each face's age given its labelled gender
/// (`age_accuracy`), and is also measured whatever the gender
/// (`age_accuracy_any_gender`) and on gender (`gender_accuracy`).
pub fn evaluate_age(
    critic: &AgeCritic,
    faces: &RealFaces,
    device: &Device,
) -> Result<CriticReport> {
    let bins = critic.bins().clone();
    let mut hits = vec![0usize; bins.len()];
    let mut counts = vec![0usize; bins.len()];
    let mut near = 0usize;
    let (mut any_hits, mut gender_hits, mut gender_labelled) = (0usize, 0usize, 0usize);
    let n = faces.len();
    let g_count = bins.len();
    for start in (0..n).step_by(128) {
        let idx: Vec<usize> = (start..(start + 128).min(n)).collect();
        let x = faces.batch(&idx, &[], device)?.images;
        let genders: Vec<Option<Gender>> = idx
            .iter()
            .map(|&i| faces.genders().get(i).copied().flatten())
            .collect();
        // One pass through the critic serves every reading below.
        let joint = critic.head_logits(&x)?;
        let argmax = |t: Tensor| -> Result<Vec<AgeGroup>> {
            Ok(t.argmax(1)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|p| AgeGroup(p as usize))
                .collect())
        };
        let pred = argmax(critic.group_logits_from_head(&joint, Some(&genders))?)?;
        if critic.by_gender() {
            let any = argmax(critic.group_logits_from_head(&joint, None)?)?;
            let p = candle_nn::ops::softmax_last_dim(&joint)?;
            let female = p.narrow(1, g_count, g_count)?.sum(1)?.to_vec1::<f32>()?;
            for (k, &i) in idx.iter().enumerate() {
                if any[k] == faces.groups()[i] {
                    any_hits += 1;
                }
                if let Some(truth) = genders[k] {
                    gender_labelled += 1;
                    if (female[k] >= 0.5) == (truth == Gender::Female) {
                        gender_hits += 1;
                    }
                }
            }
        }
        for (&i, p) in idx.iter().zip(pred) {
            let g = faces.groups()[i];
            counts[g.0] += 1;
            if p == g {
                hits[g.0] += 1;
            }
            if p.0.abs_diff(g.0) <= 1 {
                near += 1;
            }
        }
    }
    let total: usize = hits.iter().sum();
    Ok(CriticReport {
        faces: n,
        age_accuracy: Some(total as f64 / n.max(1) as f64),
        age_within_one: Some(near as f64 / n.max(1) as f64),
        age_accuracy_any_gender: critic
            .by_gender()
            .then(|| any_hits as f64 / n.max(1) as f64),
        gender_accuracy: critic
            .by_gender()
            .then(|| gender_hits as f64 / gender_labelled.max(1) as f64),
        per_group: bins
            .groups()
            .map(|g| {
                (
                    bins.label(g),
                    counts[g.0],
                    hits[g.0] as f64 / counts[g.0].max(1) as f64,
                )
            })
            .collect(),
        ..CriticReport::default()
    })
}

/// Measures the gender critic on the labelled faces of `faces`, overall and
/// per age group of `bins`.
pub fn evaluate_gender(
    critic: &GenderCritic,
    faces: &RealFaces,
    bins: &agesynth_core::AgeBins,
    device: &Device,
) -> Result<CriticReport> {
    let mut hits = vec![0usize; bins.len()];
    let mut counts = vec![0usize; bins.len()];
    let n = faces.len();
    for start in (0..n).step_by(128) {
        let idx: Vec<usize> = (start..(start + 128).min(n)).collect();
        let x = faces.batch(&idx, &[], device)?.images;
        let p = critic.female_probability(&x)?.to_vec1::<f32>()?;
        for (&i, p) in idx.iter().zip(p) {
            let Some(truth) = faces.genders().get(i).copied().flatten() else {
                continue;
            };
            let g = faces.groups()[i].0.min(bins.len() - 1);
            counts[g] += 1;
            if (p >= 0.5) == (truth == Gender::Female) {
                hits[g] += 1;
            }
        }
    }
    let labelled: usize = counts.iter().sum();
    Ok(CriticReport {
        faces: labelled,
        gender_accuracy: Some(hits.iter().sum::<usize>() as f64 / labelled.max(1) as f64),
        gender_per_group: bins
            .groups()
            .map(|g| {
                (
                    bins.label(g),
                    counts[g.0],
                    hits[g.0] as f64 / counts[g.0].max(1) as f64,
                )
            })
            .collect(),
        ..CriticReport::default()
    })
}

/// Measures the identity critic on `faces` against the teacher's
/// descriptors `teacher (faces, D)` of the same faces.
pub fn evaluate_identity(
    critic: &IdentityCritic,
    teacher_threshold: f32,
    faces: &RealFaces,
    teacher: &Tensor,
    device: &Device,
) -> Result<CriticReport> {
    let n = faces.len();
    let mut own = Vec::new();
    let mut mirrored = Vec::new();
    for start in (0..n).step_by(128) {
        let idx: Vec<usize> = (start..(start + 128).min(n)).collect();
        let x = faces.batch(&idx, &[], device)?.images;
        own.push(critic.embed(&x)?);
        let flips = vec![true; idx.len()];
        mirrored.push(critic.embed(&faces.batch(&idx, &flips, device)?.images)?);
    }
    let e = Tensor::cat(&own, 0)?;
    let m = Tensor::cat(&mirrored, 0)?;
    let teacher = teacher.to_device(device)?.to_dtype(DType::F32)?;
    let l2 = |a: &Tensor, b: &Tensor| -> Result<Vec<f32>> {
        Ok((a - b)?.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?)
    };
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    // Pairs of different faces: face i with face (i + n/2) mod n.
    let shift = (n / 2).max(1);
    let other: Vec<u32> = (0..n).map(|i| ((i + shift) % n) as u32).collect();
    let other = Tensor::from_vec(other, n, device)?;
    let d_critic = l2(&e, &e.index_select(&other, 0)?)?;
    let d_teacher = l2(&teacher, &teacher.index_select(&other, 0)?)?;
    let agree = d_critic
        .iter()
        .zip(&d_teacher)
        .filter(|(c, t)| (**c < critic.threshold()) == (**t < teacher_threshold))
        .count();
    Ok(CriticReport {
        faces: n,
        teacher_l2: Some(mean(&l2(&e, &teacher)?)),
        pair_agreement: Some(agree as f64 / n.max(1) as f64),
        mirror_distance: Some(mean(&l2(&e, &m)?)),
        other_distance: Some(mean(&d_critic)),
        ..CriticReport::default()
    })
}

pub use agesynth_critic::load::{load_age_critic, load_gender_critic, load_identity_critic};

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::{AgeBins, FaceImage};

    fn faces(n: usize, size: u32) -> RealFaces {
        // Two kinds of synthetic faces: dark (age 5) and bright (age 60).
        let bins = AgeBins::paper();
        let mut imgs = Vec::new();
        let mut ages = Vec::new();
        for i in 0..n {
            let v = if i % 2 == 0 { 40u8 } else { 210u8 };
            let px: Vec<u8> = (0..size * size * 3)
                .map(|k| v.wrapping_add((k % 7) as u8))
                .collect();
            imgs.push(FaceImage::new(size, size, px).unwrap());
            ages.push(if i % 2 == 0 { 5.0 } else { 60.0 });
        }
        RealFaces::from_images(&imgs, &ages, &bins).unwrap()
    }

    #[test]
    fn the_age_critic_learns_a_separable_set() {
        let f = Arc::new(faces(32, 16));
        let mut cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 60, 1);
        cfg.batch = 16;
        let mut task = CriticTask::new(cfg, f.clone(), None, &Device::Cpu).unwrap();
        let first = task.step(1).unwrap().losses[0].1;
        let mut last = first;
        for s in 2..=60 {
            last = task.step(s).unwrap().losses[0].1;
        }
        assert!(last < first * 0.5, "cross-entropy {first} -> {last}");
        let r = evaluate_age(task.age_critic().unwrap(), &f, &Device::Cpu).unwrap();
        assert_eq!(r.age_accuracy, Some(1.0), "{r:?}");
    }

    #[test]
    fn the_gender_critic_learns_labels_and_ignores_unlabelled_faces() {
        // Dark faces labelled male, bright ones female; every fourth face
        // unlabelled (it must not count in the loss or the accuracy).
        let mut raw = faces(32, 16);
        let cfg = CriticTrainConfig::new(CriticConfig::tiny_gender(), 60, 4);
        let unlabelled = Arc::new(faces(8, 16));
        assert!(CriticTask::new(cfg.clone(), unlabelled, None, &Device::Cpu).is_err());
        let genders: Vec<Option<Gender>> = (0..32)
            .map(|i| match (i % 4, i % 2) {
                (3, _) => None,
                (_, 0) => Some(Gender::Male),
                _ => Some(Gender::Female),
            })
            .collect();
        raw.set_genders(genders).unwrap();
        assert!(raw.set_genders(vec![None; 3]).is_err());
        let f = Arc::new(raw);
        let mut cfg = cfg;
        cfg.batch = 16;
        let mut task = CriticTask::new(cfg, f.clone(), None, &Device::Cpu).unwrap();
        let first = task.step(1).unwrap().losses[0].1;
        let mut last = first;
        for s in 2..=60 {
            last = task.step(s).unwrap().losses[0].1;
        }
        assert!(last < first * 0.5, "cross-entropy {first} -> {last}");
        let bins = AgeBins::paper();
        let r = evaluate_gender(task.gender_critic().unwrap(), &f, &bins, &Device::Cpu).unwrap();
        assert_eq!(r.faces, 24, "only labelled faces count: {r:?}");
        assert_eq!(r.gender_accuracy, Some(1.0), "{r:?}");
    }

    #[test]
    fn the_age_given_gender_critic_reads_what_only_gender_decides() {
        // Brightness 120 is an old man or a young woman: only a critic told
        // the gender can get every face right.
        let bins = AgeBins::paper();
        let (mut imgs, mut ages, mut genders) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..32 {
            let (v, age, g) = match i % 4 {
                0 => (40u8, 5.0, Gender::Male),
                1 => (120, 60.0, Gender::Male),
                2 => (120, 5.0, Gender::Female),
                _ => (210, 60.0, Gender::Female),
            };
            let px: Vec<u8> = (0..16 * 16 * 3)
                .map(|k| v.wrapping_add((k % 7) as u8))
                .collect();
            imgs.push(FaceImage::new(16, 16, px).unwrap());
            ages.push(age);
            genders.push(Some(g));
        }
        let mut raw = RealFaces::from_images(&imgs, &ages, &bins).unwrap();
        let cfg = CriticTrainConfig::new(CriticConfig::tiny_age_gender(), 120, 5);
        // Without gender labels it cannot train.
        assert!(CriticTask::new(cfg.clone(), Arc::new(faces(8, 16)), None, &Device::Cpu).is_err());
        raw.set_genders(genders).unwrap();
        let f = Arc::new(raw);
        let mut cfg = cfg;
        cfg.batch = 16;
        cfg.max_shift = 0;
        let mut task = CriticTask::new(cfg, f.clone(), None, &Device::Cpu).unwrap();
        let first = task.step(1).unwrap().losses[0].1;
        let mut last = first;
        for s in 2..=120 {
            last = task.step(s).unwrap().losses[0].1;
        }
        assert!(last < first * 0.5, "cross-entropy {first} -> {last}");
        let r = evaluate_age(task.age_critic().unwrap(), &f, &Device::Cpu).unwrap();
        assert_eq!(r.age_accuracy, Some(1.0), "{r:?}");
        assert_eq!(r.gender_accuracy.map(|a| a >= 0.75), Some(true), "{r:?}");
        assert!(r.age_accuracy_any_gender.unwrap() <= 0.75 + 1e-9, "{r:?}");
    }

    #[test]
    fn adversarial_inputs_stay_in_the_box_raise_the_loss_and_repeat() {
        let f = Arc::new(faces(32, 16));
        let mut cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 40, 3);
        cfg.batch = 16;
        cfg.max_shift = 0;
        cfg.xflip = false;
        let mut clean_cfg = cfg.clone();
        clean_cfg.adversarial_steps = 3;
        // Steps without ε: off.
        let mut task = CriticTask::new(clean_cfg, f.clone(), None, &Device::Cpu).unwrap();
        for s in 1..=20 {
            task.step(s).unwrap();
        }
        let (idx, x) = task.draw(21).unwrap();
        assert_eq!(
            max_abs(&(task.adversarial_inputs(21, &idx, &x).unwrap() - &x).unwrap()),
            0.0
        );
        // With ε the attack moves every input, by at most ε, and raises the loss.
        let eps = 0.05;
        task.cfg.adversarial_epsilon = eps;
        let adv = task.adversarial_inputs(21, &idx, &x).unwrap();
        let moved = max_abs(&(&adv - &x).unwrap());
        assert!(
            moved as f64 > 0.5 * eps && moved as f64 <= eps + 1e-6,
            "moved {moved}"
        );
        let before = task.loss(&idx, &x).unwrap().0.to_scalar::<f32>().unwrap();
        let after = task.loss(&idx, &adv).unwrap().0.to_scalar::<f32>().unwrap();
        assert!(after > before * 1.05, "loss {before} -> {after}");
        // A random push of the same size raises it much less (seeded:
        // candle's own generator cannot be, and the comparison below
        // depends on the draw).
        let noise = agesynth_core::random::seeded_uniform(
            8,
            -eps,
            eps,
            x.shape(),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let random = task
            .loss(&idx, &(&x + noise).unwrap())
            .unwrap()
            .0
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            after - before > 2.0 * (random - before).abs(),
            "{before} {random} {after}"
        );
        // Seeded by the step.
        let again = task.adversarial_inputs(21, &idx, &x).unwrap();
        assert_eq!(max_abs(&(&again - &adv).unwrap()), 0.0);
        // And it trains on them.
        let r = task.step(22).unwrap();
        assert!(r.losses[0].1.is_finite());
        // Out-of-range settings are refused.
        let mut bad = cfg.clone();
        bad.adversarial_epsilon = 0.1;
        bad.adversarial_steps = 0;
        assert!(CriticTask::new(bad.clone(), f.clone(), None, &Device::Cpu).is_err());
        bad.adversarial_steps = 1;
        bad.adversarial_epsilon = f64::NAN;
        assert!(CriticTask::new(bad, f, None, &Device::Cpu).is_err());
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn a_critic_can_start_from_a_trained_one_of_its_config_only() {
        let f = Arc::new(faces(32, 16));
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 10, 3);
        cfg.batch = 16;
        let mut trained = CriticTask::new(cfg.clone(), f.clone(), None, &Device::Cpu).unwrap();
        for s in 1..=5 {
            trained.step(s).unwrap();
        }
        let file = dir.path().join("c.safetensors");
        trained.export(&file).unwrap();
        let mut other = cfg.clone();
        other.seed = 99;
        let mut task = CriticTask::new(other, f.clone(), None, &Device::Cpu).unwrap();
        let x = f.batch(&[0, 1, 2], &[], &Device::Cpu).unwrap().images;
        let read = |t: &CriticTask| t.age_critic().unwrap().logits(&x).unwrap();
        assert!(max_abs(&(read(&task) - read(&trained)).unwrap()) > 1e-4);
        task.init_from(&file).unwrap();
        assert_eq!(max_abs(&(read(&task) - read(&trained)).unwrap()), 0.0);
        // Another config is refused, naming the file.
        let mut blurred = cfg;
        blurred.model.input_blur = 1.0;
        let mut t = CriticTask::new(blurred, f, None, &Device::Cpu).unwrap();
        let msg = t.init_from(&file).unwrap_err().to_string();
        assert!(
            msg.contains("c.safetensors") && msg.contains("another config"),
            "{msg}"
        );
    }

    #[test]
    fn input_noise_has_the_asked_spread_and_repeats_from_the_seed() {
        let f = Arc::new(faces(32, 16));
        let mut cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 10, 3);
        cfg.batch = 16;
        let mut clean = CriticTask::new(cfg.clone(), f.clone(), None, &Device::Cpu).unwrap();
        cfg.input_noise = 0.1;
        let mut noisy = CriticTask::new(cfg.clone(), f.clone(), None, &Device::Cpu).unwrap();
        let mut again = CriticTask::new(cfg, f, None, &Device::Cpu).unwrap();
        let (i0, x0) = clean.draw(7).unwrap();
        let (i1, x1) = noisy.draw(7).unwrap();
        let (_, x2) = again.draw(7).unwrap();
        assert_eq!(i0, i1);
        let d: Vec<f32> = (&x1 - &x0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let n = d.len() as f64;
        let mean = d.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = d.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.005, "{mean}");
        assert!((var.sqrt() - 0.1).abs() < 0.003, "{}", var.sqrt());
        let same = (&x1 - &x2).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(same.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn an_age_critic_for_one_gender_draws_only_that_gender() {
        let mut raw = faces(32, 16);
        // Faces 0, 4, 8, … female; the rest male or unlabelled.
        let genders: Vec<Option<Gender>> = (0..32)
            .map(|i| match i % 4 {
                0 => Some(Gender::Female),
                1 => None,
                _ => Some(Gender::Male),
            })
            .collect();
        raw.set_genders(genders).unwrap();
        let f = Arc::new(raw);
        let mut cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 10, 3);
        cfg.batch = 8;
        cfg.only_gender = Some(Gender::Female);
        let mut task = CriticTask::new(cfg.clone(), f.clone(), None, &Device::Cpu).unwrap();
        let mut seen = std::collections::HashSet::new();
        for step in 1..=4 {
            let (idx, _) = task.draw(step).unwrap();
            assert!(idx.iter().all(|i| i % 4 == 0), "{idx:?}");
            seen.extend(idx);
        }
        assert_eq!(seen.len(), 8, "every female face is drawn: {seen:?}");
        // No face of the asked gender: a clear error.
        let unlabelled = Arc::new(faces(8, 16));
        assert!(CriticTask::new(cfg, unlabelled, None, &Device::Cpu).is_err());
    }

    #[test]
    fn centred_descriptors_lose_the_common_part_and_have_unit_length() {
        // Two descriptors sharing a large common part (10, 10) are close;
        // centred on their mean they point opposite ways.
        let rows = Tensor::new(&[[10f32, 10.0, 1.0], [10.0, 10.0, -1.0]], &Device::Cpu).unwrap();
        let mean = rows.mean_keepdim(0).unwrap();
        let c = centre_descriptors(&rows, &mean)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(c, vec![vec![0.0, 0.0, 1.0], vec![0.0, 0.0, -1.0]]);
        // A row equal to the mean stays finite.
        let same = centre_descriptors(&mean, &mean)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(same[0].iter().all(|v| v.is_finite()));
    }

    #[test]
    fn the_identity_critic_needs_and_follows_its_teacher() {
        let f = Arc::new(faces(16, 16));
        let cfg = CriticTrainConfig::new(CriticConfig::tiny_identity(), 80, 2);
        assert!(CriticTask::new(cfg.clone(), f.clone(), None, &Device::Cpu).is_err());
        let bad = Tensor::zeros((3, 8), DType::F32, &Device::Cpu).unwrap();
        assert!(CriticTask::new(cfg.clone(), f.clone(), Some(bad), &Device::Cpu).is_err());
        // Teacher: +1 for the dark faces, −1 for the bright ones.
        let t: Vec<f32> = (0..16)
            .flat_map(|i| vec![if i % 2 == 0 { 1.0 } else { -1.0 }; 8])
            .collect();
        let teacher = Tensor::from_vec(t, (16, 8), &Device::Cpu).unwrap();
        let mut task =
            CriticTask::new(cfg, f.clone(), Some(teacher.clone()), &Device::Cpu).unwrap();
        let first = task.step(1).unwrap().losses[0].1;
        let mut last = first;
        for s in 2..=80 {
            last = task.step(s).unwrap().losses[0].1;
        }
        assert!(last < first * 0.2, "distillation loss {first} -> {last}");
        let r = evaluate_identity(
            task.identity_critic().unwrap(),
            0.6,
            &f,
            &teacher,
            &Device::Cpu,
        )
        .unwrap();
        assert!(r.teacher_l2.unwrap() < 1.0, "{r:?}");
    }

    #[test]
    fn a_mobilenet_critic_starts_from_a_backbone_file_and_is_calibrated() {
        let dev = Device::Cpu;
        let f = Arc::new(faces(8, 16));
        let model = CriticConfig::tiny_identity_mobilenet();
        let teacher = Tensor::zeros((8, model.feature_dim()), DType::F32, &dev).unwrap();
        let cfg = CriticTrainConfig::new(model, 10, 5);
        let mut task = CriticTask::new(cfg, f.clone(), Some(teacher.clone()), &dev).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Seeded, fan-in scaled weights (candle's own generator cannot be
        // seeded, and unscaled ones blow the features up until f32 cannot
        // centre them): the features stay of order one, run after run.
        let mut backbone: HashMap<String, Tensor> =
            agesynth_nn::mobilenet::MobileNetV1::tensor_shapes()
                .into_iter()
                .enumerate()
                .map(|(i, (n, s))| {
                    let (centre, spread) = if n.ends_with("scale") {
                        (1.0, 0.1)
                    } else if n.ends_with("bias") {
                        (0.0, 0.1)
                    } else {
                        (0.0, (2.0 / s[1..].iter().product::<usize>() as f64).sqrt())
                    };
                    // Uniform of that spread (half-width √3·spread).
                    let half = spread * 3f64.sqrt();
                    let t = agesynth_core::random::seeded_uniform(
                        700 + i as u64,
                        centre - half,
                        centre + half,
                        s.as_slice(),
                        DType::F32,
                        &dev,
                    )
                    .unwrap();
                    (n, t)
                })
                .collect();
        let file = dir.path().join("backbone.safetensors");
        agesynth_core::io::save_tensors(&file, &backbone, None).unwrap();
        task.init_backbone(&file, 8).unwrap();
        let vars = crate::params::snapshot(task.vars());
        let diff = (&vars["trunk.blocks.3.pointwise"] - &backbone["blocks.3.pointwise"]).unwrap();
        assert_eq!(max_abs(&diff), 0.0, "the trunk holds the file's weights");
        // Calibrated: the faces' descriptors are centred, of mean length 1.
        let x = f
            .batch(&(0..8).collect::<Vec<_>>(), &[], &dev)
            .unwrap()
            .images;
        let e = task.identity_critic().unwrap().embed(&x).unwrap();
        // (The mean's length against descriptors of length 1; f32 rounding
        // of saturated features leaves a little.)
        let mean = e
            .mean(0)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap();
        let mean = mean.to_scalar::<f32>().unwrap();
        assert!(mean < 0.05, "{mean}");
        let norms: Vec<f32> = e
            .sqr()
            .unwrap()
            .sum(1)
            .unwrap()
            .sqrt()
            .unwrap()
            .to_vec1()
            .unwrap();
        let avg = norms.iter().sum::<f32>() / norms.len() as f32;
        assert!((avg - 1.0).abs() < 1e-2, "{norms:?}");
        // A file with a tensor more, or one less, is refused.
        backbone.insert(
            "head.weight".into(),
            Tensor::zeros(3, DType::F32, &dev).unwrap(),
        );
        agesynth_core::io::save_tensors(&file, &backbone, None).unwrap();
        let err = task.init_backbone(&file, 8).unwrap_err().to_string();
        assert!(
            err.contains("head.weight") && err.contains("backbone.safetensors"),
            "{err}"
        );
        backbone.remove("head.weight");
        backbone.remove("stem");
        agesynth_core::io::save_tensors(&file, &backbone, None).unwrap();
        assert!(task.init_backbone(&file, 8).is_err());
        // A convolutional critic has no MobileNet to start.
        let conv = CriticTrainConfig::new(CriticConfig::tiny_identity(), 10, 5);
        let t8 = Tensor::zeros((8, 8), DType::F32, &dev).unwrap();
        let mut conv = CriticTask::new(conv, f, Some(t8), &dev).unwrap();
        assert!(conv.init_backbone(&file, 8).is_err());
    }

    #[test]
    fn a_resumed_critic_run_repeats_the_straight_one() {
        let f = Arc::new(faces(24, 16));
        let mut cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 10, 3);
        cfg.batch = 8;
        let mut a = CriticTask::new(cfg.clone(), f.clone(), None, &Device::Cpu).unwrap();
        for s in 1..=4 {
            a.step(s).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let run = crate::RunDir::open(dir.path()).unwrap();
        run.save_checkpoint(4, &a.checkpoint().unwrap(), &serde_json::json!({}), 2)
            .unwrap();
        let mut b = CriticTask::new(cfg, f, None, &Device::Cpu).unwrap();
        b.restore(&run.latest().unwrap().unwrap()).unwrap();
        let la = a.step(5).unwrap().losses[0].1;
        let lb = b.step(5).unwrap().losses[0].1;
        assert_eq!(la, lb);
    }

    #[test]
    fn the_schedule_warms_up_and_decays() {
        let cfg = CriticTrainConfig::new(CriticConfig::tiny_age(), 1000, 0);
        assert!(cfg.lr_at(1) < cfg.lr / 10.0);
        assert!((cfg.lr_at(20) - cfg.lr).abs() < 1e-9);
        assert!(cfg.lr_at(1000) <= cfg.lr / 99.0);
        assert!(cfg.lr_at(500) < cfg.lr && cfg.lr_at(500) > cfg.lr / 100.0);
    }
}
