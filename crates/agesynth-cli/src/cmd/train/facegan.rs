//! `agesynth train facegan`: the semi-supervised FaceGAN trainer.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Instant};

use agesynth_core::{DeviceSpec, FaceDataset, FaceEmbedder};
use agesynth_data::{DecodedCache, Split, SplitFractions, UtkFace};
use agesynth_face::{DlibFaceEmbedder, EmbedderConfig};
use agesynth_facegan::FaceGanConfig;
use agesynth_train::{
    FaceGanTask, FaceGanTrainConfig, Outcome, RealFaces, RunDir, StopFlag, SynthPairs, Trainer,
    TrainerOptions,
};
use anyhow::{bail, Context};
use clap::Args;

use super::{default_cache, SplitChoice};

/// Options of `agesynth train facegan`.
#[derive(Debug, Args)]
pub struct FaceGanArgs {
    /// UTKFace folder (aligned chips), e.g. ../shared/data/utkface; needed
    /// unless --synthetic-fraction is 1.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Synthetic-pairs folder written by `agesynth synth-pairs`; needed
    /// unless --synthetic-fraction is 0.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Share of each batch drawn from the synthetic pairs (0: real only,
    /// 1: synthetic only).
    #[arg(long, default_value_t = 0.5)]
    pub synthetic_fraction: f64,
    /// Model preset: tiny, cpu64, paper128 or gpu256.
    #[arg(long, default_value = "cpu64")]
    pub preset: String,
    /// Age at the bottleneck: modulation or concat.
    #[arg(long, default_value = "modulation")]
    pub bottleneck: String,
    /// Run folder (config, log, samples, checkpoints).
    #[arg(long)]
    pub out: PathBuf,
    /// Train until this step.
    #[arg(long, default_value_t = 50_000)]
    pub steps: u64,
    /// Inputs per step (real and synthetic together).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Continue from the run's latest checkpoint (its saved config wins).
    #[arg(long)]
    pub resume: bool,
    /// Seed of the weights, data order and targets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Identity network weights (dlib face recognition); the identity term
    /// is off when the file is absent.
    #[arg(long, default_value = "weights/face_recognition.safetensors")]
    pub identity_weights: PathBuf,
    /// Decoded-face cache file (built on first use).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Which real faces to train on.
    #[arg(long, value_enum, default_value = "train")]
    pub split: SplitChoice,
    /// Use only the first N real faces of the split (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Learning rate of G and D.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight γ of the lazy R1 penalty on real images (0: off) [default: 1]
    #[arg(long)]
    pub r1_gamma: Option<f64>,
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
}

/// Runs `agesynth train facegan`.
pub fn train_facegan(a: FaceGanArgs) -> anyhow::Result<ExitCode> {
    let device = a
        .device
        .parse::<DeviceSpec>()?
        .open()
        .context("opening the device")?;
    let run =
        RunDir::open(&a.out).with_context(|| format!("opening run folder {}", a.out.display()))?;
    let has_checkpoint = run.latest()?.is_some();
    if has_checkpoint && !a.resume {
        bail!(
            "{} already holds a run with checkpoints: pass --resume to continue it, or choose another --out",
            a.out.display()
        );
    }
    let cfg: FaceGanTrainConfig = if a.resume && run.config_path().is_file() {
        run.load_config()?
    } else {
        let mut model = FaceGanConfig::preset(&a.preset)?;
        model.bottleneck_age = match a.bottleneck.as_str() {
            "modulation" => agesynth_facegan::BottleneckAge::Modulation,
            "concat" => agesynth_facegan::BottleneckAge::Concat,
            other => bail!("--bottleneck must be modulation or concat, not `{other}`"),
        };
        let mut c = FaceGanTrainConfig::new(model, a.batch, a.seed);
        c.synthetic_fraction = a.synthetic_fraction;
        if let Some(lr) = a.lr {
            c.g_lr = lr;
            c.d_lr = lr;
        }
        if let Some(g) = a.r1_gamma {
            c.r1_gamma = g;
        }
        c
    };
    let size = cfg.model.image_size;
    let bins = cfg.model.bins()?;

    let real = if cfg.real_per_step() > 0 {
        let data = a
            .data
            .as_ref()
            .context("--data (UTKFace) is needed unless --synthetic-fraction is 1")?;
        let t0 = Instant::now();
        let utk = UtkFace::open(data).with_context(|| format!("opening {}", data.display()))?;
        if utk.is_empty() {
            bail!("{} holds no UTKFace images", data.display());
        }
        let cache_path = a
            .cache
            .clone()
            .unwrap_or_else(|| default_cache(&a.out, data, size));
        let (cache, _) = DecodedCache::open_or_build(&utk, size as u32, &cache_path, "utkface", 0)
            .with_context(|| format!("decoded cache {}", cache_path.display()))?;
        let mut indices: Vec<usize> = match a.split {
            SplitChoice::Train => Split::new(&cache, SplitFractions::default(), 0)?.train,
            SplitChoice::All => (0..cache.len()).collect(),
        };
        if let Some(l) = a.limit {
            indices.truncate(l);
        }
        let faces = RealFaces::load(&cache, size as u32, &bins, Some(&indices))?;
        eprintln!(
            "{} real faces at {size}px ({} skipped) in {:.1} s",
            faces.len(),
            faces.skipped().len(),
            t0.elapsed().as_secs_f64()
        );
        Some(Arc::new(faces))
    } else {
        None
    };
    let pairs = if cfg.synthetic_per_step() > 0 {
        let p = a
            .pairs
            .as_ref()
            .context("--pairs is needed unless --synthetic-fraction is 0")?;
        let sp = SynthPairs::open(p).with_context(|| format!("opening {}", p.display()))?;
        eprintln!(
            "{} synthetic identities from {}",
            sp.identities(),
            p.display()
        );
        Some(Arc::new(sp))
    } else {
        None
    };
    let embedder: Option<Box<dyn FaceEmbedder>> = if a.identity_weights.is_file() {
        let e = DlibFaceEmbedder::load(&EmbedderConfig::default(), &a.identity_weights, &device)
            .with_context(|| format!("loading {}", a.identity_weights.display()))?;
        Some(Box::new(e))
    } else {
        eprintln!(
            "no identity network at {}: the identity term is off",
            a.identity_weights.display()
        );
        None
    };

    if !has_checkpoint {
        run.save_config(&cfg)?;
    }
    let mut task = FaceGanTask::new(cfg, real, pairs, embedder, &device)?;
    let opts = TrainerOptions {
        total_steps: a.steps,
        log_every: a.log_every,
        sample_every: a.sample_every,
        checkpoint_every: a.checkpoint_every,
        keep_last: a.keep,
        divergence_limit: Some(1e4),
        progress: !a.quiet,
    };
    let mut trainer = Trainer::new(run.clone(), opts).with_stop(StopFlag::ctrlc()?);
    let summary = trainer.run(&mut task, a.resume)?;
    trainer.write_sample(&mut task, summary.step)?;
    let weights = run.root().join("generator_ema.safetensors");
    task.export_ema(&weights)?;
    eprintln!(
        "{} at step {} ({} images, {:.0} s in all; {:.2} images/s this session); generator: {}",
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
        Outcome::Interrupted => ExitCode::from(130),
    })
}
