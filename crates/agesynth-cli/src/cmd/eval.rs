//! `agesynth eval`: measure a FaceGAN generator (and the baselines) on
//! FG-NET or UTKFace's held-out split; `agesynth eval cstylegan`: measure a
//! cStyleGAN's samples.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use agesynth_core::DeviceSpec;
use agesynth_eval::{
    cstylegan::{
        evaluate_cstylegan_filtered, write_cstylegan_report_with_notes, CStyleGanEvalOptions,
    },
    data,
    features::FaceNets,
    run_facegan_eval, EvalEvent, EvalSet, FaceGanEvalConfig, NamedGenerator, SetReport,
};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

/// Arguments of `agesynth eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    /// Evaluate another model kind.
    #[command(subcommand)]
    pub sub: Option<EvalSub>,
    /// The FaceGAN evaluation's options.
    #[command(flatten)]
    pub facegan: FaceGanEvalArgs,
}

/// Other evaluations.
#[derive(Debug, Subcommand)]
pub enum EvalSub {
    /// Measure a cStyleGAN: per age group, how often the estimated age
    /// group is the conditioned one, the face-detection rate of samples,
    /// and the identity-feature Fréchet distance to real UTKFace faces.
    Cstylegan(CStyleGanEvalArgs),
}

/// Options of the FaceGAN evaluation.
#[derive(Debug, Args)]
pub struct FaceGanEvalArgs {
    /// An FG-NET folder (`images/` + `points/`): faces aligned from their
    /// landmarks. With --utkface too, each gets its report in a sub-folder
    /// of --out (`fgnet/`, `utkface/`).
    #[arg(long)]
    pub fgnet: Option<PathBuf>,
    /// A UTKFace folder: its held-out test split (the split the trainer
    /// never sees) is evaluated.
    #[arg(long)]
    pub utkface: Option<PathBuf>,
    /// A UTKFace folder whose test split gives the real faces of each group
    /// (Fréchet distance, random-real baseline); defaults to --utkface, else
    /// the evaluated FG-NET photos themselves.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Real reference faces per age group (seeded subset).
    #[arg(long, default_value_t = 100, value_parser = super::positive)]
    pub ref_per_group: usize,
    /// Generator weights (with their `.json` config sidecar), a checkpoint
    /// folder or a run folder, optionally named `NAME=PATH`. Repeat it to
    /// measure several generators (e.g. ablations) in one table, through
    /// the same inputs, baselines and reference faces; unnamed ones are
    /// called `FaceGAN` when alone, else by their file or folder name.
    #[arg(long, default_value = "weights/facegan-cpu64.safetensors")]
    pub model: Vec<String>,
    /// Folder of the face networks' weights.
    #[arg(long, default_value = "weights")]
    pub weights: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "eval")]
    pub out: PathBuf,
    /// Seed of the input subset and of the random-real picks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate at most this many inputs (a seeded subset).
    #[arg(long, value_parser = super::positive)]
    pub limit: Option<usize>,
    /// Images per network batch.
    #[arg(long, default_value_t = 48, value_parser = super::positive)]
    pub batch: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
    /// A training age critic (`agesynth train critic`), read on every image
    /// beside the judges: a last column shows how often it finds the target
    /// group. It never judges; it shows whether a generator satisfies its
    /// teacher more than the judges.
    #[arg(long)]
    pub teacher_age_critic: Option<PathBuf>,
    /// A training gender critic (`agesynth train critic --kind gender`),
    /// read on every image beside face-api: a last column shows the share
    /// of outputs it reads as the input's gender (inputs aged 20 or more).
    /// It never judges; it shows whether the critic a generator's
    /// gender-keeping term reads sees what the judge sees.
    #[arg(long)]
    pub teacher_gender_critic: Option<PathBuf>,
    /// Measure the generators' own colours on black-and-white inputs; by
    /// default their outputs are made grey, as `agesynth age` does.
    #[arg(long)]
    pub keep_generator_colour: bool,
}

/// Options of `agesynth eval cstylegan`.
#[derive(Debug, Args)]
pub struct CStyleGanEvalArgs {
    /// Generator weights (with their `.json` config sidecar), a checkpoint
    /// folder or a run folder.
    #[arg(long, default_value = "weights/cstylegan-cpu64.safetensors")]
    pub model: PathBuf,
    /// A UTKFace folder: real faces of each group from its test split.
    #[arg(long)]
    pub utkface: PathBuf,
    /// An FG-NET folder (`images/` + `points/`): its people's real photos
    /// across groups by the same identity judge, reported beside the
    /// same-latent distances as the scale real ageing gives.
    #[arg(long)]
    pub fgnet: Option<PathBuf>,
    /// Faces generated per age group.
    #[arg(long, default_value_t = 200, value_parser = super::positive)]
    pub count: usize,
    /// Truncation ψ (1: none).
    #[arg(long, default_value_t = 1.0)]
    pub psi: f64,
    /// Synthesis layers (from the coarsest) that read each latent's age-free
    /// `w`, the mean of its `w` over all age groups: the age condition then
    /// reaches only the finer styles, and pose, face shape and sex stay the
    /// same at every age (0: as the model was trained, every layer reading
    /// the age-conditioned `w` unless its config names age-free layers;
    /// the report gives the number used)
    #[arg(long, default_value_t = 0)]
    pub age_free_layers: usize,
    /// Real reference faces per age group (seeded subset).
    #[arg(long, default_value_t = 200, value_parser = super::positive)]
    pub ref_per_group: usize,
    /// Folder of the face networks' weights.
    #[arg(long, default_value = "weights")]
    pub weights: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "eval/cstylegan")]
    pub out: PathBuf,
    /// Seed of the latents, noise and reference subset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per network batch.
    #[arg(long, default_value_t = 48, value_parser = super::positive)]
    pub batch: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
    /// Also measure the latents that `synth-pairs` with this filter keeps.
    #[command(flatten)]
    pub filter: super::synth::PairFilterArgs,
}

/// Runs `agesynth eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    match a.sub {
        Some(EvalSub::Cstylegan(c)) => run_cstylegan(c),
        None => run_facegan(a.facegan),
    }
}

fn run_facegan(a: FaceGanEvalArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let mut sets = Vec::new();
    if let Some(d) = &a.fgnet {
        sets.push(EvalSet::FgNet(d.clone()));
    }
    if let Some(d) = &a.utkface {
        sets.push(EvalSet::UtkFace(d.clone()));
    }
    if sets.is_empty() {
        bail!("pass --fgnet DIR or --utkface DIR (the faces to evaluate)");
    }
    super::check_out_dir(&a.out)?;
    let device = a.device.open()?;
    let models = named_models(&a.model)?;
    let mut loaded = Vec::with_capacity(models.len());
    for (_, path) in &models {
        let (g, _) = agesynth_facegan::load_generator(path, &device)
            .with_context(|| format!("loading the generator {}", path.display()))?;
        loaded.push(g);
    }
    let generators: Vec<NamedGenerator> = models
        .iter()
        .zip(&loaded)
        .map(|((name, path), g)| NamedGenerator {
            name: name.clone(),
            path: path.clone(),
            generator: g,
        })
        .collect();
    let nets = FaceNets::load(&a.weights, &device)
        .with_context(|| format!("loading the face networks from {}", a.weights.display()))?;
    if let Some(why) = &nets.age_gender_missing {
        eprintln!("warning: {why}");
    }
    let cfg = FaceGanEvalConfig {
        sets,
        reference: a.reference.clone(),
        ref_per_group: a.ref_per_group,
        seed: a.seed,
        limit: a.limit,
        batch: a.batch,
        out: a.out.clone(),
        weights_dir: a.weights.clone(),
        teacher_age_critic: a.teacher_age_critic.clone(),
        teacher_gender_critic: a.teacher_gender_critic.clone(),
        keep_generator_colour: a.keep_generator_colour,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} faces [{elapsed} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    run_facegan_eval(
        &cfg,
        &generators,
        &nets,
        &device,
        t0.elapsed(),
        &mut |event| match event {
            EvalEvent::Loaded {
                name,
                inputs,
                faces,
                groups,
                size,
            } => {
                bar.reset();
                eprintln!("{name}: {inputs} inputs ({faces} faces loaded), {groups} age groups at {size}px");
            }
            EvalEvent::Skipped { file, why } => eprintln!("skipped {file}: {why}"),
            EvalEvent::Progress { done, total } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if done == total {
                    bar.finish_and_clear();
                }
            }
            EvalEvent::Written(report) => {
                bar.finish_and_clear();
                print_summary(&report);
            }
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The overall row of every method, and where the report went.
fn print_summary(report: &SetReport) {
    for r in report.result.rows.iter().filter(|r| r.group.is_overall()) {
        let judged = match (r.judge_age_accuracy, r.judge_age_mae) {
            (Some(acc), Some(mae)) => format!(
                " (face-api: acc {acc:.3}, MAE {mae:.2}, gender kept {:.3})",
                r.gender_kept.unwrap_or(f64::NAN)
            ),
            _ => String::new(),
        };
        eprintln!(
            "{:>20}: detection {:.3}, identity L2 {:.3}, verification {:.3}, age acc {:.3}, MAE {:.2}{judged}, Fréchet {}",
            r.method,
            r.detection_rate.unwrap_or(f64::NAN),
            r.identity_l2.unwrap_or(f64::NAN),
            r.verification_rate.unwrap_or(f64::NAN),
            r.age_accuracy.unwrap_or(f64::NAN),
            r.age_mae.unwrap_or(f64::NAN),
            r.frechet.map(|f| format!("{f:.3}")).unwrap_or("-".into()),
        );
    }
    eprintln!(
        "{} inputs x {} groups in {:.1} s: {}",
        report.result.n_inputs,
        report.result.groups.len(),
        report.wall_s,
        report.out.join("report.md").display()
    );
}

/// The `--model` arguments as (name, path): `NAME=PATH` where the part
/// before the first `=` is a plain name (no path separator), else a bare
/// path named `FaceGAN` when it is the only one, or by its file stem (or
/// folder name) otherwise. Names must differ.
fn named_models(args: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if args.is_empty() {
        bail!("pass at least one --model");
    }
    let mut out: Vec<(String, PathBuf)> = Vec::with_capacity(args.len());
    for arg in args {
        let (name, path) = match arg.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains(['/', '\\']) && !p.is_empty() => {
                (Some(n.to_string()), PathBuf::from(p))
            }
            _ => (None, PathBuf::from(arg)),
        };
        let name = name.unwrap_or_else(|| {
            if args.len() == 1 {
                "FaceGAN".to_string()
            } else {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| arg.clone())
            }
        });
        if out.iter().any(|(n, _)| *n == name) {
            bail!("two --model arguments are both called `{name}`: name them with NAME=PATH");
        }
        out.push((name, path));
    }
    Ok(out)
}

fn run_cstylegan(a: CStyleGanEvalArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    super::check_out_dir(&a.out)?;
    let device = a.device.open()?;
    let (g, _) = agesynth_cstylegan::load_generator(&a.model, &device)
        .with_context(|| format!("loading the generator {}", a.model.display()))?;
    let bins = g.config().bins()?;
    let size = g.config().image_size as u32;
    let nets = FaceNets::load(&a.weights, &device)
        .with_context(|| format!("loading the face networks from {}", a.weights.display()))?;
    if let Some(why) = &nets.age_gender_missing {
        eprintln!("warning: {why}");
    }
    let analyzer = nets.analyzer(&device, a.batch);
    let tl = Instant::now();
    let reference = data::load_reference(&a.utkface, size, &bins, a.ref_per_group, a.seed)
        .with_context(|| format!("loading reference faces from {}", a.utkface.display()))?;
    analyzer.add_time(|t| &mut t.load_s, tl.elapsed());
    let opts = CStyleGanEvalOptions {
        count: a.count,
        truncation: a.psi,
        seed: a.seed,
        age_free_layers: a.age_free_layers,
        ..CStyleGanEvalOptions::default()
    };
    let filter = a.filter.build(&device)?;
    let mut result =
        evaluate_cstylegan_filtered(&g, &reference, &analyzer, &opts, filter.as_ref())?;
    if let Some(dir) = &a.fgnet {
        let people = data::load_fgnet(dir, size, None, a.seed)
            .with_context(|| format!("loading FG-NET from {}", dir.display()))?;
        result.real_people = agesynth_eval::cstylegan::real_people_pairs(&people, &analyzer, &bins)
            .with_context(|| format!("measuring FG-NET's people in {}", dir.display()))?;
        result.real_identification = agesynth_eval::cstylegan::real_people_identification(
            &people, &reference, &analyzer, &bins,
        )
        .with_context(|| format!("identifying FG-NET's people in {}", dir.display()))?;
    }
    let mut settings = serde_json::json!({
        "model": a.model.display().to_string(),
        "preset": g.config().preset,
        "image size": size,
        "faces per group": a.count,
        "truncation psi": a.psi,
        "age-free layers": g.effective_age_free_layers(&agesynth_cstylegan::GenerateOptions {
            age_free_layers: a.age_free_layers,
            ..Default::default()
        }),
        "age-free layers from group": g.config().age_free_from_group,
        "seed": a.seed,
        "reference": format!("UTKFace test split of {} (at most {} per group, seeded)", a.utkface.display(), a.ref_per_group),
    });
    if let Some(dir) = &a.fgnet {
        settings["real people"] = format!("FG-NET, every photo of {}", dir.display()).into();
    }
    if filter.is_some() {
        settings["pair filter"] = a.filter.describe();
    }
    let wall = t0.elapsed().as_secs_f64();
    write_cstylegan_report_with_notes(
        &a.out,
        &result,
        settings,
        wall,
        nets.age_gender_missing.as_deref(),
    )?;
    for r in &result.rows {
        let judged = match (r.judge_age_accuracy, r.judge_age_mae) {
            (Some(acc), Some(mae)) => format!(" (face-api: {acc:.3}, MAE {mae:.2})"),
            _ => String::new(),
        };
        eprintln!(
            "{:>8}: estimated = conditioned {:.3}, MAE {:.2}{judged}, detection {:.3}, Fréchet {}",
            r.group,
            r.age_accuracy.unwrap_or(f64::NAN),
            r.age_mae.unwrap_or(f64::NAN),
            r.detection_rate.unwrap_or(f64::NAN),
            r.frechet.map(|f| format!("{f:.3}")).unwrap_or("-".into()),
        );
    }
    if let Some(g) = &result.gender_agreement {
        eprintln!(
            "gender agreement (face-api, groups {}): {}/{} identities ({:.1}%)",
            g.groups.join(", "),
            g.consistent,
            g.identities,
            100.0 * g.share()
        );
    }
    if let Some(a) = &result.age_spread {
        let means: Vec<String> = a
            .groups
            .iter()
            .map(|r| {
                let y = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or("-".into());
                format!(
                    "{} {} (real {})",
                    r.group,
                    y(r.mean_age),
                    y(r.real_mean_age)
                )
            })
            .collect();
        eprintln!("mean estimated age (dlib): {}", means.join(", "));
        eprintln!(
            "age rises at every group: {}/{} identities ({:.1}%) by dlib{}",
            a.rising,
            a.identities,
            100.0 * a.rising_share(),
            a.judge_rising_share()
                .map(|s| format!(", {:.1}% by face-api", 100.0 * s))
                .unwrap_or_default()
        );
    }
    let say_ids = |c: &agesynth_eval::cstylegan::Consistency, whose: &str| {
        let rates: Vec<String> = c
            .identification
            .iter()
            .map(|(g, r)| format!("{g} {:.1}%", 100.0 * r))
            .collect();
        eprintln!(
            "identified against own {} render ({whose}, dlib): {}",
            c.reference_group,
            rates.join(", ")
        );
    };
    if let Some(c) = &result.consistency {
        say_ids(c, "all");
    }
    if let Some(k) = &result.kept {
        eprintln!("pair filter keeps {}/{} latents", k.kept, k.of);
        if let Some(g) = &k.gender_agreement {
            eprintln!(
                "gender agreement among them: {}/{} ({:.1}%)",
                g.consistent,
                g.identities,
                100.0 * g.share()
            );
        }
        if let Some(c) = &k.consistency {
            say_ids(c, "kept");
        }
    }
    eprintln!("{wall:.1} s: {}", a.out.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}
