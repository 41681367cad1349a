//! A training task of your own, driven by agesynth's [`Trainer`].
//!
//! A [`TrainTask`] knows how to take one step and how to save and restore
//! itself; the trainer does the rest the same way for every task: the
//! JSON-lines log, progress, NaN and divergence guards, atomic checkpoints
//! in a [`RunDir`], Ctrl-C, and resume. Here the task fits a linear model
//! `y = x·w + b` to synthetic data with the crate's [`Adam`] (whose state
//! goes into the checkpoint, unlike candle's optimisers).
//!
//! The example trains twice, in run folders under a temporary directory:
//! once straight to step 200, and once to step 100 and then, with a fresh
//! task as after a restart, resumed from that run's checkpoint to step 200.
//! Both runs log the same loss at every step and end with the same weights,
//! bit for bit: the checkpoint holds the weights, Adam's state and the data
//! order, and every random draw of a step comes from the seed and the step
//! number ([`agesynth_train::rng::step_rng`]), never from a generator that
//! runs on from the start.
//!
//! ```text
//! cargo run -p agesynth-train --example custom_task
//! ```

use agesynth_train::{
    checkpoint::{Checkpoint, CheckpointRestore},
    log::read_log,
    params,
    rng::{randn, step_rng},
    Adam, AdamConfig, CheckpointContents, DataOrder, ParamGroup, RunDir, StepReport, TrainTask,
    Trainer, TrainerOptions,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

/// Samples in the data set, inputs per sample, samples per step.
const N: usize = 256;
const D: usize = 4;
const BATCH: usize = 16;
const SEED: u64 = 7;

/// Least squares on `y = x·w_true + 0.7 + noise`.
struct LinearFit {
    vars: VarMap,
    w: Tensor,
    b: Tensor,
    opt: Adam,
    x: Tensor,
    y: Tensor,
    order: DataOrder,
    seed: u64,
}

impl LinearFit {
    fn new(seed: u64) -> agesynth_train::Result<Self> {
        let dev = Device::Cpu;
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let w = vb.get_with_hints((D, 1), "w", Init::Const(0.0))?;
        let b = vb.get_with_hints(1, "b", Init::Const(0.0))?;
        // The data set, drawn once from its own stream of the seed.
        let x = randn(&mut step_rng(seed, "data", 0), (N, D), &dev)?;
        let w_true = Tensor::new(&[[1.5f32], [-2.0], [0.5], [3.0]], &dev)?;
        let y = (x.matmul(&w_true)? + 0.7)?;
        let opt = Adam::new(
            vec![ParamGroup::from_varmap("linear", &vars, 1.0)],
            AdamConfig {
                lr: 0.05,
                ..AdamConfig::default()
            },
        )?;
        Ok(LinearFit {
            vars,
            w,
            b,
            opt,
            x,
            y,
            // A shuffled order per epoch, derived from (seed, epoch).
            order: DataOrder::new(N, seed),
            seed,
        })
    }
}

impl TrainTask for LinearFit {
    fn step(&mut self, step: u64) -> agesynth_train::Result<StepReport> {
        let idx: Vec<u32> = self
            .order
            .next_indices(BATCH)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        let idx = Tensor::from_vec(idx, BATCH, &Device::Cpu)?;
        let x = self.x.index_select(&idx, 0)?;
        // Label noise from (seed, step): a resumed run draws the same.
        let noise = randn(
            &mut step_rng(self.seed, "noise", step),
            (BATCH, 1),
            &Device::Cpu,
        )?;
        let y = (self.y.index_select(&idx, 0)? + (noise * 0.1)?)?;
        let pred = x.matmul(&self.w)?.broadcast_add(&self.b)?;
        let loss = (pred - y)?.sqr()?.mean_all()?;
        let value = loss.to_scalar::<f32>()?;
        self.opt.backward_step(&loss)?;
        Ok(StepReport {
            images: BATCH,
            losses: vec![("mse".to_string(), value)],
            metrics: Vec::new(),
        })
    }

    fn checkpoint(&self) -> agesynth_train::Result<CheckpointContents> {
        CheckpointContents::new()
            .vars("model", &self.vars)
            .optimizer("optim", &self.opt)?
            .json("data", &self.order)
    }

    fn restore(&mut self, checkpoint: &Checkpoint) -> agesynth_train::Result<()> {
        checkpoint.restore_vars("model", &self.vars)?;
        checkpoint.restore_optimizer("optim", &mut self.opt)?;
        self.order = checkpoint.load_json("data")?;
        Ok(())
    }
}

fn options(total_steps: u64) -> TrainerOptions {
    TrainerOptions {
        total_steps,
        log_every: 1,
        sample_every: 0,
        checkpoint_every: 50,
        keep_last: 2,
        divergence_limit: Some(1e4),
        progress: false,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;

    // Straight through.
    let straight = RunDir::open(tmp.path().join("straight"))?;
    let mut a = LinearFit::new(SEED)?;
    let s = Trainer::new(straight.clone(), options(200)).run(&mut a, false)?;
    println!(
        "straight: steps 1-{}, checkpoint {:?}",
        s.step, s.checkpoint
    );

    // Half, then a fresh task resumes from the run's latest checkpoint.
    let split = RunDir::open(tmp.path().join("split"))?;
    Trainer::new(split.clone(), options(100)).run(&mut LinearFit::new(SEED)?, false)?;
    let mut b = LinearFit::new(SEED)?;
    let r = Trainer::new(split.clone(), options(200)).run(&mut b, true)?;
    println!(
        "split:    steps 1-100, then resumed at {} to {}",
        r.start_step, r.step
    );

    let (la, lb) = (read_log(straight.log_path())?, read_log(split.log_path())?);
    for step in [1, 100, 101, 200] {
        let (x, y) = (&la[step - 1], &lb[step - 1]);
        println!(
            "step {step:3}: mse {:.6} straight, {:.6} split",
            x.losses["mse"], y.losses["mse"]
        );
    }
    let same_log = la.len() == lb.len()
        && la
            .iter()
            .zip(&lb)
            .all(|(x, y)| x.step == y.step && x.losses == y.losses);
    let (wa, wb) = (params::snapshot(&a.vars), params::snapshot(&b.vars));
    let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
    let same_weights = flat(&wa["w"])? == flat(&wb["w"])? && flat(&wa["b"])? == flat(&wb["b"])?;
    println!(
        "learned w = {:?}, b = {:?} (true: [1.5, -2.0, 0.5, 3.0], 0.7)",
        flat(&wb["w"])?,
        flat(&wb["b"])?
    );
    println!("same losses at every step: {same_log}; same final weights: {same_weights}");
    if !(same_log && same_weights) {
        return Err("the resumed run differs from the straight one".into());
    }
    Ok(())
}
