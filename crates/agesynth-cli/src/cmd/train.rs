//! `agesynth train …`: training runs.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Instant,
};

use agesynth_core::{budget::MemoryBudget, candle_core::Device, AgeBins, DeviceSpec, FaceDataset};
use agesynth_cstylegan::CStyleGanConfig;
use agesynth_data::{DecodedCache, Split, SplitFractions, UtkFace};
use agesynth_train::{
    CStyleGanTask, CStyleGanTrainConfig, Outcome, RealFaces, RunDir, StopFlag, TrainTask, Trainer,
    TrainerOptions,
};
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};

/// Training commands.
// Parsed once per run: boxing the larger argument sets would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train the age-conditioned StyleGAN (stage 1) on UTKFace.
    Cstylegan(CStyleGanArgs),
    /// Train FaceGAN (stages 2-3): synthetic pairs plus real UTKFace faces.
    Facegan(facegan::FaceGanArgs),
    /// Train a critic the generators train against (an age classifier or a
    /// small identity embedder) on UTKFace's training split.
    Critic(critic::CriticArgs),
}

mod critic;
mod facegan;

/// Which faces of the dataset to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitChoice {
    /// The training side of the project's fixed 80/10/10 split (seed 0).
    Train,
    /// Every face.
    All,
}

/// Precision of the convolutions' matrix products (`--precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// f32 throughout.
    F32,
    /// bf16 inputs, f32 sums (AVX-512 BF16 CPUs).
    Bf16,
}

/// Run-folder and loop options shared by every trainer.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run folder (config, log, samples, checkpoints).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the run's newest intact checkpoint (its saved config
    /// wins over the model and optimiser flags); a folder with nothing to
    /// resume is an error.
    #[arg(
        long,
        default_value_if("resume_or_start", clap::builder::ArgPredicate::IsPresent, "true")
    )]
    pub resume: bool,
    /// Resume when the folder holds a checkpoint, else start a new run there
    /// (for schedulers that restart the same command).
    #[arg(long)]
    pub resume_or_start: bool,
    /// Seed of the weights, the data order and every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
    /// Precision of the convolutions' matrix products on the CPU: f32, or
    /// bf16 (inputs rounded to bf16, sums, weights and optimiser state in
    /// f32) on CPUs with AVX-512 BF16. On the project's Zen 5 machine bf16
    /// is slower (its `vdpbf16ps` runs at a quarter of the FMA rate; see
    /// BENCHMARKS.md), so f32 stays the default.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Log every N steps.
    #[arg(long, default_value_t = 20)]
    pub log_every: u64,
    /// Sample grid every N steps (0: never).
    #[arg(long, default_value_t = 500)]
    pub sample_every: u64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Keep the newest N checkpoints.
    #[arg(long, default_value_t = 3)]
    pub keep: usize,
    /// No progress bar or progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Stop when any logged loss exceeds this in magnitude (divergence; 0:
    /// stop on NaN/inf only). Raise it when a penalty starts large, e.g. R1
    /// switched on in a resumed run.
    #[arg(long, default_value_t = 1e4)]
    pub divergence_limit: f32,
}

/// Which real faces to train on, shared by every trainer.
#[derive(Debug, Args)]
pub struct RealFaceArgs {
    /// Decoded-face cache file (built on first use); default
    /// `<out>/../cache/<data folder>-<size>.agscache`.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Which faces of the dataset to train on.
    #[arg(long, value_enum, default_value = "train")]
    pub split: SplitChoice,
    /// Use only the first N faces of the split (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Options of `agesynth train cstylegan`.
#[derive(Debug, Args)]
pub struct CStyleGanArgs {
    /// UTKFace folder (aligned chips), e.g. ../shared/data/utkface.
    #[arg(long)]
    pub data: PathBuf,
    /// Model preset.
    #[arg(long, value_enum, default_value_t = super::Preset::Cpu64)]
    pub preset: super::Preset,
    /// Train until this step.
    #[arg(long, default_value_t = 100_000)]
    pub steps: u64,
    /// Real images per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Learning rate of G and D.
    #[arg(long)]
    pub lr: Option<f64>,
    /// R1 weight γ (default: 0.0002·size²/batch, at least 0.1). Given with
    /// `--resume`, it replaces the run's saved one (a discriminator that
    /// has started to win can be held back without starting over).
    #[arg(long)]
    pub r1_gamma: Option<f64>,
    /// Lazy R1 interval in steps (0 disables R1).
    #[arg(long, default_value_t = 16)]
    pub r1_every: u64,
    /// Condition on gender as well as age (UTKFace's labels): a latent keeps
    /// its gender (the sign of its first coordinate) at every age group.
    #[arg(long)]
    pub gender_conditioned: bool,
    /// The coarsest synthesis layers that read each latent's age-free `w`,
    /// in training and when rendering: age then reaches only the finer
    /// styles [default: 0]
    #[arg(long)]
    pub age_free_layers: Option<usize>,
    /// With age-free layers: the groups from this index up read the
    /// age-free `w` there; younger groups keep their own (1: a 0–9 render
    /// may change head shape and proportions). Applies to a resumed run
    /// too (the weights do not depend on it) [default: 0, every group]
    #[arg(long)]
    pub age_free_from_group: Option<usize>,
    /// Warm start: a trained generator (weights file with its sidecar, or a
    /// run or checkpoint folder) whose weights G and its EMA start from;
    /// weights the new config adds (gender) start neutral. D starts fresh.
    #[arg(long)]
    pub init_generator: Option<PathBuf>,
    /// Warm start of D: a trained discriminator (a weights file such as
    /// `cstylegan-cpu64-discriminator.safetensors`, or a checkpoint folder,
    /// whose `discriminator.safetensors` is read) whose weights D starts
    /// from, so that a warm-started G keeps the critic it was trained
    /// against (then `--d-warmup-steps` is not needed)
    #[arg(long)]
    pub init_discriminator: Option<PathBuf>,
    /// Train D alone for this many steps first (a fresh D beside a
    /// warm-started G) [default: 0]
    #[arg(long)]
    pub d_warmup_steps: Option<u64>,
    /// Weight of the cross-age identity term: each G-step latent is also
    /// rendered at a second age group, and the identity critic's descriptors
    /// of the two renders are pulled together [default: 0]
    #[arg(long)]
    pub cross_age_identity: Option<f64>,
    /// The cross-age term's second group: every render is paired with the
    /// same latent at this group index (2: 20–29), a render of that group
    /// with any other; without it the second group is any other one. On
    /// resume it replaces the saved value
    #[arg(long)]
    pub cross_age_anchor: Option<usize>,
    /// Make the cross-age term contrastive at this temperature: each render
    /// must lie closer to its own second render than to the batch's other
    /// latents' (identification, not only closeness; 0: the plain mean
    /// squared distance). On resume it replaces the saved value
    #[arg(long)]
    pub cross_age_temperature: Option<f64>,
    /// With the contrastive form: keep the second renders' descriptors of
    /// this many earlier latents as further identities to tell each render
    /// from (a queue, saved in checkpoints; 0: the batch's only). On resume
    /// it replaces the saved value
    #[arg(long)]
    pub cross_age_queue: Option<usize>,
    /// With the contrastive form: take each render's descriptor less a
    /// running mean of its age group's (this decay per step, e.g. 0.98;
    /// saved in checkpoints), so that what the identity critic reads of age
    /// neither helps nor hurts telling latents apart and renders gain
    /// nothing by ageing less (0: no centring). On resume it replaces the
    /// saved value
    #[arg(long)]
    pub cross_age_centre: Option<f64>,
    /// The identity critic of the cross-age term (`train critic --kind
    /// identity`) [default: the weights folder's critic-identity64.safetensors]
    #[arg(long)]
    pub identity_critic: Option<PathBuf>,
    /// Weight of the age-critic term: each G-step render's condition (its
    /// gender and age group, for an age-given-gender critic and a
    /// gender-conditioned model) is asked of a frozen age critic
    /// [default: 0]
    #[arg(long)]
    pub age_critic_weight: Option<f64>,
    /// The age critic of that term (`train critic --kind age-gender` or
    /// `--kind age`) [default: the weights folder's
    /// critic-age-gender64.safetensors]
    #[arg(long)]
    pub age_critic: Option<PathBuf>,
    /// Standard deviation (pixels) of the blur through which the age critic
    /// sees the renders (0: none) [default: 1]
    #[arg(long)]
    pub age_critic_blur: Option<f64>,
    /// The age-critic term asks renders of this group index and older for
    /// their gender as well as their age; younger ones for their age only
    /// (1: not 0–9, where asking for a boy draws moustaches) [default: 0]
    #[arg(long)]
    pub age_critic_gender_from_group: Option<usize>,
    #[command(flatten)]
    pub real: RealFaceArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs a training command.
pub fn run(cmd: TrainCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TrainCommand::Cstylegan(a) => train_cstylegan(a),
        TrainCommand::Facegan(a) => facegan::train_facegan(a),
        TrainCommand::Critic(a) => critic::train_critic(a),
    }
}

fn default_cache(out: &Path, data: &Path, size: usize) -> PathBuf {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "faces".to_string());
    parent.join("cache").join(format!("{name}-{size}.agscache"))
}

/// The device, the run folder (opened as its only writer: a second trainer
/// on it is refused) and whether it already holds a checkpoint (refusing one
/// without `--resume`, and `--resume` with nothing to resume unless
/// `--resume-or-start`). SIGINT and SIGTERM are handled from here on: a stop
/// during loading ends the command cleanly, one during training saves a
/// checkpoint.
fn open_run(a: &RunArgs) -> anyhow::Result<(Device, RunDir, bool)> {
    StopFlag::ctrlc()?;
    let device = a.device.open().context("opening the device")?;
    if a.precision == Precision::Bf16 {
        agesynth_nn::kernels::set_matmul_precision(agesynth_nn::kernels::MatmulPrecision::Bf16)
            .map_err(|e| anyhow::anyhow!("--precision bf16: {e}"))?;
        eprintln!("convolution matrix products in bf16 (f32 sums, weights and optimiser state)");
    }
    let run =
        RunDir::open(&a.out).with_context(|| format!("opening run folder {}", a.out.display()))?;
    let report = run.open_report();
    if let Some(pid) = report.stale_lock {
        eprintln!(
            "note: {} was locked by process {pid}, which is gone: lock taken over",
            a.out.display()
        );
    }
    if !report.removed.is_empty() {
        eprintln!(
            "removed {} leftover(s) of an interrupted run: {}",
            report.removed.len(),
            report
                .removed
                .iter()
                .map(|p| p.strip_prefix(&a.out).unwrap_or(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let any_checkpoint = !run.checkpoint_steps()?.is_empty();
    if any_checkpoint && !a.resume {
        bail!(
            "{} already holds a run with checkpoints: pass --resume to continue it, or choose another --out",
            a.out.display()
        );
    }
    if a.resume && !any_checkpoint && !a.resume_or_start {
        bail!(
            "--resume: {} holds no checkpoint to resume; check the folder, or pass --resume-or-start to start a new run there when there is none",
            a.out.display()
        );
    }
    if a.resume && any_checkpoint {
        let found = run.find_latest()?;
        if found.checkpoint.is_none() {
            bail!(
                "--resume: none of the {} checkpoint(s) of {} is intact (newest: {}); move the folder aside to start again",
                found.broken.len(),
                a.out.display(),
                found.broken.first().map(|b| b.to_string()).unwrap_or_default()
            );
        }
    }
    Ok((device, run, any_checkpoint))
}

/// UTKFace at `data` through the decoded cache at the model's `size`: the
/// faces of the chosen split, in memory.
fn load_real_faces(
    data: &Path,
    size: usize,
    bins: &AgeBins,
    a: &RealFaceArgs,
    out: &Path,
) -> anyhow::Result<RealFaces> {
    load_real_faces_split(data, size, bins, a, out, SplitPart::Training)
}

/// Which part of the data a run loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SplitPart {
    /// What `--split` says (the training split, or all faces).
    Training,
    /// The validation split (held out from training, apart from the test
    /// split the evaluation uses).
    Val,
}

fn load_real_faces_split(
    data: &Path,
    size: usize,
    bins: &AgeBins,
    a: &RealFaceArgs,
    out: &Path,
    part: SplitPart,
) -> anyhow::Result<RealFaces> {
    let t0 = Instant::now();
    let utk = UtkFace::open(data).with_context(|| format!("opening {}", data.display()))?;
    if utk.is_empty() {
        bail!("{} holds no UTKFace images", data.display());
    }
    let cache_path = a
        .cache
        .clone()
        .unwrap_or_else(|| default_cache(out, data, size));
    // A stop (SIGINT, SIGTERM) during the build ends it at once, leaving no
    // temporary file and any previous cache intact.
    let stop = StopFlag::process().unwrap_or_default();
    let (cache, built) = DecodedCache::open_or_build_cancellable(
        &utk,
        size as u32,
        &cache_path,
        "utkface",
        0,
        &|| stop.is_set(),
    )
    .with_context(|| format!("decoded cache {}", cache_path.display()))?;
    let mut indices: Vec<usize> = match (part, a.split) {
        (SplitPart::Val, _) => Split::new(&cache, SplitFractions::default(), 0)?.val,
        (SplitPart::Training, SplitChoice::Train) => {
            Split::new(&cache, SplitFractions::default(), 0)?.train
        }
        (SplitPart::Training, SplitChoice::All) => (0..cache.len()).collect(),
    };
    if let Some(l) = a.limit {
        indices.truncate(l);
    }
    MemoryBudget::from_env()?.check(
        format!("{} faces of {size}x{size} in memory", indices.len()),
        agesynth_core::budget::product(&[indices.len() as u64, 3, size as u64, size as u64]),
        "train on fewer faces with --limit",
    )?;
    stop.check("loading the faces")?;
    let faces = RealFaces::load(&cache, size as u32, bins, Some(&indices))?;
    eprintln!(
        "{} faces at {size}px ({} skipped) from {} in {:.1} s (cache {} {})",
        faces.len(),
        faces.skipped().len(),
        data.display(),
        t0.elapsed().as_secs_f64(),
        cache_path.display(),
        if built { "built" } else { "reused" }
    );
    // Every bad file, not only the first: each reason names its file.
    for s in faces.skipped() {
        eprintln!("  skipped face {}: {}", s.index, s.reason);
    }
    Ok(faces)
}

/// Runs `task` to `steps` with the loop options of `a` (SIGINT or SIGTERM
/// saves and stops), writes the final sample grid, exports the generator to
/// ship with `export` at `<out>/generator_ema.safetensors`, and reports.
/// The step's memory (from the run's saved config) is checked against the
/// budget first. Exit code 0 when finished, 128 + the signal when stopped
/// (130 for SIGINT, 143 for SIGTERM).
fn run_task<T: TrainTask>(
    run: &RunDir,
    a: &RunArgs,
    steps: u64,
    task: &mut T,
    export_name: &str,
    export: impl FnOnce(&T, &Path) -> agesynth_train::Result<()>,
) -> anyhow::Result<ExitCode> {
    let opts = TrainerOptions {
        total_steps: steps,
        log_every: a.log_every,
        sample_every: a.sample_every,
        checkpoint_every: a.checkpoint_every,
        keep_last: a.keep,
        divergence_limit: (a.divergence_limit > 0.0).then_some(a.divergence_limit),
        progress: !a.quiet,
    };
    if let Ok(cfg) = run.load_config::<serde_json::Value>() {
        agesynth_train::budget::check_training(&MemoryBudget::from_env()?, &cfg)?;
    }
    let stop = StopFlag::ctrlc()?;
    let mut trainer = Trainer::new(run.clone(), opts).with_stop(stop.clone());
    let summary = trainer.run(task, a.resume)?;
    trainer.write_sample(task, summary.step)?;
    let weights = run.root().join(export_name);
    export(task, &weights)?;
    eprintln!(
        "{} at step {} ({} images, {:.0} s in all; {:.2} images/s this session); weights: {}",
        match summary.outcome {
            Outcome::Finished => "finished",
            Outcome::Interrupted => "interrupted",
        },
        summary.step,
        summary.images,
        summary.wall_s,
        summary.images_per_s,
        weights.display()
    );
    Ok(match summary.outcome {
        Outcome::Finished => ExitCode::SUCCESS,
        Outcome::Interrupted => ExitCode::from(stop.exit_code().max(1)),
    })
}

/// The cStyleGAN's loss-term arguments (`--cross-age-identity`,
/// `--cross-age-anchor`, `--cross-age-temperature`, `--cross-age-queue`, `--cross-age-centre`, `--identity-critic`, `--age-critic-weight`, `--age-critic`,
/// `--age-critic-blur`, `--age-critic-gender-from-group`) applied to `cfg`:
/// a new run's config, or a resumed run's saved one (the schedule of a run
/// in stages), where they replace the saved values, are said and are saved
/// for the next resume. A term switched on without its critic gets the
/// weights folder's.
fn apply_loss_args(cfg: &mut CStyleGanTrainConfig, a: &CStyleGanArgs) -> anyhow::Result<()> {
    if let Some(w) = a.cross_age_identity {
        cfg.cross_age_identity = w;
        if w > 0.0 && (cfg.identity_critic.is_none() || a.identity_critic.is_some()) {
            cfg.identity_critic = Some(a.identity_critic.clone().unwrap_or_else(|| {
                agesynth_pipeline::weights::default_weights_dir()
                    .join("critic-identity64.safetensors")
            }));
        }
    }
    if let Some(t) = a.cross_age_temperature {
        if !(t.is_finite() && t >= 0.0) {
            bail!("--cross-age-temperature {t} must be a finite number ≥ 0");
        }
        cfg.cross_age_temperature = t;
    }
    if let Some(q) = a.cross_age_queue {
        if q > 0 && cfg.cross_age_temperature == 0.0 {
            bail!("--cross-age-queue {q} needs the contrastive form (--cross-age-temperature > 0)");
        }
        cfg.cross_age_queue = q;
    }
    if let Some(c) = a.cross_age_centre {
        if !(0.0..1.0).contains(&c) {
            bail!("--cross-age-centre {c} must be a decay in [0, 1)");
        }
        if c > 0.0 && cfg.cross_age_temperature == 0.0 {
            bail!(
                "--cross-age-centre {c} needs the contrastive form (--cross-age-temperature > 0)"
            );
        }
        cfg.cross_age_centre = c;
    }
    if let Some(k) = a.cross_age_anchor {
        if k >= cfg.model.num_groups() {
            bail!(
                "--cross-age-anchor {k} must name a group below {}",
                cfg.model.num_groups()
            );
        }
        cfg.cross_age_anchor = Some(k);
    }
    if let Some(w) = a.age_critic_weight {
        cfg.age_critic = w;
    }
    if let Some(b) = a.age_critic_blur {
        cfg.age_critic_blur = b;
    }
    if let Some(k) = a.age_critic_gender_from_group {
        cfg.age_critic_gender_from_group = k;
    }
    if cfg.age_critic > 0.0 && (a.age_critic.is_some() || cfg.age_critic_file.is_none()) {
        cfg.age_critic_file = Some(a.age_critic.clone().unwrap_or_else(|| {
            agesynth_pipeline::weights::default_weights_dir()
                .join("critic-age-gender64.safetensors")
        }));
    }
    for (name, v) in [
        ("--cross-age-identity", cfg.cross_age_identity),
        ("--age-critic-weight", cfg.age_critic),
        ("--age-critic-blur", cfg.age_critic_blur),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a finite number ≥ 0, got {v}");
        }
    }
    Ok(())
}

/// `--r1-gamma` must be a finite number ≥ 0.
fn check_r1_gamma(g: f64) -> anyhow::Result<()> {
    if !(g.is_finite() && g >= 0.0) {
        bail!("--r1-gamma must be a finite number ≥ 0, got {g}");
    }
    Ok(())
}

fn train_cstylegan(a: CStyleGanArgs) -> anyhow::Result<ExitCode> {
    let (device, run, has_checkpoint) = open_run(&a.run)?;
    let mut overridden = false;
    let cfg: CStyleGanTrainConfig = if a.run.resume && run.config_path().is_file() {
        let mut saved: CStyleGanTrainConfig = run.load_config()?;
        if saved.model.preset != a.preset.name()
            || saved.batch != a.batch
            || saved.seed != a.run.seed
        {
            eprintln!(
                "resuming with the run's saved config (preset {}, batch {}, seed {}); --preset/--batch/--seed are ignored",
                saved.model.preset, saved.batch, saved.seed
            );
        }
        let before = saved.clone();
        if let Some(f) = a.age_free_from_group {
            saved.model.age_free_from_group = f;
            saved.model.validate()?;
            if f != before.model.age_free_from_group {
                eprintln!(
                    "resuming with age-free layers from group {} (was {})",
                    f, before.model.age_free_from_group
                );
            }
        }
        apply_loss_args(&mut saved, &a)?;
        let losses_changed = saved != before;
        if let Some(g) = a.r1_gamma {
            check_r1_gamma(g)?;
            if g != saved.r1_gamma {
                eprintln!("resuming with R1 weight γ {g} (was {})", saved.r1_gamma);
            }
            saved.r1_gamma = g;
        }
        overridden = saved != before;
        if losses_changed {
            eprintln!(
                "resuming with changed loss weights: cross-age identity {} → {} (anchor {:?} → {:?}, temperature {} → {}, queue {} → {}, centring {} → {}), age critic {} → {} ({}), blur {} → {}, gender asked from group {} → {}",
                before.cross_age_identity,
                saved.cross_age_identity,
                before.cross_age_anchor,
                saved.cross_age_anchor,
                before.cross_age_temperature,
                saved.cross_age_temperature,
                before.cross_age_queue,
                saved.cross_age_queue,
                before.cross_age_centre,
                saved.cross_age_centre,
                before.age_critic,
                saved.age_critic,
                saved.age_critic_file
                    .as_deref()
                    .map_or("none".to_string(), |p| p.display().to_string()),
                before.age_critic_blur,
                saved.age_critic_blur,
                before.age_critic_gender_from_group,
                saved.age_critic_gender_from_group
            );
        }
        saved
    } else {
        let mut model = CStyleGanConfig::preset(a.preset.name())?;
        model.gender_conditioned = a.gender_conditioned;
        model.age_free_layers = a.age_free_layers.unwrap_or(0);
        model.age_free_from_group = a.age_free_from_group.unwrap_or(0);
        model.validate()?;
        let mut c = CStyleGanTrainConfig::new(model, a.batch, a.run.seed);
        c.d_warmup_steps = a.d_warmup_steps.unwrap_or(0);
        c.init_generator = a.init_generator.clone();
        c.init_discriminator = a.init_discriminator.as_deref().map(|p| {
            if p.is_dir() {
                p.join("discriminator.safetensors")
            } else {
                p.to_path_buf()
            }
        });
        apply_loss_args(&mut c, &a)?;
        if let Some(lr) = a.lr {
            c.g_lr = lr;
            c.d_lr = lr;
        }
        if let Some(g) = a.r1_gamma {
            check_r1_gamma(g)?;
            c.r1_gamma = g;
        }
        c.r1_every = a.r1_every;
        c
    };
    let faces = load_real_faces(
        &a.data,
        cfg.model.image_size,
        &cfg.model.bins()?,
        &a.real,
        &a.run.out,
    )?;
    if !has_checkpoint || overridden {
        run.save_config(&cfg)?;
    }
    let critic = match &cfg.identity_critic {
        Some(p) if cfg.cross_age_identity > 0.0 => {
            let (c, _) = agesynth_train::critic::load_identity_critic(p, &device)
                .with_context(|| format!("loading the identity critic {}", p.display()))?;
            eprintln!("cross-age identity term: {}", p.display());
            Some(Arc::new(c))
        }
        _ => None,
    };
    let age_critic = match &cfg.age_critic_file {
        Some(p) if cfg.age_critic > 0.0 => {
            let (c, _) = agesynth_train::critic::load_age_critic(p, &device)
                .with_context(|| format!("loading the age critic {}", p.display()))?;
            eprintln!(
                "age-critic term: {} (weight {}, {})",
                p.display(),
                cfg.age_critic,
                if c.by_gender() {
                    "gender and age"
                } else {
                    "age"
                }
            );
            Some(Arc::new(c))
        }
        _ => None,
    };
    let mut task = CStyleGanTask::new(cfg, Arc::new(faces), &device)?;
    if let Some(c) = critic {
        task = task.with_identity_critic(c);
    }
    if let Some(c) = age_critic {
        task = task
            .with_age_critic(c)
            .context("the age critic does not fit the model")?;
    }
    let init = task.config().init_generator.clone();
    if let (Some(p), false) = (&init, has_checkpoint) {
        let (_, vars) = agesynth_cstylegan::load_generator(p, &device)
            .with_context(|| format!("loading the initial generator {}", p.display()))?;
        task.init_generator_from(&vars)
            .with_context(|| format!("initialising the generator from {}", p.display()))?;
        eprintln!("generator initialised from {}", p.display());
    }
    let init = task.config().init_discriminator.clone();
    if let (Some(p), false) = (&init, has_checkpoint) {
        task.init_discriminator_from(p)
            .with_context(|| format!("initialising the discriminator from {}", p.display()))?;
        eprintln!("discriminator initialised from {}", p.display());
    }
    run_task(
        &run,
        &a.run,
        a.steps,
        &mut task,
        "generator_ema.safetensors",
        |t, p| t.export_ema(p),
    )
}
