//! The FaceGAN trainer on the `tiny` preset: the identity loss reaches the
//! generator, mixed steps report every term, checkpoint round trip, exact
//! resume, and learning a synthetic ageing rule.
//!
//! The identity network here is `agesynth_facegan::testing::RandomEmbedder`,
//! a small randomly initialised convolutional network: a test double that is
//! differentiable like the real dlib embedder but knows nothing of faces. It
//! is used only to check that gradients flow and that the term is wired.

use std::{path::Path, sync::Arc, time::Instant};

use agesynth_core::{AgeBins, AgeGenerator, AgeGroup, FaceEmbedder, FaceImage};
use agesynth_facegan::{testing::RandomEmbedder, BottleneckAge, FaceGanConfig, Generator};
use agesynth_losses::{IdentityLoss, Loss, LossInput};
use agesynth_train::{
    facegan::load_generator, log::read_log, FaceGanLossWeights, FaceGanTask, FaceGanTrainConfig,
    PairsWriter, RealFaces, RunDir, SynthPairs, TrainTask, Trainer, TrainerOptions,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

const S: usize = 16;
/// Brightening per age group of the synthetic rule.
const DELTA: f32 = 0.12;

/// A smooth random pattern in about [-0.75, 0.05] (room for 5·DELTA above).
fn base_image(seed: u64) -> Vec<f32> {
    let r = |k: u64| (((seed * 2654435761 + k * 40503) % 1000) as f32) / 1000.0;
    let mut v = Vec::with_capacity(3 * S * S);
    for c in 0..3u64 {
        let (a, b, p) = (r(c * 3 + 1) * 0.6, r(c * 3 + 2) * 0.6, r(c * 3 + 3) * 6.0);
        let m = r(c + 20) * 0.3 - 0.5;
        for y in 0..S {
            for x in 0..S {
                v.push(m + 0.25 * (a * x as f32 + b * y as f32 + p).sin());
            }
        }
    }
    v
}

/// The synthetic ageing rule: group `k` is the base image brightened by `k·DELTA`.
fn aged(base: &[f32], k: usize) -> Vec<f32> {
    base.iter().map(|&p| p + k as f32 * DELTA).collect()
}

/// A synthetic-pairs folder of `n` identities following the rule.
fn write_pairs(dir: &Path, n: usize, seed0: u64) -> Arc<SynthPairs> {
    let bins = AgeBins::default();
    let g = bins.len();
    let mut w =
        PairsWriter::create(dir, S, &bins, 2, 64, serde_json::json!({"test": true})).unwrap();
    let mut data = Vec::new();
    for i in 0..n {
        let b = base_image(seed0 + i as u64);
        for k in 0..g {
            data.extend(aged(&b, k));
        }
    }
    let images = Tensor::from_vec(data, (n, g, 3, S, S), &Device::Cpu).unwrap();
    let z = Tensor::zeros((n, 2), DType::F32, &Device::Cpu).unwrap();
    w.push(&images, &z).unwrap();
    w.finish().unwrap();
    Arc::new(SynthPairs::open(dir).unwrap())
}

/// `n` "real" faces at 16 px (generated), ages spread over the groups.
fn real_faces(n: usize) -> Arc<RealFaces> {
    let images: Vec<FaceImage> = (0..n)
        .map(|i| {
            let chw = base_image(1000 + i as u64);
            let mut hwc = Vec::with_capacity(3 * S * S);
            for y in 0..S {
                for x in 0..S {
                    for c in 0..3 {
                        let v = chw[c * S * S + y * S + x];
                        hwc.push(((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8);
                    }
                }
            }
            FaceImage::new(S as u32, S as u32, hwc).unwrap()
        })
        .collect();
    let ages: Vec<f32> = (0..n).map(|i| (i * 13 % 70) as f32 + 2.0).collect();
    Arc::new(RealFaces::from_images(&images, &ages, &AgeBins::default()).unwrap())
}

fn embedder(seed: u64) -> Box<dyn FaceEmbedder> {
    let vars = VarMap::new();
    let vb = agesynth_facegan::seeded_var_builder(&vars, seed, DType::F32, &Device::Cpu);
    Box::new(RandomEmbedder::new(16, vb).unwrap())
}

fn opts(total: u64, every: u64) -> TrainerOptions {
    TrainerOptions {
        total_steps: total,
        log_every: 1,
        sample_every: 0,
        checkpoint_every: every,
        keep_last: 3,
        divergence_limit: Some(1e4),
        progress: false,
    }
}

/// [`real_faces`] all labelled `gender`.
fn real_faces_of_gender(n: usize, gender: agesynth_core::Gender) -> Arc<RealFaces> {
    let mut real = Arc::try_unwrap(real_faces(n)).ok().unwrap();
    real.set_genders(vec![Some(gender); n]).unwrap();
    Arc::new(real)
}

fn mixed_config(seed: u64) -> FaceGanTrainConfig {
    let mut c = FaceGanTrainConfig::new(FaceGanConfig::tiny(), 6, seed);
    c.sample_rows = 2;
    c
}

#[test]
fn identity_gradient_reaches_every_generator_parameter() {
    let cfg = FaceGanConfig::tiny();
    let vars = VarMap::new();
    let g = Generator::new(
        &cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let e = embedder(3);
    let x = Tensor::from_vec(
        [base_image(1), base_image(2)].concat(),
        (2, 3, S, S),
        &Device::Cpu,
    )
    .unwrap();
    let out = g.forward(&x, &[AgeGroup(4), AgeGroup(0)]).unwrap();
    let loss = IdentityLoss {
        embedder: e.as_ref(),
        distance: Default::default(),
        weight: 1.0,
    };
    let l = loss.weighted(&LossInput::new(&out).reference(&x)).unwrap();
    assert!(l.to_scalar::<f32>().unwrap() > 0.0);
    let grads = l.backward().unwrap();
    let all = vars.data().lock().unwrap();
    assert!(all.len() > 10);
    for (name, var) in all.iter() {
        let gr = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let s = gr
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(s > 0.0 && s.is_finite(), "gradient of {name} is {s}");
    }
}

#[test]
fn mixed_steps_report_every_term_and_make_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut names = std::collections::BTreeSet::new();
    // Steps 1..=6 with R1 every 4 steps: the penalty is applied at step 4.
    let mut cfg = mixed_config(1);
    cfg.r1_every = 4;
    let mut task = FaceGanTask::new(
        cfg,
        Some(real_faces(10)),
        Some(pairs.clone()),
        Some(embedder(7)),
        &Device::Cpu,
    )
    .unwrap();
    for step in 1..=6 {
        let r = task.step(step).unwrap();
        assert_eq!(r.images, 6);
        for (n, v) in r.losses {
            assert!(v.is_finite(), "{n} = {v}");
            names.insert(n);
        }
    }
    for want in [
        "d_adv", "d_age", "g_adv", "g_age", "syn_rec", "identity", "cycle", "g", "r1",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    let grid = task.sample_grid().unwrap().unwrap();
    // 2 rows × (input + 6 groups) of 16 px tiles with gaps and a label row.
    assert!(grid.width() > 7 * S as u32 && grid.height() > 2 * S as u32);

    // The ablations need only their own data; a missing source is an error.
    let mut real_only = mixed_config(1);
    real_only.synthetic_fraction = 0.0;
    assert!(FaceGanTask::new(
        real_only.clone(),
        Some(real_faces(4)),
        None,
        None,
        &Device::Cpu
    )
    .is_ok());
    let mut syn_only = mixed_config(1);
    syn_only.synthetic_fraction = 1.0;
    let mut t = FaceGanTask::new(syn_only, None, Some(pairs), None, &Device::Cpu).unwrap();
    let r = t.step(1).unwrap();
    assert!(r
        .losses
        .iter()
        .all(|(n, _)| n != "cycle" && n != "identity"));
    assert!(FaceGanTask::new(
        mixed_config(1),
        Some(real_faces(4)),
        None,
        None,
        &Device::Cpu
    )
    .is_err());
    assert!(FaceGanTask::new(real_only, None, None, None, &Device::Cpu).is_err());
}

/// 8 steps straight against 4 + resume (a fresh task, as after a restart)
/// and 4 more: identical losses at every step and identical weights; the
/// checkpoint's generator loads alone and gives the task's outputs.
#[test]
fn checkpoint_round_trip_and_exact_resume() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let real = real_faces(10);
    let dev = Device::Cpu;
    let new_task = || {
        FaceGanTask::new(
            mixed_config(9),
            Some(real.clone()),
            Some(pairs.clone()),
            Some(embedder(7)),
            &dev,
        )
        .unwrap()
    };
    let a_run = RunDir::open(dir.path().join("a")).unwrap();
    let mut a = new_task();
    Trainer::new(a_run.clone(), opts(8, 4))
        .run(&mut a, false)
        .unwrap();

    let b_run = RunDir::open(dir.path().join("b")).unwrap();
    let mut b1 = new_task();
    Trainer::new(b_run.clone(), opts(4, 4))
        .run(&mut b1, false)
        .unwrap();
    drop(b1);
    let mut b2 = new_task();
    // Without --resume an existing run is refused.
    assert!(Trainer::new(b_run.clone(), opts(8, 4))
        .run(&mut b2, false)
        .is_err());
    let s = Trainer::new(b_run.clone(), opts(8, 4))
        .run(&mut b2, true)
        .unwrap();
    assert_eq!((s.start_step, s.step), (4, 8));

    let la = read_log(a_run.log_path()).unwrap();
    let lb = read_log(b_run.log_path()).unwrap();
    assert_eq!(la.len(), 8);
    assert_eq!(lb.len(), 8);
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(x.step, y.step);
        for (k, v) in &x.losses {
            let w = y.losses[k];
            assert!(
                (v - w).abs() <= 1e-6 * v.abs().max(1.0),
                "step {} {k}: {v} vs {w}",
                x.step
            );
        }
    }
    let x = Tensor::from_vec(base_image(77), (1, 3, S, S), &dev).unwrap();
    let t = [AgeGroup(5)];
    let ya = a.generator().generate(&x, &t).unwrap();
    let yb = b2.generator().generate(&x, &t).unwrap();
    let diff = |p: &Tensor, q: &Tensor| {
        (p - q)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let d = diff(&ya, &yb);
    assert!(d < 1e-6, "resumed weights differ by {d}");

    // The EMA resumes exactly too, and differs from the live weights.
    let ea = a.generator_ema().generate(&x, &t).unwrap();
    let eb = b2.generator_ema().generate(&x, &t).unwrap();
    assert!(diff(&ea, &eb) < 1e-6, "resumed EMA differs");
    assert!(diff(&ea, &ya) > 0.0, "the EMA equals the live generator");

    // Round trip: a run folder loads its latest checkpoint's EMA generator,
    // and an exported weights file loads as it was saved.
    let (g, _) = load_generator(a_run.root(), &dev).unwrap();
    let yc = g.forward(&x, &t).unwrap();
    let d = diff(&ea, &yc);
    assert_eq!(d, 0.0);
    let file = dir.path().join("facegan-tiny.safetensors");
    a.export_generator(&file).unwrap();
    let (g, _) = load_generator(&file, &dev).unwrap();
    let d = diff(&ya, &g.forward(&x, &t).unwrap());
    assert_eq!(d, 0.0);
    // A weights file without its sidecar is a clear error naming it.
    std::fs::remove_file(agesynth_core::io::sidecar_path(&file)).unwrap();
    let err = match load_generator(&file, &dev) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a weights file without its sidecar loaded"),
    };
    assert!(err.contains("sidecar"), "{err}");
}

/// The tiny model learns "group k = brighten by k·DELTA" from synthetic
/// pairs (supervised term only) in a few hundred steps, with the age at the
/// bottleneck by modulation and by concatenation: on identities it never
/// saw, its error at every (source, target) falls well below copying the
/// input.
#[test]
fn tiny_model_learns_a_synthetic_ageing_rule() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("train"), 48, 0);
    let test = write_pairs(&dir.path().join("test"), 8, 5000);
    for mode in [BottleneckAge::Modulation, BottleneckAge::Concat] {
        let model = FaceGanConfig {
            bottleneck_age: mode,
            ..FaceGanConfig::tiny()
        };
        let mut cfg = FaceGanTrainConfig::new(model, 8, 3);
        cfg.synthetic_fraction = 1.0;
        cfg.g_lr = 2e-3;
        cfg.betas = (0.9, 0.999);
        cfg.weights.adversarial = 0.0;
        cfg.weights.age = 0.0;
        cfg.weights.synthetic_reconstruction = 1.0;
        let mut task =
            FaceGanTask::new(cfg, None, Some(pairs.clone()), None, &Device::Cpu).unwrap();
        let (before, copy) = rule_error(task.generator(), &test);
        let t0 = Instant::now();
        for step in 1..=300 {
            task.step(step).unwrap();
        }
        let (after, _) = rule_error(task.generator(), &test);
        eprintln!(
            "ageing rule ({mode:?}): copy-input MAE {copy:.4}, untrained {before:.4}, after 300 steps {after:.4} ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        // Copying the input is off by DELTA·|t − s| on average (0.28 here).
        assert!(copy > 0.2);
        assert!(
            after < 0.25 * copy,
            "{mode:?}: MAE {after} vs copy baseline {copy}"
        );
    }
}

/// Mean absolute error of `g` on the rule over every (source ≠ target) of
/// `test`'s identities, and that of copying the input.
fn rule_error(g: &dyn AgeGenerator, test: &SynthPairs) -> (f32, f32) {
    let bins = AgeBins::default();
    let (mut err, mut copy, mut n) = (0f32, 0f32, 0f32);
    let mae = |u: &Tensor, v: &Tensor| {
        (u - v)
            .unwrap()
            .abs()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    for s in bins.groups() {
        for t in bins.groups() {
            if s == t {
                continue;
            }
            let ids: Vec<usize> = (0..test.identities()).collect();
            let (a, b) = test
                .pair_batch(&ids, &vec![s; ids.len()], &vec![t; ids.len()], &Device::Cpu)
                .unwrap();
            let out = g.generate(&a.images, &vec![t; ids.len()]).unwrap();
            err += mae(&out, &b.images);
            copy += mae(&a.images, &b.images);
            n += 1.0;
        }
    }
    (err / n, copy / n)
}

/// The recipe against copying: a frozen age critic on every output, real
/// faces at a wrong age as fakes for D, self-reconstruction only at the
/// source group, the cycle only away from it, an identity critic. Every term
/// is reported and finite, and the critic's weights do not move.
#[test]
fn the_anti_copy_recipe_reports_its_terms_and_keeps_the_critic_frozen() {
    use agesynth_critic::{AgeCritic, CriticConfig, IdentityCritic};
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(4);
    cfg.weights.age_critic = 1.0;
    cfg.d_wrong_age = 1.0;
    cfg.targets.own_group = Some(0.3);
    cfg.targets.min_distance = 2;
    cfg.cycle_rows = agesynth_train::Rows::RealAwayFromSource;
    cfg.weights.cycle = 1.0;
    cfg.model.d_aux_classifier = false;
    cfg.weights.age = 0.0;
    let critic_vars = VarMap::new();
    let critic = AgeCritic::new(
        &CriticConfig::tiny_age(),
        agesynth_facegan::seeded_var_builder(&critic_vars, 9, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let before: Vec<f32> = critic_vars.all_vars()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let id = IdentityCritic::new(
        &CriticConfig::tiny_identity(),
        agesynth_facegan::seeded_var_builder(&VarMap::new(), 10, DType::F32, &Device::Cpu),
    )
    .unwrap();
    // Without the critic the term cannot be built.
    let mut task = FaceGanTask::new(
        cfg.clone(),
        Some(real_faces(12)),
        Some(pairs.clone()),
        Some(Box::new(id)),
        &Device::Cpu,
    )
    .unwrap();
    assert!(task
        .objective()
        .terms()
        .iter()
        .all(|t| t.name != "age_critic"));
    task = task.with_age_critic(Arc::new(critic)).unwrap();
    let names: Vec<&str> = task
        .objective()
        .terms()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "g_adv",
            "syn_rec",
            "identity",
            "cycle",
            "self_rec",
            "age_critic"
        ]
    );
    let mut seen = std::collections::BTreeSet::new();
    for step in 1..=6 {
        let r = task.step(step).unwrap();
        for (n, v) in r.losses.iter().chain(&r.metrics) {
            assert!(v.is_finite(), "{n} = {v}");
            seen.insert(n.clone());
        }
        // Mean logits are metrics, not losses.
        assert!(r.losses.iter().all(|(n, _)| n != "d_real" && n != "d_fake"));
    }
    for want in ["age_critic", "d_wrong_age", "d_wrong", "identity", "d_real"] {
        assert!(seen.contains(want), "{want} missing from {seen:?}");
    }
    let after: Vec<f32> = critic_vars.all_vars()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(before, after, "the age critic is frozen");

    // A critic of other groups is refused.
    let mut other = CriticConfig::tiny_age();
    other.head = agesynth_critic::CriticHead::AgeGroups {
        lower_bounds: vec![0.0, 30.0],
    };
    let c2 = AgeCritic::new(
        &other,
        agesynth_facegan::seeded_var_builder(&VarMap::new(), 9, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let t2 = FaceGanTask::new(cfg, Some(real_faces(12)), Some(pairs), None, &Device::Cpu).unwrap();
    assert!(t2.with_age_critic(Arc::new(c2)).is_err());
}

/// A warm start copies the given generator into G and its EMA.
#[test]
fn a_warm_start_takes_the_given_generator() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 4, 0);
    let mut cfg = mixed_config(2);
    cfg.synthetic_fraction = 1.0;
    let src = FaceGanTask::new(cfg.clone(), None, Some(pairs.clone()), None, &Device::Cpu).unwrap();
    cfg.seed = 3;
    let mut dst = FaceGanTask::new(cfg, None, Some(pairs), None, &Device::Cpu).unwrap();
    let x = Tensor::from_vec(base_image(5), (1, 3, S, S), &Device::Cpu).unwrap();
    let want = src.generator().generate(&x, &[AgeGroup(3)]).unwrap();
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(
        diff(
            &dst.generator().generate(&x, &[AgeGroup(3)]).unwrap(),
            &want
        ) > 1e-4
    );
    dst.init_generator_from(src.generator_vars()).unwrap();
    assert_eq!(
        diff(
            &dst.generator().generate(&x, &[AgeGroup(3)]).unwrap(),
            &want
        ),
        0.0
    );
    assert_eq!(
        diff(
            &dst.generator_ema().generate(&x, &[AgeGroup(3)]).unwrap(),
            &want
        ),
        0.0
    );
}

/// An age classifier that records the genders each call is given.
struct GenderRecorder {
    bins: AgeBins,
    seen: std::sync::Mutex<Vec<Vec<Option<agesynth_core::Gender>>>>,
}

impl agesynth_core::AgeClassifier for GenderRecorder {
    fn group_logits(&self, images: &Tensor) -> agesynth_core::Result<Tensor> {
        Ok(images.flatten_from(1)?.narrow(1, 0, self.bins.len())?)
    }
    fn group_logits_given_gender(
        &self,
        images: &Tensor,
        genders: &[Option<agesynth_core::Gender>],
    ) -> agesynth_core::Result<Tensor> {
        self.seen.lock().unwrap().push(genders.to_vec());
        self.group_logits(images)
    }
    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }
}

/// Real rows carry their label's gender, synthetic rows the gender given
/// for their identity, to the age-critic term.
#[test]
fn the_age_critic_is_told_each_rows_gender() {
    use agesynth_core::Gender;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(5);
    cfg.weights.age_critic = 1.0;
    let real = real_faces_of_gender(12, Gender::Male);
    let recorder = Arc::new(GenderRecorder {
        bins: AgeBins::default(),
        seen: Default::default(),
    });
    let task = FaceGanTask::new(
        cfg.clone(),
        Some(real.clone()),
        Some(pairs.clone()),
        None,
        &Device::Cpu,
    )
    .unwrap()
    .with_age_critic(recorder.clone())
    .unwrap();
    // One gender per synthetic identity, no more, no fewer.
    assert!(task
        .with_synthetic_genders(vec![Some(Gender::Female); 3])
        .is_err());
    let mut task = FaceGanTask::new(cfg.clone(), Some(real), Some(pairs), None, &Device::Cpu)
        .unwrap()
        .with_age_critic(recorder.clone())
        .unwrap()
        .with_synthetic_genders(vec![Some(Gender::Female); 8])
        .unwrap();
    task.step(1).unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the critic was never asked given gender");
    let (n_real, n) = (cfg.real_per_step(), cfg.batch);
    for call in &seen {
        assert_eq!(call.len(), n);
        assert!(call[..n_real].iter().all(|g| *g == Some(Gender::Male)));
        assert!(call[n_real..].iter().all(|g| *g == Some(Gender::Female)));
    }
}

/// With a second age critic for the old targets, each output is read by
/// exactly one of the two: the first below `old_age_critic_from`, the
/// second from it up.
#[test]
fn a_second_age_critic_reads_the_old_targets_and_the_first_the_rest() {
    use agesynth_core::Gender;
    use agesynth_train::Rows;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(5);
    cfg.weights.age_critic = 1.0;
    cfg.weights.old_age_critic = 2.0;
    cfg.old_age_critic_from = 3;
    let real = real_faces_of_gender(12, Gender::Male);
    let recorder = || {
        Arc::new(GenderRecorder {
            bins: AgeBins::default(),
            seen: Default::default(),
        })
    };
    let (young, old) = (recorder(), recorder());
    let new_task = || {
        FaceGanTask::new(
            cfg.clone(),
            Some(real.clone()),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
        .unwrap()
    };
    // Until the second critic is given, its term is out and the first reads all.
    let first_only = new_task().with_age_critic(young.clone()).unwrap();
    assert_eq!(term_rows(&first_only, "age_critic"), Some(Rows::All));
    assert_eq!(term_rows(&first_only, "age_critic_old"), None);
    let mut task = first_only
        .with_old_age_critic(old.clone())
        .unwrap()
        .with_synthetic_genders(vec![Some(Gender::Female); 8])
        .unwrap();
    assert_eq!(term_rows(&task, "age_critic"), Some(Rows::TargetBelow(3)));
    assert_eq!(
        term_rows(&task, "age_critic_old"),
        Some(Rows::TargetFrom(3))
    );
    let steps = 4;
    for s in 1..=steps {
        task.step(s).unwrap();
    }
    let count = |r: &GenderRecorder| -> usize { r.seen.lock().unwrap().iter().map(Vec::len).sum() };
    let (a, b) = (count(&young), count(&old));
    assert!(a > 0 && b > 0, "young {a}, old {b}");
    // Each output is read twice (as it is and mirrored) by exactly one critic.
    assert_eq!(a + b, 2 * steps as usize * cfg.batch, "young {a}, old {b}");
    // A second critic's group must exist.
    let mut bad = cfg.clone();
    bad.old_age_critic_from = 6;
    assert!(FaceGanTask::new(bad, Some(real), Some(pairs), None, &Device::Cpu).is_err());
}

/// With a third age critic for the oldest targets, each output is read by
/// exactly one of the three: the first below `old_age_critic_from`, the
/// second from it up to `oldest_age_critic_from`, the third from there up;
/// the third needs the second and a group after the second's.
#[test]
fn a_third_age_critic_reads_the_oldest_targets_and_the_second_only_up_to_them() {
    use agesynth_core::Gender;
    use agesynth_train::Rows;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(5);
    cfg.weights.age_critic = 1.0;
    cfg.weights.old_age_critic = 2.0;
    cfg.weights.oldest_age_critic = 2.0;
    cfg.old_age_critic_from = 3;
    cfg.oldest_age_critic_from = 5;
    let real = real_faces_of_gender(12, Gender::Male);
    let recorder = || {
        Arc::new(GenderRecorder {
            bins: AgeBins::default(),
            seen: Default::default(),
        })
    };
    let (young, old, oldest) = (recorder(), recorder(), recorder());
    let task = FaceGanTask::new(
        cfg.clone(),
        Some(real.clone()),
        Some(pairs.clone()),
        None,
        &Device::Cpu,
    )
    .unwrap()
    .with_age_critic(young.clone())
    .unwrap()
    .with_old_age_critic(old.clone())
    .unwrap();
    // Until the third critic is given, the second reads every old target.
    assert_eq!(
        term_rows(&task, "age_critic_old"),
        Some(Rows::TargetFrom(3))
    );
    assert_eq!(term_rows(&task, "age_critic_oldest"), None);
    let mut task = task
        .with_oldest_age_critic(oldest.clone())
        .unwrap()
        .with_synthetic_genders(vec![Some(Gender::Female); 8])
        .unwrap();
    assert_eq!(term_rows(&task, "age_critic"), Some(Rows::TargetBelow(3)));
    assert_eq!(
        term_rows(&task, "age_critic_old"),
        Some(Rows::TargetIn(3, 5))
    );
    assert_eq!(
        term_rows(&task, "age_critic_oldest"),
        Some(Rows::TargetFrom(5))
    );
    let steps = 6;
    for s in 1..=steps {
        task.step(s).unwrap();
    }
    let count = |r: &GenderRecorder| -> usize { r.seen.lock().unwrap().iter().map(Vec::len).sum() };
    let (a, b, c) = (count(&young), count(&old), count(&oldest));
    assert!(a > 0 && b > 0 && c > 0, "young {a}, old {b}, oldest {c}");
    // Each output is read twice (as it is and mirrored) by exactly one critic.
    assert_eq!(
        a + b + c,
        2 * steps as usize * cfg.batch,
        "young {a}, old {b}, oldest {c}"
    );
    // The third critic's group must come after the second's and exist, and
    // the third needs the second.
    for k in [3, 6] {
        let mut bad = cfg.clone();
        bad.oldest_age_critic_from = k;
        assert_config_refused(bad, "oldest_age_critic_from");
    }
    let mut bad = cfg.clone();
    bad.weights.old_age_critic = 0.0;
    assert_config_refused(bad, "old_age_critic");
    // Configs written before it read as without a third critic.
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json.as_object_mut()
        .unwrap()
        .remove("oldest_age_critic_from");
    json["weights"]
        .as_object_mut()
        .unwrap()
        .remove("oldest_age_critic");
    let before: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(before.weights.oldest_age_critic, 0.0);
    assert_eq!(before.oldest_age_critic_from, 0);
}

/// The old rows' identity term reads only the targets from
/// `old_age_critic_from` up, beside the identity term on every row; it
/// needs that group to exist, is off by default and in configs written
/// before it, and a step reports it finite.
#[test]
fn the_old_rows_identity_term_reads_the_old_targets_only() {
    use agesynth_train::Rows;
    let mut cfg = mixed_config(5);
    cfg.weights.identity_old = 3.0;
    cfg.old_age_critic_from = 4;
    check_extra_identity_term(&cfg, "identity_old", Rows::TargetFrom(4), 4, |w| {
        &mut w.identity_old
    });
    let mut bad = cfg.clone();
    bad.old_age_critic_from = 6;
    assert_config_refused(bad, "old_age_critic_from");
}

/// The young rows' identity term reads only the targets below
/// `identity_young_below`, beside the identity term on every row; that
/// bound must leave groups on both sides, configs written before it read
/// as off with the bound at 1, and a step reports it finite.
#[test]
fn the_young_rows_identity_term_reads_the_young_targets_only() {
    use agesynth_train::Rows;
    let mut cfg = mixed_config(5);
    cfg.weights.identity_young = 3.0;
    cfg.identity_young_below = 2;
    check_extra_identity_term(&cfg, "identity_young", Rows::TargetBelow(2), 6, |w| {
        &mut w.identity_young
    });
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json.as_object_mut().unwrap().remove("identity_young_below");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.identity_young_below, 1);
    for k in [0, 6] {
        let mut bad = cfg.clone();
        bad.identity_young_below = k;
        assert_config_refused(bad, "identity_young_below");
    }
}

/// For an identity term `name` on some rows (switched on in `cfg`, its
/// weight reached through `weight`): the objective holds it on `rows` beside
/// the identity term on every row, some of `steps` steps report it finite,
/// it is off by default and in configs written before it, and without an
/// identity network it is left out.
fn check_extra_identity_term(
    cfg: &FaceGanTrainConfig,
    name: &str,
    rows: agesynth_train::Rows,
    steps: u64,
    weight: impl Fn(&mut FaceGanLossWeights) -> &mut f64,
) {
    use agesynth_train::Rows;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let task = |e| {
        FaceGanTask::new(
            cfg.clone(),
            Some(real_faces(12)),
            Some(pairs.clone()),
            e,
            &Device::Cpu,
        )
        .unwrap()
    };
    let mut with = task(Some(embedder(7)));
    assert_eq!(term_rows(&with, "identity"), Some(Rows::All));
    assert_eq!(term_rows(&with, name), Some(rows));
    assert_some_step_reports(&mut with, name, steps);
    assert_eq!(*weight(&mut mixed_config(5).weights), 0.0);
    let mut json: serde_json::Value = serde_json::to_value(cfg).unwrap();
    json["weights"].as_object_mut().unwrap().remove(name);
    let mut old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(*weight(&mut old.weights), 0.0);
    assert_eq!(term_rows(&task(None), name), None);
}

/// `FaceGanTask::new` refuses `cfg` with an error that names `field`.
fn assert_config_refused(cfg: FaceGanTrainConfig, field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let err = FaceGanTask::new(cfg, Some(real_faces(12)), Some(pairs), None, &Device::Cpu)
        .err()
        .expect("the config is refused");
    assert!(err.to_string().contains(field), "{err}");
}

/// Over `steps` steps some batch reports term `name`, and every value it
/// reports is finite and non-negative.
fn assert_some_step_reports(task: &mut FaceGanTask, name: &str, steps: u64) {
    let mut seen = false;
    for s in 1..=steps {
        let report = task.step(s).unwrap();
        if let Some((_, v)) = report.losses.iter().find(|(n, _)| n == name) {
            assert!(v.is_finite() && *v >= 0.0, "{name}: {v}");
            seen = true;
        }
    }
    assert!(seen, "no step reported {name}");
}

/// D trains only when a generator term reads it: with the adversarial and
/// D-age weights at 0 a step leaves D's weights as they were and reports no
/// D loss; with either on, D's weights move.
#[test]
fn the_discriminator_trains_only_when_the_generator_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    // D's logits on a fixed image: they move when D's weights do.
    let x = Tensor::from_vec(base_image(9), (1, 3, S, S), &Device::Cpu).unwrap();
    let d_weights = |t: &FaceGanTask| -> Vec<f32> {
        t.discriminator()
            .judge(&x, &[AgeGroup(2)])
            .unwrap()
            .logits
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    for (adv, age, trains) in [(0.0, 0.0, false), (1.0, 0.0, true), (0.0, 1.0, true)] {
        let mut cfg = mixed_config(4);
        cfg.weights.adversarial = adv;
        cfg.weights.age = age;
        let mut task = FaceGanTask::new(
            cfg,
            Some(real_faces(12)),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(task.trains_discriminator(), trains, "adv {adv}, age {age}");
        let before = d_weights(&task);
        let r = task.step(1).unwrap();
        let moved = d_weights(&task) != before;
        assert_eq!(moved, trains, "adv {adv}, age {age}: D moved {moved}");
        assert_eq!(
            r.losses.iter().any(|(n, _)| n == "d_adv"),
            trains,
            "adv {adv}, age {age}: {:?}",
            r.losses
        );
    }
}

/// The rows the objective's term `name` reads, `None` when it is not in.
/// Counts the rows a gender critic reads and reads every face as male.
struct RowCounter(std::sync::atomic::AtomicUsize);

impl agesynth_core::GenderClassifier for RowCounter {
    fn gender_logits(&self, images: &Tensor) -> agesynth_core::Result<Tensor> {
        let n = images.dim(0)?;
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        // Male logit 0, female logit −mean(image): a function of the image,
        // so that the term has a gradient.
        let m = images.flatten_from(1)?.mean_keepdim(1)?;
        Ok(Tensor::cat(&[&m.zeros_like()?, &m.neg()?], 1)?)
    }
}

/// The gender-keeping term reads the targets from `gender_keep_from` up
/// once its critic is given, pays for a woman read as a man, is off by
/// default and in configs written before it, and needs its group to exist.
#[test]
fn the_gender_keeping_term_reads_the_targets_from_its_group_up() {
    use agesynth_core::Gender;
    use agesynth_train::Rows;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(5);
    cfg.weights.gender_keep = 2.0;
    cfg.gender_keep_from = 3;
    cfg.gender_keep_satisfied = 1.0;
    let real = real_faces_of_gender(12, Gender::Female);
    let new_task = |cfg: FaceGanTrainConfig| {
        FaceGanTask::new(
            cfg,
            Some(real.clone()),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
    };
    // Without its critic the term is out.
    let plain = new_task(cfg.clone()).unwrap();
    assert_eq!(term_rows(&plain, "gender_keep"), None);
    let counter = Arc::new(RowCounter(Default::default()));
    let mut task = plain
        .with_gender_critic(counter.clone())
        .unwrap()
        .with_synthetic_genders(vec![None; 8])
        .unwrap();
    assert_eq!(term_rows(&task, "gender_keep"), Some(Rows::TargetFrom(3)));
    let mut paid = false;
    for s in 1..=4 {
        let report = task.step(s).unwrap();
        if let Some((_, v)) = report.losses.iter().find(|(n, _)| n == "gender_keep") {
            assert!(v.is_finite() && *v >= 0.0, "gender_keep: {v}");
            paid |= *v > 0.0;
        }
    }
    // The women (real rows) are read as men by this critic: some step paid.
    assert!(paid, "no step charged a woman read as a man");
    let read = counter.0.load(std::sync::atomic::Ordering::Relaxed);
    // Each old row is read twice (as it is and mirrored); not every row is old.
    assert!(read > 0 && read < 2 * 4 * cfg.batch, "{read} rows read");
    // Off by default and in configs written before it existed.
    assert_eq!(mixed_config(5).weights.gender_keep, 0.0);
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json["weights"]
        .as_object_mut()
        .unwrap()
        .remove("gender_keep");
    json.as_object_mut()
        .unwrap()
        .remove("gender_keep_satisfied");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.weights.gender_keep, 0.0);
    assert_eq!(old.gender_keep_satisfied, 0.9);
    // Its group must exist.
    let mut bad = cfg.clone();
    bad.gender_keep_from = 6;
    let err = new_task(bad).err().expect("a missing group is an error");
    assert!(err.to_string().contains("gender_keep_from"), "{err}");
}

/// Records the groups and genders a realism critic is asked about, and
/// scores an image by minus its mean (a function of the image, so that the
/// term has a gradient).
struct RealismRecorder {
    bins: agesynth_core::AgeBins,
    seen: std::sync::Mutex<Vec<(agesynth_core::AgeGroup, Option<agesynth_core::Gender>)>>,
}

impl agesynth_core::RealismCritic for RealismRecorder {
    fn realism_logits(
        &self,
        images: &Tensor,
        groups: &[agesynth_core::AgeGroup],
        genders: &[Option<agesynth_core::Gender>],
    ) -> agesynth_core::Result<Tensor> {
        assert_eq!(groups.len(), genders.len());
        assert_eq!(images.dim(0)?, groups.len());
        let mut seen = self.seen.lock().unwrap();
        seen.extend(groups.iter().copied().zip(genders.iter().copied()));
        Ok((images.flatten_from(1)?.mean(1)?.neg()? - 3.0)?)
    }
    fn age_bins(&self) -> &agesynth_core::AgeBins {
        &self.bins
    }
}

/// The realism term reads the targets from `realism_from` up, each with its
/// person's gender, once its critic is given; it pays below the satisfied
/// logit, is off by default and in configs written before it, and refuses
/// a critic of other age groups.
#[test]
fn the_realism_term_reads_the_targets_from_its_group_up_with_their_genders() {
    use agesynth_core::{AgeBins, Gender};
    use agesynth_train::Rows;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(5);
    cfg.weights.realism = 2.0;
    cfg.realism_from = 2;
    let real = real_faces_of_gender(12, Gender::Female);
    let new_task = |cfg: FaceGanTrainConfig| {
        FaceGanTask::new(
            cfg,
            Some(real.clone()),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
    };
    let plain = new_task(cfg.clone()).unwrap();
    assert_eq!(term_rows(&plain, "realism"), None);
    let critic = Arc::new(RealismRecorder {
        bins: AgeBins::default(),
        seen: Default::default(),
    });
    let mut task = plain
        .with_realism_critic(critic.clone())
        .unwrap()
        .with_synthetic_genders(vec![Some(Gender::Male); 8])
        .unwrap();
    assert_eq!(term_rows(&task, "realism"), Some(Rows::TargetFrom(2)));
    let mut paid = false;
    for s in 1..=3 {
        let report = task.step(s).unwrap();
        if let Some((_, v)) = report.losses.iter().find(|(n, _)| n == "realism") {
            assert!(v.is_finite() && *v > 0.0, "realism: {v}");
            paid = true;
        }
    }
    assert!(paid, "no step had a row from group 2 up");
    let seen = critic.seen.lock().unwrap();
    assert!(!seen.is_empty());
    // Only targets from group 2 up, real rows as women, synthetic as men.
    assert!(seen.iter().all(|(g, _)| g.0 >= 2), "{seen:?}");
    assert!(seen.iter().all(|(_, s)| s.is_some()), "{seen:?}");
    assert!(seen.iter().any(|(_, s)| *s == Some(Gender::Female)));
    assert!(seen.iter().any(|(_, s)| *s == Some(Gender::Male)));
    drop(seen);
    // Off by default and in configs written before it existed.
    assert_eq!(mixed_config(5).weights.realism, 0.0);
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json["weights"].as_object_mut().unwrap().remove("realism");
    json.as_object_mut().unwrap().remove("realism_from");
    json.as_object_mut().unwrap().remove("realism_satisfied");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!((old.weights.realism, old.realism_from), (0.0, 0));
    assert_eq!(old.realism_satisfied, 2.0);
    // A critic of other groups is refused; a group that does not exist too.
    let other = Arc::new(RealismRecorder {
        bins: AgeBins::new(vec![0.0, 30.0]).unwrap(),
        seen: Default::default(),
    });
    assert!(new_task(cfg.clone())
        .unwrap()
        .with_realism_critic(other)
        .is_err());
    let mut bad = cfg.clone();
    bad.realism_from = 6;
    let err = new_task(bad).err().expect("a missing group is an error");
    assert!(err.to_string().contains("realism_from"), "{err}");
}

/// FaceGAN trains against a cStyleGAN discriminator when its config says
/// so: started from given weights, updated by the D step (R1 included),
/// checkpointed and resumed; a discriminator of another size, or D's age
/// weight without an age head, is refused, and configs written before the
/// field read as the PatchGAN.
#[test]
fn a_cstylegan_discriminator_trains_starts_from_weights_and_resumes() {
    use agesynth_cstylegan::CStyleGanConfig;
    use agesynth_train::FaceGanDiscriminator;
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let d_cfg = CStyleGanConfig {
        gender_conditioned: true,
        ..CStyleGanConfig::tiny()
    };
    assert_eq!(d_cfg.image_size, S);
    let mut cfg = mixed_config(5);
    cfg.discriminator = FaceGanDiscriminator::CStyleGan {
        config: Box::new(d_cfg.clone()),
    };
    cfg.weights.age = 0.0;
    cfg.r1_every = 2;
    let new_task = |cfg: &FaceGanTrainConfig| {
        FaceGanTask::new(
            cfg.clone(),
            Some(real_faces(12)),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
    };
    // Start from "trained" weights: another seed's discriminator.
    let trained = VarMap::new();
    agesynth_cstylegan::Discriminator::new(
        &d_cfg,
        agesynth_facegan::seeded_var_builder(&trained, 99, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut task = new_task(&cfg).unwrap();
    assert!(task.trains_discriminator());
    task.init_discriminator_from(&trained).unwrap();
    let x = Tensor::randn(0f32, 1.0, (4, 3, S, S), &Device::Cpu).unwrap();
    let t = [AgeGroup(0), AgeGroup(1), AgeGroup(4), AgeGroup(5)];
    let before = task.discriminator().logits(&x, &t).unwrap();
    let run = RunDir::open(dir.path().join("run")).unwrap();
    Trainer::new(run.clone(), opts(4, 4))
        .run(&mut task, false)
        .unwrap();
    let after = task.discriminator().logits(&x, &t).unwrap();
    let moved = (&after - &before)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 0.0, "the D step did not change the discriminator");
    // A fresh task resumes from the checkpoint with the same discriminator.
    let mut again = new_task(&cfg).unwrap();
    let s = Trainer::new(run.clone(), opts(4, 4))
        .run(&mut again, true)
        .unwrap();
    assert_eq!(s.step, 4);
    let resumed = again.discriminator().logits(&x, &t).unwrap();
    let same = (&resumed - &after)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(same < 1e-6, "resumed discriminator differs by {same}");
    // Refused: another size; D's age weight without an age head.
    let mut bad = cfg.clone();
    bad.discriminator = FaceGanDiscriminator::CStyleGan {
        config: Box::new(CStyleGanConfig::cpu64()),
    };
    assert!(new_task(&bad).is_err());
    let mut bad = cfg.clone();
    bad.weights.age = 1.0;
    assert!(new_task(&bad).is_err());
    // Configs written before the field: the PatchGAN.
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json.as_object_mut().unwrap().remove("discriminator");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.discriminator, FaceGanDiscriminator::PatchGan);
}

fn term_rows(t: &FaceGanTask, name: &str) -> Option<agesynth_train::Rows> {
    t.objective()
        .terms()
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.rows)
}

/// The objective holds term `name` on every row, and a step reports a
/// finite, non-negative value for it.
fn assert_term_on_every_row(cfg: &FaceGanTrainConfig, pairs: &Arc<SynthPairs>, name: &str) {
    use agesynth_train::Rows;
    let mut task = FaceGanTask::new(
        cfg.clone(),
        Some(real_faces(8)),
        Some(pairs.clone()),
        None,
        &Device::Cpu,
    )
    .unwrap();
    let term = task
        .objective()
        .terms()
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.rows);
    assert_eq!(term, Some(Rows::All), "{name}");
    let r = task.step(1).unwrap();
    let v = r
        .losses
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("the step reports the {name} term"));
    assert!(v.is_finite() && v >= 0.0, "{name}: {v}");
}

#[test]
fn the_dark_patch_term_reads_every_row_and_its_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(3);
    cfg.weights.dark_patch = 50.0;
    assert_term_on_every_row(&cfg, &pairs, "dark_patch");
    // Off by default, and in configs written before it existed.
    let plain = mixed_config(3);
    assert_eq!(plain.weights.dark_patch, 0.0);
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json["weights"]
        .as_object_mut()
        .unwrap()
        .remove("dark_patch");
    json.as_object_mut().unwrap().remove("dark_patch_sigma");
    json.as_object_mut().unwrap().remove("dark_patch_threshold");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.weights.dark_patch, 0.0);
    assert_eq!((old.dark_patch_sigma, old.dark_patch_threshold), (1.5, 0.2));
    // A bad blur or threshold is a config error, not a panic.
    for (sigma, threshold) in [(0.0, 0.2), (1.5, -0.1), (f64::NAN, 0.2)] {
        let mut bad = cfg.clone();
        bad.dark_patch_sigma = sigma;
        bad.dark_patch_threshold = threshold;
        assert!(FaceGanTask::new(
            bad,
            Some(real_faces(8)),
            Some(pairs.clone()),
            None,
            &Device::Cpu
        )
        .is_err());
    }
}

#[test]
fn the_pale_patch_term_reads_every_row_and_its_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(3);
    cfg.weights.pale_patch = 50.0;
    cfg.pale_patch_threshold = 0.0;
    assert_term_on_every_row(&cfg, &pairs, "pale_patch");
    // Off by default, and in configs written before it existed.
    assert_eq!(mixed_config(3).weights.pale_patch, 0.0);
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json["weights"]
        .as_object_mut()
        .unwrap()
        .remove("pale_patch");
    json.as_object_mut().unwrap().remove("pale_patch_sigma");
    json.as_object_mut().unwrap().remove("pale_patch_threshold");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.weights.pale_patch, 0.0);
    assert_eq!((old.pale_patch_sigma, old.pale_patch_threshold), (1.5, 0.3));
    // A bad blur or threshold is a config error, not a panic.
    for (sigma, threshold) in [(0.0, 0.3), (1.5, -0.1), (1.5, f64::INFINITY)] {
        let mut bad = cfg.clone();
        bad.pale_patch_sigma = sigma;
        bad.pale_patch_threshold = threshold;
        let err = FaceGanTask::new(
            bad,
            Some(real_faces(8)),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
        .err()
        .expect("a bad pale-patch setting is an error");
        assert!(err.to_string().contains("pale_patch"), "{err}");
    }
}

#[test]
fn the_colour_speck_term_reads_every_row_and_its_threshold_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(3);
    cfg.weights.colour_speck = 100.0;
    cfg.colour_speck_threshold = 0.0;
    assert_term_on_every_row(&cfg, &pairs, "colour_speck");
    // Off by default, and in configs written before it existed.
    assert_eq!(mixed_config(3).weights.colour_speck, 0.0);
    let mut json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    json["weights"]
        .as_object_mut()
        .unwrap()
        .remove("colour_speck");
    json.as_object_mut()
        .unwrap()
        .remove("colour_speck_threshold");
    let old: FaceGanTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.weights.colour_speck, 0.0);
    assert_eq!(old.colour_speck_threshold, 0.1);
    for threshold in [-0.1, f64::NAN] {
        let mut bad = cfg.clone();
        bad.colour_speck_threshold = threshold;
        let err = FaceGanTask::new(
            bad,
            Some(real_faces(8)),
            Some(pairs.clone()),
            None,
            &Device::Cpu,
        )
        .err()
        .expect("a bad colour-speck threshold is an error");
        assert!(err.to_string().contains("colour_speck"), "{err}");
    }
}

/// A generator step split into shards logs the whole batch's losses and
/// moves the weights as the whole step does; a step that reads D cannot be
/// split.
#[test]
fn a_sharded_generator_step_is_the_whole_batchs_step() {
    use agesynth_critic::{AgeCritic, CriticConfig, IdentityCritic};
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_pairs(&dir.path().join("pairs"), 8, 0);
    let mut cfg = mixed_config(4);
    cfg.weights.adversarial = 0.0;
    cfg.weights.age = 0.0;
    cfg.weights.age_critic = 1.0;
    cfg.weights.self_reconstruction = 1.0;
    cfg.weights.total_variation = 0.5;
    cfg.targets.own_group = Some(0.3);
    cfg.cycle_rows = agesynth_train::Rows::RealAwayFromSource;
    cfg.weights.cycle = 1.0;
    cfg.model.d_aux_classifier = false;
    let task = |cfg: &FaceGanTrainConfig| {
        let critic = AgeCritic::new(
            &CriticConfig::tiny_age(),
            agesynth_facegan::seeded_var_builder(&VarMap::new(), 9, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let id = IdentityCritic::new(
            &CriticConfig::tiny_identity(),
            agesynth_facegan::seeded_var_builder(&VarMap::new(), 10, DType::F32, &Device::Cpu),
        )
        .unwrap();
        FaceGanTask::new(
            cfg.clone(),
            Some(real_faces(12)),
            Some(pairs.clone()),
            Some(Box::new(id)),
            &Device::Cpu,
        )
        .unwrap()
        .with_age_critic(Arc::new(critic))
        .unwrap()
    };
    let weights = |t: &FaceGanTask| -> Vec<f32> {
        let data = t.generator_vars().data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        names
            .iter()
            .flat_map(|n| {
                let v = data[*n].as_tensor().flatten_all().unwrap();
                v.to_vec1::<f32>().unwrap()
            })
            .collect()
    };
    let mut whole = task(&cfg);
    assert_eq!(whole.shards(), 1);
    let r_whole = whole.step(1).unwrap();
    let w_whole = weights(&whole);
    let start = weights(&task(&cfg));
    for shards in [2, 3] {
        let mut t = task(&cfg);
        t.set_shards(shards).unwrap();
        let r = t.step(1).unwrap();
        // Every term, in the same order, with the same value.
        assert_eq!(r.losses.len(), r_whole.losses.len(), "{:?}", r.losses);
        for ((n, v), (nw, vw)) in r.losses.iter().zip(&r_whole.losses) {
            assert_eq!(n, nw);
            assert!(
                (v - vw).abs() <= 1e-5 * vw.abs().max(1.0),
                "{shards} shards: {n} = {v}, whole batch {vw}"
            );
        }
        // Adam's first step moves each weight by about ±lr, the sign of its
        // gradient: the steps agree wherever the gradients do. A gradient
        // summed wrongly (one shard's only, or a share applied twice) flips
        // the sign of many of them.
        let w = weights(&t);
        let lr = cfg.g_lr as f32;
        let moved = w
            .iter()
            .zip(&start)
            .filter(|(a, b)| (*a - *b).abs() > 0.5 * lr)
            .count();
        let differ = w
            .iter()
            .zip(&w_whole)
            .filter(|(a, b)| (*a - *b).abs() > 0.5 * lr)
            .count();
        assert!(
            moved > w.len() / 2,
            "{shards} shards: only {moved} of {} weights moved",
            w.len()
        );
        assert!(
            differ * 200 < w.len(),
            "{shards} shards: {differ} of {} weights moved otherwise than the whole step's",
            w.len()
        );
    }
    // Bad counts, and a step that reads D, are refused.
    let mut t = task(&cfg);
    assert!(t.set_shards(0).is_err());
    assert!(t.set_shards(cfg.batch + 1).is_err());
    let mut adv = cfg.clone();
    adv.weights.adversarial = 1.0;
    let mut t = task(&adv);
    let err = t.set_shards(2).unwrap_err().to_string();
    assert!(err.contains("discriminator"), "{err}");
    t.set_shards(1).unwrap();
}
