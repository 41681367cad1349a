//! `agesynth train facegan`: the semi-supervised FaceGAN trainer.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use agesynth_core::FaceEmbedder;
use agesynth_face::{DlibFaceEmbedder, EmbedderConfig};
use agesynth_facegan::FaceGanConfig;
use agesynth_train::{FaceGanTask, FaceGanTrainConfig, SynthPairs};
use anyhow::{bail, Context};
use clap::Args;

use super::{load_real_faces, open_run, run_task, RealFaceArgs, RunArgs};

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
    /// Train until this step.
    #[arg(long, default_value_t = 50_000)]
    pub steps: u64,
    /// Inputs per step (real and synthetic together).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Identity network weights (dlib face recognition); default: the
    /// weights folder's (`$AGESYNTH_WEIGHTS`, `./weights`, else the
    /// repository's). The identity term is off when the file is absent.
    #[arg(long)]
    pub identity_weights: Option<PathBuf>,
    /// Train without the identity term (it costs the identity network's
    /// forward and backward pass on every output).
    #[arg(long)]
    pub no_identity: bool,
    /// Learning rate of G and D.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight γ of the lazy R1 penalty on real images (0: off) [default: 1]
    #[arg(long)]
    pub r1_gamma: Option<f64>,
    /// Weight of the age term: cross-entropy of the target group from the
    /// discriminator's auxiliary head (for G) and of the real groups (for
    /// D) [default: 1; ignored without the head]
    #[arg(long)]
    pub age_weight: Option<f64>,
    /// Weight of the cycle reconstruction of the real inputs [default: 10]
    #[arg(long)]
    pub cycle_weight: Option<f64>,
    /// Weight of the total variation of the outputs [default: 0]
    #[arg(long)]
    pub tv_weight: Option<f64>,
    /// A discriminator without the auxiliary age-classification head: the
    /// target age reaches G only through D's projection conditioning and
    /// the synthetic pairs (the age term is off).
    #[arg(long)]
    pub no_aux_classifier: bool,
    /// Show D the synthetic target images as real faces too.
    #[arg(long)]
    pub d_on_synthetic: bool,
    #[command(flatten)]
    pub real: RealFaceArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `agesynth train facegan`.
pub fn train_facegan(a: FaceGanArgs) -> anyhow::Result<ExitCode> {
    let (device, run, has_checkpoint) = open_run(&a.run)?;
    let cfg: FaceGanTrainConfig = if a.run.resume && run.config_path().is_file() {
        run.load_config()?
    } else {
        let mut model = FaceGanConfig::preset(&a.preset)?;
        model.bottleneck_age = match a.bottleneck.as_str() {
            "modulation" => agesynth_facegan::BottleneckAge::Modulation,
            "concat" => agesynth_facegan::BottleneckAge::Concat,
            other => bail!("--bottleneck must be modulation or concat, not `{other}`"),
        };
        let mut c = FaceGanTrainConfig::new(model, a.batch, a.run.seed);
        c.synthetic_fraction = a.synthetic_fraction;
        if let Some(lr) = a.lr {
            c.g_lr = lr;
            c.d_lr = lr;
        }
        if let Some(g) = a.r1_gamma {
            c.r1_gamma = g;
        }
        if let Some(w) = a.age_weight {
            c.weights.age = w;
        }
        if let Some(w) = a.cycle_weight {
            c.weights.cycle = w;
        }
        if let Some(w) = a.tv_weight {
            c.weights.total_variation = w;
        }
        if a.no_aux_classifier {
            c.model.d_aux_classifier = false;
            c.weights.age = 0.0;
        }
        c.d_on_synthetic = a.d_on_synthetic;
        c
    };
    let size = cfg.model.image_size;
    let bins = cfg.model.bins()?;

    let real = if cfg.real_per_step() > 0 {
        let data = a
            .data
            .as_ref()
            .context("--data (UTKFace) is needed unless --synthetic-fraction is 1")?;
        let faces = load_real_faces(data, size, &bins, &a.real, &a.run.out)?;
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
    let identity_weights = a.identity_weights.clone().unwrap_or_else(|| {
        agesynth_pipeline::weights::default_weights_dir()
            .join(agesynth_face::import::FACE_RECOGNITION_WEIGHTS)
    });
    let embedder: Option<Box<dyn FaceEmbedder>> = if a.no_identity {
        eprintln!("--no-identity: the identity term is off");
        None
    } else if identity_weights.is_file() {
        let e = DlibFaceEmbedder::load(&EmbedderConfig::default(), &identity_weights, &device)
            .with_context(|| format!("loading {}", identity_weights.display()))?;
        Some(Box::new(e))
    } else {
        eprintln!(
            "no identity network at {}: the identity term is off",
            identity_weights.display()
        );
        None
    };

    if !has_checkpoint {
        run.save_config(&cfg)?;
    }
    let mut task = FaceGanTask::new(cfg, real, pairs, embedder, &device)?;
    run_task(&run, &a.run, a.steps, &mut task, |t, p| t.export_ema(p))
}
