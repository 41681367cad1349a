//! A whole FaceGAN evaluation, as `agesynth eval` runs it: one or two data
//! sets (FG-NET, UTKFace's held-out split), every generator through the same
//! inputs, the two baselines (copy input, a random real face of the target
//! group; on FG-NET also the person's own real photo at the target) and the
//! same reference faces, a report per set. The binary only
//! parses arguments, loads the models and prints; what is measured and
//! written is decided here.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use agesynth_core::{AgeGenerator, Error, Result};
use candle_core::Device;

use crate::{
    data, evaluate_with_progress,
    features::FaceNets,
    report::{age_judge_note, facegan_notes, write_report},
    CopyInput, EvalOptions, EvalResult, GeneratorMethod, Method, RandomReal, SamePersonReal,
};

/// A data set to evaluate on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalSet {
    /// An FG-NET folder (`images/` + `points/`): faces aligned from their
    /// landmarks.
    FgNet(PathBuf),
    /// A UTKFace folder: its held-out test split.
    UtkFace(PathBuf),
}

impl EvalSet {
    /// The short name (`fgnet`, `utkface`): the sub-folder of the report
    /// when several sets are evaluated.
    pub fn key(&self) -> &'static str {
        match self {
            EvalSet::FgNet(_) => "fgnet",
            EvalSet::UtkFace(_) => "utkface",
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        match self {
            EvalSet::FgNet(d) | EvalSet::UtkFace(d) => d,
        }
    }
}

/// What a FaceGAN evaluation measures and where it writes.
#[derive(Clone, Debug)]
pub struct FaceGanEvalConfig {
    /// The data sets, in order.
    pub sets: Vec<EvalSet>,
    /// A UTKFace folder whose test split gives each group's real faces
    /// (Fréchet distance, random-real picks); `None`: the evaluated photos
    /// themselves (other subjects for the random-real baseline).
    pub reference: Option<PathBuf>,
    /// Real reference faces per age group (seeded subset).
    pub ref_per_group: usize,
    /// Seed of the input subset and of the random-real picks.
    pub seed: u64,
    /// At most this many inputs per set (a seeded subset).
    pub limit: Option<usize>,
    /// Images per network batch.
    pub batch: usize,
    /// Output folder (a sub-folder per set when there are several).
    pub out: PathBuf,
    /// Where the face networks came from (for the report's settings).
    pub weights_dir: PathBuf,
    /// A training age critic (a teacher of the generators, never a judge)
    /// whose reading of every image is reported in a last column, to show
    /// whether a generator satisfies its teacher more than the judges.
    pub teacher_age_critic: Option<PathBuf>,
    /// A training gender critic (a teacher of the generators, never a
    /// judge) whose reading of gender kept is reported in a last column.
    pub teacher_gender_critic: Option<PathBuf>,
    /// Measure a generator's own colours on grey inputs; `false` (the
    /// default) makes a grey input's outputs grey, as `agesynth age` does.
    pub keep_generator_colour: bool,
}

/// A generator to evaluate: its name in the table, where it came from, and
/// the model.
pub struct NamedGenerator<'a> {
    /// Its name in the table.
    pub name: String,
    /// Its weights file or run folder (for the report's settings).
    pub path: PathBuf,
    /// The model.
    pub generator: &'a dyn AgeGenerator,
}

/// What a run reports while it works.
#[derive(Clone, Debug)]
pub enum EvalEvent {
    /// A set's faces are loaded.
    Loaded {
        /// The set's description.
        name: String,
        /// Inputs to age.
        inputs: usize,
        /// Faces loaded (the gallery).
        faces: usize,
        /// Age groups.
        groups: usize,
        /// Image size in pixels.
        size: u32,
    },
    /// A photo could not be used.
    Skipped {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
    /// Inputs measured so far in the current set.
    Progress {
        /// Done.
        done: usize,
        /// Of.
        total: usize,
    },
    /// A set's report is written (the same value is also returned).
    Written(Box<SetReport>),
}

/// One set's outcome.
#[derive(Clone, Debug)]
pub struct SetReport {
    /// The set.
    pub set: EvalSet,
    /// The folder its report went to.
    pub out: PathBuf,
    /// The measurements.
    pub result: EvalResult,
    /// Its wall time (loading the networks and the reference faces counts
    /// in the first set's).
    pub wall_s: f64,
}

/// Checks that every generator works at the first one's image size and age
/// bins (they share one table); returns them.
fn common_geometry(generators: &[NamedGenerator<'_>]) -> Result<(agesynth_core::AgeBins, u32)> {
    let first = generators
        .first()
        .ok_or_else(|| Error::InvalidInput("an evaluation needs at least one generator".into()))?;
    let bins = first.generator.age_bins().clone();
    let size = first.generator.image_size() as u32;
    for other in &generators[1..] {
        let g = other.generator;
        if g.age_bins() != &bins || g.image_size() as u32 != size {
            return Err(Error::InvalidInput(format!(
                "generator `{}` ({}) works at {} px with age bins {:?}, the first at {size} px with {:?}: they cannot share one evaluation",
                other.name,
                other.path.display(),
                g.image_size(),
                g.age_bins().lower_bounds(),
                bins.lower_bounds()
            )));
        }
    }
    Ok((bins, size))
}

/// Runs the evaluation: every set, every generator and both baselines,
/// writing `report.md`, `metrics.json`, plots and sample sheets per set.
/// `setup` is time already spent loading the models and networks (it counts
/// in the first set's wall time).
pub fn run_facegan_eval(
    cfg: &FaceGanEvalConfig,
    generators: &[NamedGenerator<'_>],
    nets: &FaceNets,
    device: &Device,
    setup: Duration,
    on: &mut dyn FnMut(EvalEvent),
) -> Result<Vec<SetReport>> {
    if cfg.sets.is_empty() {
        return Err(Error::InvalidInput(
            "an evaluation needs a data set (FG-NET or UTKFace)".into(),
        ));
    }
    let (bins, size) = common_geometry(generators)?;
    let t0 = Instant::now();
    let ref_dir = cfg.reference.clone().or_else(|| {
        cfg.sets.iter().find_map(|s| match s {
            EvalSet::UtkFace(d) => Some(d.clone()),
            EvalSet::FgNet(_) => None,
        })
    });
    // Twice the faces, split in two halves with the same groups: one for the
    // Fréchet distance, one for the random-real baseline's picks.
    let (reference, picks) = match &ref_dir {
        Some(d) => {
            let all = data::load_reference(d, size, &bins, 2 * cfg.ref_per_group, cfg.seed)?;
            let (r, p) = data::split_alternate(all, &bins);
            (Some(r), Some(p))
        }
        None => (None, None),
    };
    let teacher = match &cfg.teacher_age_critic {
        Some(p) => {
            let (c, _) = agesynth_critic::load::load_age_critic(p, device)?;
            if c.bins() != &bins {
                return Err(Error::Config(format!(
                    "the training critic {} reads other age groups than the generators ({} against {})",
                    p.display(),
                    c.bins().len(),
                    bins.len()
                )));
            }
            Some(c)
        }
        None => None,
    };
    let gender_teacher = match &cfg.teacher_gender_critic {
        Some(p) => Some(agesynth_critic::load::load_gender_critic(p, device)?.0),
        None => None,
    };
    let ref_load = t0.elapsed();
    let mut reports = Vec::with_capacity(cfg.sets.len());
    for (k, set) in cfg.sets.iter().enumerate() {
        let t1 = Instant::now();
        let analyzer = nets.analyzer(device, cfg.batch);
        let analyzer = match &teacher {
            Some(c) => analyzer.with_teacher(c),
            None => analyzer,
        };
        let analyzer = match &gender_teacher {
            Some(c) => analyzer.with_gender_teacher(c),
            None => analyzer,
        };
        let out = if cfg.sets.len() > 1 {
            cfg.out.join(set.key())
        } else {
            cfg.out.clone()
        };
        let tl = Instant::now();
        let data = match set {
            EvalSet::FgNet(d) => data::load_fgnet(d, size, cfg.limit, cfg.seed)?,
            EvalSet::UtkFace(d) => data::load_utkface_test(d, size, cfg.limit, cfg.seed)?,
        };
        if data.inputs.is_empty() {
            return Err(Error::Dataset {
                path: set.dir().to_path_buf(),
                reason: format!("{}: no face could be loaded", data.name),
            });
        }
        for (file, why) in &data.skipped {
            on(EvalEvent::Skipped {
                file: file.clone(),
                why: why.clone(),
            });
        }
        analyzer.add_time(|t| &mut t.load_s, tl.elapsed() + ref_load);
        on(EvalEvent::Loaded {
            name: data.name.clone(),
            inputs: data.inputs.len(),
            faces: data.gallery.len(),
            groups: bins.len(),
            size,
        });
        let ours: Vec<GeneratorMethod> = generators
            .iter()
            .map(|g| {
                GeneratorMethod::new(g.name.clone(), g.generator)
                    .keep_grey(!cfg.keep_generator_colour)
            })
            .collect();
        let random = match &picks {
            Some(p) => RandomReal::new(p.clone(), &bins, cfg.seed),
            None => RandomReal::over_gallery(&data.gallery, &bins, cfg.seed),
        };
        let mut methods: Vec<&dyn Method> = ours.iter().map(|m| m as &dyn Method).collect();
        methods.push(&CopyInput);
        methods.push(&random);
        // Where the data names people (FG-NET), their own photos at each
        // target: what real ageing gives by the same measures.
        let same_person = SamePersonReal::new(&data.gallery, &bins);
        if same_person.has_rows() {
            methods.push(&same_person);
        }
        let result = evaluate_with_progress(
            &data,
            reference.as_deref(),
            &methods,
            &analyzer,
            &bins,
            &EvalOptions {
                batch: cfg.batch,
                ..EvalOptions::default()
            },
            &mut |done, total| on(EvalEvent::Progress { done, total }),
        )?;
        let pool = match &ref_dir {
            Some(d) => format!(
                "UTKFace test split of {} (at most {} per group, seeded; as many others for the random-real picks)",
                d.display(),
                cfg.ref_per_group
            ),
            None => "the evaluated photos themselves (other subjects for the random-real baseline)"
                .into(),
        };
        let settings = serde_json::json!({
            "data": data.name,
            "model": generators
                .iter()
                .map(|g| format!("{}: {}", g.name, g.path.display()))
                .collect::<Vec<_>>()
                .join("; "),
            "image size": size,
            "seed": cfg.seed,
            "limit": cfg.limit.map_or("all".to_string(), |l| l.to_string()),
            "reference pool": pool,
            "face networks": cfg.weights_dir.display().to_string(),
            "photos skipped": data.skipped.len(),
        });
        let mut settings = settings;
        if let Some(p) = &cfg.teacher_age_critic {
            settings["training critic (compared, not a judge)"] = p.display().to_string().into();
        }
        if let Some(p) = &cfg.teacher_gender_critic {
            settings["training gender critic (compared, not a judge)"] =
                p.display().to_string().into();
        }
        if !cfg.keep_generator_colour {
            settings["grey inputs"] =
                "their outputs made grey, as `agesynth age` does for black-and-white photos".into();
        }
        let mut notes = facegan_notes(size);
        notes += "\n";
        notes += &age_judge_note(nets.age_gender_missing.as_deref());
        if !data.skipped.is_empty() {
            notes += "\n\nSkipped photos:\n";
            for (file, why) in &data.skipped {
                notes += &format!("\n- `{file}`: {why}");
            }
        }
        let first = if k == 0 {
            setup + ref_load
        } else {
            Duration::ZERO
        };
        let wall = (t1.elapsed() + first).as_secs_f64();
        write_report(&out, "FaceGAN evaluation", &result, settings, &notes, wall)?;
        let report = SetReport {
            set: set.clone(),
            out,
            result,
            wall_s: wall,
        };
        on(EvalEvent::Written(Box::new(report.clone())));
        reports.push(report);
    }
    Ok(reports)
}
