//! The generic training loop: steps, guards, logs, sample grids,
//! checkpoints, resume and Ctrl-C, around any [`TrainTask`].
//!
//! A task (the cStyleGAN GAN, the FaceGAN trainer, ...) owns its models,
//! optimizers and data and knows how to take one step and how to save and
//! restore itself; the [`Trainer`] does everything else the same way for all
//! of them.

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use agesynth_core::FaceImage;
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{BrokenCheckpoint, Checkpoint, CheckpointContents, RunDir},
    log::{JsonlLog, LogRecord, Progress},
    stop::StopFlag,
    Result, TrainError,
};

/// What one training step reports.
#[derive(Clone, Debug, Default)]
pub struct StepReport {
    /// Images consumed (real images of the batch).
    pub images: usize,
    /// Named losses, as plain numbers (checked for NaN/divergence and logged;
    /// each is averaged over the steps that report it, so a loss computed
    /// every k steps, like a lazy regulariser, may be left out in between).
    pub losses: Vec<(String, f32)>,
    /// Named metrics (mean logits, accuracies): logged like the losses but
    /// not guarded, since they are not minimised and may legitimately be
    /// large.
    pub metrics: Vec<(String, f32)>,
}

/// One training job the [`Trainer`] can drive.
pub trait TrainTask {
    /// Takes training step `step` (1-based: the first step is 1). All
    /// randomness of the step should be drawn from the run's seed and `step`
    /// (see [`crate::rng`]) so that resume repeats it.
    fn step(&mut self, step: u64) -> Result<StepReport>;

    /// Everything needed to continue exactly: weights, optimizer states, EMA
    /// weights, the data order.
    fn checkpoint(&self) -> Result<CheckpointContents>;

    /// Restores what [`TrainTask::checkpoint`] saved.
    fn restore(&mut self, checkpoint: &Checkpoint) -> Result<()>;

    /// A sample grid for the current weights, if the task makes one.
    fn sample_grid(&mut self) -> Result<Option<FaceImage>> {
        Ok(None)
    }
}

/// How the [`Trainer`] runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerOptions {
    /// Train until this step (inclusive).
    pub total_steps: u64,
    /// Write a log record every this many steps.
    pub log_every: u64,
    /// Write a sample grid every this many steps (0: never).
    pub sample_every: u64,
    /// Save a checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Keep the newest this many checkpoints.
    pub keep_last: usize,
    /// Stop when a loss exceeds this (divergence); `None`: only NaN/inf stop.
    pub divergence_limit: Option<f32>,
    /// Show a progress bar (or plain lines when not on a terminal).
    pub progress: bool,
}

impl Default for TrainerOptions {
    fn default() -> Self {
        TrainerOptions {
            total_steps: 1000,
            log_every: 10,
            sample_every: 500,
            checkpoint_every: 500,
            keep_last: 3,
            divergence_limit: Some(1e4),
            progress: true,
        }
    }
}

/// The trainer's own part of a checkpoint (`meta.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    /// The step the checkpoint was saved after.
    pub step: u64,
    /// Images seen up to that step.
    pub images: u64,
    /// Training wall time up to that step, in seconds.
    pub wall_s: f64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It reached `total_steps`.
    Finished,
    /// A stop was asked for (Ctrl-C); a checkpoint was saved.
    Interrupted,
}

/// What [`Trainer::run`] returns.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// How it ended.
    pub outcome: Outcome,
    /// The step reached.
    pub step: u64,
    /// The step it started from (0, or the resumed checkpoint's).
    pub start_step: u64,
    /// Images seen over the whole run (all resumes).
    pub images: u64,
    /// Wall time of the whole run (all resumes), seconds.
    pub wall_s: f64,
    /// Images per second in this session.
    pub images_per_s: f64,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
    /// Newer checkpoints skipped on resume because they were broken.
    pub skipped: Vec<BrokenCheckpoint>,
}

/// Drives a [`TrainTask`] in a [`RunDir`].
pub struct Trainer {
    run: RunDir,
    opts: TrainerOptions,
    stop: StopFlag,
}

impl Trainer {
    /// A trainer for `run`; stops only at `total_steps` until
    /// [`Trainer::with_stop`] gives it a flag.
    pub fn new(run: RunDir, opts: TrainerOptions) -> Self {
        Trainer {
            run,
            opts,
            stop: StopFlag::new(),
        }
    }

    /// Polls `stop` between steps (e.g. [`StopFlag::ctrlc`]).
    pub fn with_stop(mut self, stop: StopFlag) -> Self {
        self.stop = stop;
        self
    }

    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// The options.
    pub fn options(&self) -> &TrainerOptions {
        &self.opts
    }

    fn save(&self, task: &dyn TrainTask, meta: &TrainMeta) -> Result<PathBuf> {
        let contents = task.checkpoint()?;
        let meta_json =
            serde_json::to_value(meta).map_err(|source| agesynth_core::Error::Json {
                path: self.run.checkpoints_dir(),
                source,
            })?;
        let ck = self
            .run
            .save_checkpoint(meta.step, &contents, &meta_json, self.opts.keep_last)?;
        Ok(ck.dir().to_path_buf())
    }

    /// Trains `task` up to `total_steps`. With `resume`, continues from the
    /// run's newest intact checkpoint (restoring the task and the step, image
    /// and time counters); a checkpoint that fails [`Checkpoint::verify`] or
    /// cannot be restored is skipped for the previous one, with a warning
    /// naming it ([`RunSummary::skipped`]). A run without any checkpoint
    /// starts from step 0; one whose checkpoints are all broken is an error.
    /// Without `resume`, a run folder that already has checkpoints is an
    /// error, so that no run is overwritten by mistake.
    ///
    /// Stops with [`TrainError::NonFinite`] / [`TrainError::Diverged`] when
    /// a loss is NaN, infinite or over the limit, before saving anything; a
    /// checkpoint holding non-finite weights is refused
    /// ([`TrainError::NonFiniteWeights`]). Either way the last good
    /// checkpoint stays the latest.
    pub fn run(&mut self, task: &mut dyn TrainTask, resume: bool) -> Result<RunSummary> {
        let candidates = self.run.checkpoints_newest_first()?;
        let mut meta = TrainMeta {
            step: 0,
            images: 0,
            wall_s: 0.0,
        };
        let mut latest: Option<Checkpoint> = None;
        let mut skipped: Vec<BrokenCheckpoint> = Vec::new();
        match (candidates.first(), resume) {
            (Some(_), true) => {
                for ck in &candidates {
                    let restored = ck
                        .verify()
                        .and_then(|_| ck.meta::<TrainMeta>())
                        .map_err(TrainError::from)
                        .and_then(|m| task.restore(ck).map(|_| m));
                    match restored {
                        Ok(m) => {
                            meta = m;
                            latest = Some(ck.clone());
                            break;
                        }
                        Err(e) => {
                            let b = BrokenCheckpoint {
                                dir: ck.dir().to_path_buf(),
                                reason: e.to_string(),
                            };
                            crate::checkpoint::warn(format!("skipping broken checkpoint {b}"));
                            skipped.push(b);
                        }
                    }
                }
                match &latest {
                    Some(ck) if !skipped.is_empty() => crate::checkpoint::warn(format!(
                        "resuming from the previous intact checkpoint {}",
                        ck.dir().display()
                    )),
                    Some(_) => {}
                    None => {
                        return Err(TrainError::checkpoint(
                            self.run.checkpoints_dir(),
                            format!(
                                "holds {} checkpoint(s) and none can be resumed (newest: {}); \
                                 move the folder aside to start again",
                                skipped.len(),
                                skipped[0]
                            ),
                        ))
                    }
                }
            }
            (Some(ck), false) => {
                return Err(TrainError::checkpoint(
                    ck.dir(),
                    "the run folder already has checkpoints: resume it or choose another folder",
                ))
            }
            (None, _) => {}
        }
        let start_step = meta.step;
        let mut log = JsonlLog::open(self.run.log_path(), Some(start_step))?;
        let progress = Progress::new(start_step, self.opts.total_steps, self.opts.progress);
        if start_step > 0 {
            progress.println(format!("resumed from step {start_step}"));
        }
        let session = Instant::now();
        let wall0 = meta.wall_s;
        let mut interval_start = Instant::now();
        let mut interval_images = 0usize;
        let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        let mut metric_sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        let mut last_ck: Option<PathBuf> = latest.map(|c| c.dir().to_path_buf());
        let mut session_images = 0u64;
        let mut outcome = Outcome::Finished;
        let log_every = self.opts.log_every.max(1);

        while meta.step < self.opts.total_steps {
            if self.stop.is_set() {
                outcome = Outcome::Interrupted;
                break;
            }
            let step = meta.step + 1;
            let report = task.step(step)?;
            for (name, value) in &report.losses {
                if !value.is_finite() {
                    progress.finish();
                    return Err(TrainError::NonFinite {
                        step,
                        name: name.clone(),
                        value: *value,
                    });
                }
                if let Some(limit) = self.opts.divergence_limit {
                    if value.abs() > limit {
                        progress.finish();
                        return Err(TrainError::Diverged {
                            step,
                            name: name.clone(),
                            value: *value,
                            limit,
                        });
                    }
                }
                let e = sums.entry(name.clone()).or_default();
                e.0 += *value as f64;
                e.1 += 1;
            }
            for (name, value) in &report.metrics {
                let e = metric_sums.entry(name.clone()).or_default();
                e.0 += *value as f64;
                e.1 += 1;
            }
            meta.step = step;
            meta.images += report.images as u64;
            meta.wall_s = wall0 + session.elapsed().as_secs_f64();
            session_images += report.images as u64;
            interval_images += report.images;

            if step.is_multiple_of(log_every) || step == self.opts.total_steps {
                let secs = interval_start.elapsed().as_secs_f64().max(1e-9);
                let ips = interval_images as f64 / secs;
                let losses: BTreeMap<String, f64> = sums
                    .iter()
                    .map(|(k, (sum, n))| (k.clone(), sum / (*n).max(1) as f64))
                    .collect();
                let metrics: BTreeMap<String, f64> = metric_sums
                    .iter()
                    .map(|(k, (sum, n))| (k.clone(), sum / (*n).max(1) as f64))
                    .collect();
                let msg = format!(
                    "{ips:.1} img/s  {}",
                    losses
                        .iter()
                        .map(|(k, v)| format!("{k}={v:.4}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                log.append(&LogRecord {
                    step,
                    images: meta.images,
                    wall_s: meta.wall_s,
                    images_per_s: ips,
                    losses,
                    metrics,
                })?;
                if progress.plain_lines() {
                    progress.println(format!(
                        "step {step}/{}  {msg}  ({:.0} s)",
                        self.opts.total_steps, meta.wall_s
                    ));
                }
                progress.update(step, msg);
                sums.clear();
                metric_sums.clear();
                interval_images = 0;
                interval_start = Instant::now();
            }
            if self.opts.sample_every > 0 && step.is_multiple_of(self.opts.sample_every) {
                self.write_sample(task, step)?;
            }
            let periodic =
                self.opts.checkpoint_every > 0 && step.is_multiple_of(self.opts.checkpoint_every);
            if periodic || step == self.opts.total_steps || self.stop.is_set() {
                last_ck = Some(self.save(task, &meta)?);
            }
        }
        if outcome == Outcome::Interrupted {
            // A stop before the first step of this session, or one that raced
            // the save above: make sure the current step is saved.
            if meta.step > 0 {
                last_ck = Some(self.save(task, &meta)?);
            }
            progress.println(format!("stopped at step {}; checkpoint saved", meta.step));
        }
        progress.finish();
        let secs = session.elapsed().as_secs_f64().max(1e-9);
        Ok(RunSummary {
            outcome,
            step: meta.step,
            start_step,
            images: meta.images,
            wall_s: meta.wall_s,
            images_per_s: session_images as f64 / secs,
            checkpoint: last_ck,
            skipped,
        })
    }

    /// Writes the task's sample grid for `step` to `samples/step-NNNNNN.png`
    /// (atomically) and returns its path, if the task makes grids.
    pub fn write_sample(&self, task: &mut dyn TrainTask, step: u64) -> Result<Option<PathBuf>> {
        match task.sample_grid()? {
            Some(img) => {
                let path = self
                    .run
                    .samples_dir()
                    .join(format!("{}.png", crate::checkpoint::step_dir_name(step)));
                agesynth_data::draw::save_png(&path, &img)?;
                Ok(Some(path))
            }
            None => Ok(None),
        }
    }
}
