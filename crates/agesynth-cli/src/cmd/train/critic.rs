//! `agesynth train critic`: the age critic and the identity critic that the
//! generators train against, and the gender critic that checks synthetic
//! pairs, on UTKFace's training split.

use std::{collections::HashMap, path::PathBuf, process::ExitCode, sync::Arc, time::Instant};

use agesynth_core::FaceEmbedder;
use agesynth_critic::CriticConfig;
use agesynth_critic::CriticHead;
use agesynth_face::{DlibFaceEmbedder, EmbedderConfig, FaceRes, FaceResConfig};
use agesynth_train::critic::{
    centre_descriptors, evaluate_age, evaluate_gender, evaluate_identity, teacher_embeddings,
    CriticReport, CriticTask, CriticTrainConfig,
};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use super::{
    load_real_faces, load_real_faces_split, open_run, run_task, RealFaceArgs, RunArgs, SplitChoice,
    SplitPart,
};
use crate::cmd::GenderArg;

/// Which critic to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CriticKind {
    /// The age-group classifier (learns the faces' own age groups).
    Age,
    /// The age-given-gender classifier (learns age group and gender
    /// jointly, from UTKFace's labels; a generator is then asked for the
    /// target age of its row's gender).
    AgeGender,
    /// The identity embedder (distilled from a teacher network's
    /// descriptors of the same faces; see --teacher).
    Identity,
    /// The male/female classifier (learns UTKFace's gender labels; checks
    /// that synthetic pairs keep their gender).
    Gender,
}

/// The network an identity critic is distilled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdentityTeacher {
    /// HSE FaceRes (`faceres.safetensors`): 1,024-D descriptors, centred on
    /// the training faces' mean and scaled to unit length. Independent of
    /// every evaluation judge.
    Faceres,
    /// dlib's face-recognition network (`face_recognition.safetensors`):
    /// the evaluation's identity judge, so a generator trained against the
    /// critic is partly trained against its judge (kept to reproduce the
    /// critics made with it).
    Dlib,
}

impl IdentityTeacher {
    fn name(self) -> &'static str {
        match self {
            IdentityTeacher::Faceres => "faceres",
            IdentityTeacher::Dlib => "dlib",
        }
    }
}

/// L2 distance between two centred FaceRes descriptors below which the
/// teacher calls two faces one person, for the critic's agreement report
/// (FG-NET dev at 64 px, centred: one person 1.16 on average, two people
/// 1.44).
const FACERES_CENTRED_THRESHOLD: f32 = 1.3;

/// Options of `agesynth train critic`.
#[derive(Debug, Args)]
pub struct CriticArgs {
    /// UTKFace folder (aligned chips), e.g. ../shared/data/utkface.
    #[arg(long)]
    pub data: PathBuf,
    /// Which critic.
    #[arg(long, value_enum)]
    pub kind: CriticKind,
    /// Network preset [default: age64, age-gender64, identity64 or gender64].
    #[arg(long)]
    pub preset: Option<String>,
    /// Train until this step (also where the learning-rate schedule ends).
    #[arg(long, default_value_t = 3_000)]
    pub steps: u64,
    /// Faces per step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate [default: 2e-3].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Age critic: weight each face by the inverse frequency of its group
    /// (rare groups learned as well as common ones).
    #[arg(long)]
    pub balanced: bool,
    /// Blur every input (training and judging alike) by this standard
    /// deviation in pixels before the trunk: the critic learns only what is
    /// left at that scale, so a generator cannot reach it with fine strokes
    /// [default: 0].
    #[arg(long)]
    pub input_blur: Option<f64>,
    /// The critic sees luminance only (training and judging alike).
    #[arg(long)]
    pub input_luma: bool,
    /// Add Gaussian noise of this standard deviation (pixel values in
    /// [-1, 1]) to every training input: the critic then leans on features
    /// that survive noise, and its gradient asks a generator for visible
    /// change [default: 0].
    #[arg(long)]
    pub input_noise: Option<f64>,
    /// Learn from faces labelled with this gender only (UTKFace's labels):
    /// an age critic that has seen only women cannot reward a moustache as
    /// a sign of age.
    #[arg(long, value_enum)]
    pub only_gender: Option<GenderArg>,
    /// Adversarial training: before the critic learns from a batch, a
    /// projected-gradient attack moves each pixel (values in [-1, 1]) by at
    /// most this much to raise its loss. Such a critic is not swayed by
    /// faint patterns, so a generator trained against it must draw what
    /// the age looks like [default: 0, off].
    #[arg(long)]
    pub adversarial_epsilon: Option<f64>,
    /// Steps of that attack.
    #[arg(long, default_value_t = 3)]
    pub adversarial_steps: usize,
    /// Start from this trained critic (same kind and input options; a
    /// weights file with its sidecar, a checkpoint or a run folder), e.g.
    /// to fine-tune it adversarially.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Start a MobileNet-trunk critic (preset identity-mobilenet112) from
    /// these MobileNet v1 weights, e.g. the weights folder's
    /// `faceres.safetensors`: fine-tuning a recognition network at the
    /// generators' resolution rather than distilling into a small one.
    #[arg(long)]
    pub init_backbone: Option<PathBuf>,
    /// The network the identity critic is distilled from. Used only to
    /// distil the critic; the generators never see it.
    #[arg(long, value_enum, default_value = "faceres")]
    pub teacher: IdentityTeacher,
    /// The teacher's weights [default: the weights folder's
    /// `faceres.safetensors` or `face_recognition.safetensors`].
    #[arg(long)]
    pub teacher_weights: Option<PathBuf>,
    #[command(flatten)]
    pub real: RealFaceArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `agesynth train critic`.
pub fn train_critic(a: CriticArgs) -> anyhow::Result<ExitCode> {
    if a.real.split != SplitChoice::Train {
        bail!("critics train on UTKFace's training split only (--split train)");
    }
    let (device, run, has_checkpoint) = open_run(&a.run)?;
    let cfg: CriticTrainConfig = if a.run.resume && run.config_path().is_file() {
        run.load_config()?
    } else {
        let preset = a.preset.clone().unwrap_or_else(|| {
            match a.kind {
                CriticKind::Age => "age64",
                CriticKind::AgeGender => "age-gender64",
                CriticKind::Identity => "identity64",
                CriticKind::Gender => "gender64",
            }
            .to_string()
        });
        let mut model = CriticConfig::preset(&preset)?;
        if let (CriticKind::Identity, CriticHead::Embedding { dim, threshold }) =
            (a.kind, &mut model.head)
        {
            // The descriptor matches the teacher's.
            (*dim, *threshold) = match a.teacher {
                IdentityTeacher::Faceres => (
                    agesynth_face::faceres::EMBEDDING_DIM,
                    FACERES_CENTRED_THRESHOLD,
                ),
                IdentityTeacher::Dlib => (agesynth_face::embedder::EMBEDDING_DIM, 0.6),
            };
        }
        model.input_blur = a.input_blur.unwrap_or(0.0);
        model.input_luma = a.input_luma;
        model.validate()?;
        let mut c = CriticTrainConfig::new(model, a.steps, a.run.seed);
        c.batch = a.batch;
        c.balanced = a.balanced;
        c.input_noise = a.input_noise.unwrap_or(0.0);
        c.only_gender = a.only_gender.map(Into::into);
        c.adversarial_epsilon = a.adversarial_epsilon.unwrap_or(0.0);
        c.init = a.init.clone();
        c.init_backbone = a.init_backbone.clone();
        if a.kind == CriticKind::Identity {
            c.teacher = Some(a.teacher.name().to_string());
        }
        c.adversarial_steps = if c.adversarial_epsilon > 0.0 {
            a.adversarial_steps
        } else {
            0
        };
        if !(c.input_noise.is_finite() && c.input_noise >= 0.0) {
            bail!(
                "--input-noise must be a finite number ≥ 0, got {}",
                c.input_noise
            );
        }
        if let Some(lr) = a.lr {
            c.lr = lr;
        }
        c
    };
    let size = cfg.model.image_size;
    let bins = agesynth_core::AgeBins::paper();
    let faces = Arc::new(load_real_faces(&a.data, size, &bins, &a.real, &a.run.out)?);
    // Held-out faces for the report: the validation split (the test split
    // stays for the generators' evaluation).
    let val = load_real_faces_split(&a.data, size, &bins, &a.real, &a.run.out, SplitPart::Val)?;

    let teacher_file = run.root().join("teacher.safetensors");
    let mut teacher_threshold = None;
    let (teacher, val_teacher) = match a.kind {
        CriticKind::Age | CriticKind::AgeGender | CriticKind::Gender => (None, None),
        CriticKind::Identity => {
            // A resumed run keeps the teacher it started with.
            let teacher_kind = match cfg.teacher.as_deref() {
                None | Some("dlib") => IdentityTeacher::Dlib,
                Some("faceres") => IdentityTeacher::Faceres,
                Some(other) => bail!("the run's config names an unknown teacher `{other}`"),
            };
            let path = a.teacher_weights.clone().unwrap_or_else(|| {
                agesynth_pipeline::weights::default_weights_dir().join(match teacher_kind {
                    IdentityTeacher::Faceres => agesynth_face::import::FACERES_WEIGHTS,
                    IdentityTeacher::Dlib => agesynth_face::import::FACE_RECOGNITION_WEIGHTS,
                })
            });
            let net: Box<dyn FaceEmbedder> = match teacher_kind {
                IdentityTeacher::Faceres => Box::new(
                    FaceRes::load(&FaceResConfig::default(), &path, &device)
                        .with_context(|| format!("loading the teacher {}", path.display()))?,
                ),
                IdentityTeacher::Dlib => Box::new(
                    DlibFaceEmbedder::load(&EmbedderConfig::default(), &path, &device)
                        .with_context(|| format!("loading the teacher {}", path.display()))?,
                ),
            };
            let cached = if teacher_file.is_file() {
                let mut t = agesynth_core::io::load_tensors(&teacher_file, &device)?;
                t.remove("train")
                    .filter(|t| t.dims2().ok() == Some((faces.len(), net.dim())))
            } else {
                None
            };
            let train_t = match cached {
                Some(t) => t,
                None => {
                    let t0 = Instant::now();
                    let t = teacher_embeddings(net.as_ref(), &faces, 32, &device, |k, n| {
                        if k % 1024 < 32 || k == n {
                            eprintln!("teacher descriptors {k}/{n}");
                        }
                    })?;
                    eprintln!(
                        "{} teacher descriptors in {:.0} s",
                        faces.len(),
                        t0.elapsed().as_secs_f64()
                    );
                    agesynth_core::io::save_tensors(
                        &teacher_file,
                        &HashMap::from([("train".to_string(), t.clone())]),
                        None,
                    )?;
                    t
                }
            };
            let val_t = teacher_embeddings(net.as_ref(), &val, 32, &device, |_, _| {})?;
            let (train_t, val_t, threshold) = match teacher_kind {
                // FaceRes's descriptors share a large common part: centred on
                // the training faces' mean they tell people apart better
                // (FG-NET dev at 64 px: AUC 0.919 against 0.889).
                IdentityTeacher::Faceres => {
                    let mean = train_t.mean_keepdim(0)?;
                    (
                        centre_descriptors(&train_t, &mean)?,
                        centre_descriptors(&val_t, &mean)?,
                        FACERES_CENTRED_THRESHOLD,
                    )
                }
                IdentityTeacher::Dlib => (train_t, val_t, net.threshold()),
            };
            teacher_threshold = Some(threshold);
            (Some(train_t), Some(val_t))
        }
    };

    if !has_checkpoint {
        run.save_config(&cfg)?;
    }
    let steps = a.steps;
    let init = cfg.init.clone();
    let backbone = cfg.init_backbone.clone();
    let mut task = CriticTask::new(cfg, faces, teacher, &device)?;
    if let (Some(p), false) = (backbone, has_checkpoint) {
        let t0 = Instant::now();
        task.init_backbone(&p, 512)
            .with_context(|| format!("starting from the backbone {}", p.display()))?;
        eprintln!(
            "started from the backbone {} ({:.0} s)",
            p.display(),
            t0.elapsed().as_secs_f64()
        );
    }
    if let (Some(p), false) = (init, has_checkpoint) {
        task.init_from(&p)
            .with_context(|| format!("starting from the critic {}", p.display()))?;
        eprintln!("started from the critic {}", p.display());
    }
    let code = run_task(
        &run,
        &a.run,
        steps,
        &mut task,
        "critic.safetensors",
        |t, p| t.export(p),
    )?;
    let critic_file = run.root().join("critic.safetensors");

    let report: CriticReport = if let Some(c) = task.age_critic() {
        evaluate_age(c, &val, &device)?
    } else if let Some(c) = task.identity_critic() {
        let threshold = teacher_threshold.unwrap_or(0.6);
        let vt = val_teacher.context("validation descriptors")?;
        evaluate_identity(c, threshold, &val, &vt, &device)?
    } else if let Some(c) = task.gender_critic() {
        evaluate_gender(c, &val, &bins, &device)?
    } else {
        bail!("the critic task holds no critic")
    };
    agesynth_core::io::save_json(run.root().join("report.json"), &report)?;
    eprintln!(
        "critic: {}; validation report ({} faces): {}",
        critic_file.display(),
        report.faces,
        serde_json::to_string_pretty(&report)?
    );
    Ok(code)
}
