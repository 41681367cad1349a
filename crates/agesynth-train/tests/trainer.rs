//! The generic trainer on a small regression task: exact resume, the NaN
//! guard, Ctrl-C, keep-last-N and the log.

use std::collections::HashMap;

use agesynth_train::{
    checkpoint::Checkpoint,
    log::read_log,
    params,
    rng::{randn, step_rng},
    Adam, AdamConfig, CheckpointContents, DataOrder, Outcome, ParamGroup, RunDir, StepReport,
    StopFlag, TrainError, TrainTask, Trainer, TrainerOptions,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

/// Fits y = x·w* + noise with a 2-layer MLP: data order, seeded noise and
/// Adam state all matter for an exact resume.
struct Regression {
    vars: VarMap,
    w1: Tensor,
    w2: Tensor,
    opt: Adam,
    x: Tensor,
    y: Tensor,
    order: DataOrder,
    seed: u64,
    /// (step, in the loss?) of a NaN injection.
    poison_at: Option<(u64, bool)>,
    stop_at: Option<(u64, StopFlag)>,
}

impl Regression {
    fn new(seed: u64) -> Self {
        let dev = Device::Cpu;
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        // Fixed initial values, so two tasks start equal.
        let w1 = vb.get_with_hints((4, 8), "w1", Init::Const(0.1)).unwrap();
        let w2 = vb.get_with_hints((8, 1), "w2", Init::Const(0.1)).unwrap();
        let mut r = step_rng(7, "data", 0);
        let x = randn(&mut r, (64, 4), &dev).unwrap();
        let w_true = Tensor::new(&[[1.0f32], [-2.0], [0.5], [3.0]], &dev).unwrap();
        let y = x.matmul(&w_true).unwrap();
        let opt = Adam::new(
            vec![ParamGroup::from_varmap("mlp", &vars, 1.0)],
            AdamConfig {
                lr: 0.01,
                ..AdamConfig::default()
            },
        )
        .unwrap();
        // Break the symmetry of the constant init with a seeded perturbation.
        let p = randn(&mut step_rng(seed, "init", 0), (4, 8), &dev).unwrap();
        vars.data().lock().unwrap()["w1"]
            .set(&(w1.clone() + (p * 0.3).unwrap()).unwrap())
            .unwrap();
        Regression {
            vars,
            w1,
            w2,
            opt,
            x,
            y,
            order: DataOrder::new(64, seed),
            seed,
            poison_at: None,
            stop_at: None,
        }
    }
}

impl TrainTask for Regression {
    fn step(&mut self, step: u64) -> agesynth_train::Result<StepReport> {
        if let Some((s, flag)) = &self.stop_at {
            if *s == step {
                flag.set();
            }
        }
        let idx = self.order.next_indices(8);
        let idx_t = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect(), 8, &Device::Cpu)?;
        let mut x = self.x.index_select(&idx_t, 0)?;
        let noise = (randn(
            &mut step_rng(self.seed, "noise", step),
            (8, 1),
            &Device::Cpu,
        )? * 0.1)?;
        let mut y = (self.y.index_select(&idx_t, 0)? + noise)?;
        match self.poison_at {
            Some((s, true)) if s == step => y = (y * f64::NAN)?,
            // NaN inputs: the ReLU maps them to 0, so the loss stays finite
            // while the gradient (and so the weights) become NaN.
            Some((s, false)) if s == step => x = (x * f64::NAN)?,
            _ => {}
        }
        let pred = x.matmul(&self.w1)?.relu()?.matmul(&self.w2)?;
        let loss = (pred - y)?.sqr()?.mean_all()?;
        let value = loss.to_scalar::<f32>()?;
        self.opt.backward_step(&loss)?;
        Ok(StepReport {
            images: 8,
            losses: vec![("mse".into(), value)],
            metrics: Vec::new(),
        })
    }

    fn checkpoint(&self) -> agesynth_train::Result<CheckpointContents> {
        CheckpointContents::new()
            .tensors("model", params::snapshot(&self.vars), None)
            .tensors(
                "optim",
                self.opt.state_tensors()?,
                Some(self.opt.metadata()),
            )
            .json("data", &self.order)
    }

    fn restore(&mut self, ck: &Checkpoint) -> agesynth_train::Result<()> {
        let (t, _) = ck.load_tensors("model")?;
        params::restore(&self.vars, t, &ck.tensors_path("model"))?;
        let (t, meta) = ck.load_tensors("optim")?;
        self.opt.load_state(t, &meta, &ck.tensors_path("optim"))?;
        self.order = ck.load_json("data")?;
        Ok(())
    }
}

fn opts(total: u64, every: u64) -> TrainerOptions {
    TrainerOptions {
        total_steps: total,
        log_every: 1,
        sample_every: 0,
        checkpoint_every: every,
        keep_last: 10,
        divergence_limit: Some(1e6),
        progress: false,
    }
}

fn losses(run: &RunDir) -> Vec<(u64, f64)> {
    read_log(run.log_path())
        .unwrap()
        .iter()
        .map(|r| (r.step, r.losses["mse"]))
        .collect()
}

/// 200 steps straight against 100 + resume (a new task and trainer, as after
/// a restart) + 100: the same loss at every step, bit for bit, and the same
/// final weights.
#[test]
fn resume_continues_the_same_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let straight = RunDir::open(dir.path().join("straight")).unwrap();
    let mut task = Regression::new(3);
    let s = Trainer::new(straight.clone(), opts(200, 100))
        .run(&mut task, false)
        .unwrap();
    assert_eq!(
        (s.outcome, s.step, s.images),
        (Outcome::Finished, 200, 1600)
    );
    let a = losses(&straight);
    assert_eq!(a.len(), 200);
    assert!(
        a[199].1 < a[0].1 * 0.1,
        "did not learn: {:?} -> {:?}",
        a[0],
        a[199]
    );

    let split = RunDir::open(dir.path().join("split")).unwrap();
    let mut first = Regression::new(3);
    Trainer::new(split.clone(), opts(100, 100))
        .run(&mut first, false)
        .unwrap();
    drop(first);
    let mut second = Regression::new(3);
    let s = Trainer::new(split.clone(), opts(200, 100))
        .run(&mut second, true)
        .unwrap();
    assert_eq!((s.start_step, s.step, s.images), (100, 200, 1600));
    assert_eq!(losses(&split), a);
    assert_eq!(
        params::snapshot(&task.vars)["w1"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        params::snapshot(&second.vars)["w1"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    let _ = (&task.w2, &second.w2);

    // Without --resume an existing run is not overwritten.
    let err = Trainer::new(split.clone(), opts(300, 100)).run(&mut Regression::new(3), false);
    assert!(matches!(err, Err(TrainError::Checkpoint { .. })));
}

/// A NaN at step 7 stops the run naming the step and the loss; the
/// checkpoint of step 5 stays the latest and loads.
#[test]
fn nan_guard_stops_and_keeps_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path()).unwrap();
    let mut task = Regression::new(1);
    task.poison_at = Some((7, true));
    let err = Trainer::new(run.clone(), opts(20, 5))
        .run(&mut task, false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TrainError::NonFinite { step: 7, .. })
            && msg.contains("step 7")
            && msg.contains("mse"),
        "{msg}"
    );
    let latest = run.latest().unwrap().unwrap();
    assert_eq!(latest.step(), 5);
    let (w, _) = latest.load_tensors("model").unwrap();
    assert!(agesynth_train::checkpoint::all_finite(&w["w1"]).unwrap());
    // The task's weights are NaN now: a save is refused and changes nothing.
    let contents = task.checkpoint().unwrap();
    let err = run
        .save_checkpoint(7, &contents, &serde_json::json!({"step": 7}), 3)
        .unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteWeights { step: 7, .. }),
        "{err}"
    );
    assert_eq!(run.latest().unwrap().unwrap().step(), 5);
    // Resuming from it works and finishes.
    let s = Trainer::new(run.clone(), opts(20, 5))
        .run(&mut Regression::new(1), true)
        .unwrap();
    assert_eq!((s.start_step, s.step), (5, 20));
}

/// NaN weights behind a finite loss (a ReLU swallows NaN activations) are
/// caught when the next checkpoint is written: step 10 is refused, step 5
/// stays the latest.
#[test]
fn nan_weights_are_never_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path()).unwrap();
    let mut task = Regression::new(1);
    task.poison_at = Some((7, false));
    let err = Trainer::new(run.clone(), opts(20, 5))
        .run(&mut task, false)
        .unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteWeights { step: 10, .. }),
        "{err}"
    );
    assert_eq!(run.checkpoint_steps().unwrap(), vec![5]);
    assert_eq!(run.latest().unwrap().unwrap().step(), 5);
}

/// A stop request (what Ctrl-C sets) during step 13 saves step 13 and ends
/// cleanly; divergence over the limit is an error naming the limit.
#[test]
fn stop_flag_saves_and_exits_and_divergence_stops() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path()).unwrap();
    let flag = StopFlag::new();
    let mut task = Regression::new(2);
    task.stop_at = Some((13, flag.clone()));
    let s = Trainer::new(run.clone(), opts(50, 10))
        .with_stop(flag)
        .run(&mut task, false)
        .unwrap();
    assert_eq!((s.outcome, s.step), (Outcome::Interrupted, 13));
    assert_eq!(run.checkpoint_steps().unwrap(), vec![10, 13]);
    assert_eq!(run.latest().unwrap().unwrap().step(), 13);

    let mut o = opts(50, 10);
    o.divergence_limit = Some(1e-3);
    let err = Trainer::new(RunDir::open(dir.path().join("b")).unwrap(), o)
        .run(&mut Regression::new(2), false)
        .unwrap_err();
    assert!(matches!(err, TrainError::Diverged { step: 1, .. }), "{err}");
    let _: HashMap<String, Tensor> = HashMap::new();
}

/// Issue 17, item 5: with the newest checkpoint truncated, resume falls back
/// to the previous intact one (naming the broken one), cuts the log back to
/// it and ends with the same weights and loss curve as a run that never
/// broke; with every checkpoint broken, resume is an error.
#[test]
fn resume_falls_back_past_a_broken_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let straight = RunDir::open(dir.path().join("straight")).unwrap();
    let mut reference = Regression::new(4);
    Trainer::new(straight.clone(), opts(30, 10))
        .run(&mut reference, false)
        .unwrap();

    let run = RunDir::open(dir.path().join("broken")).unwrap();
    Trainer::new(run.clone(), opts(20, 10))
        .run(&mut Regression::new(4), false)
        .unwrap();
    let newest = run.checkpoints_dir().join("step-000020");
    let optim = newest.join("optim.safetensors");
    let bytes = std::fs::read(&optim).unwrap();
    std::fs::write(&optim, &bytes[..bytes.len() * 2 / 5]).unwrap();
    let mut resumed = Regression::new(4);
    let s = Trainer::new(run.clone(), opts(30, 10))
        .run(&mut resumed, true)
        .unwrap();
    assert_eq!((s.start_step, s.step), (10, 30));
    assert_eq!(s.skipped.len(), 1);
    assert!(s.skipped[0].dir.ends_with("step-000020"), "{:?}", s.skipped);
    assert_eq!(losses(&run), losses(&straight));
    let w = |t: &Regression| {
        params::snapshot(&t.vars)["w1"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&resumed), w(&reference));

    // Every checkpoint broken: nothing to resume is an error, not step 1.
    for step in run.checkpoint_steps().unwrap() {
        let p = run
            .checkpoints_dir()
            .join(format!("step-{step:06}"))
            .join("model.safetensors");
        std::fs::write(&p, b"garbage").unwrap();
    }
    let log_before = std::fs::read(run.log_path()).unwrap();
    let err = Trainer::new(run.clone(), opts(40, 10))
        .run(&mut Regression::new(4), true)
        .unwrap_err();
    assert!(err.to_string().contains("none can be resumed"), "{err}");
    assert_eq!(std::fs::read(run.log_path()).unwrap(), log_before);
}
