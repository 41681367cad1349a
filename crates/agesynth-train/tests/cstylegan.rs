//! The cStyleGAN trainer on the `tiny` preset: exact resume, learning a
//! handful of faces, the EMA export, sample grids and synthetic pairs.

use std::{sync::Arc, time::Instant};

use agesynth_core::{AgeBins, AgeGroup, FaceImage};
use agesynth_cstylegan::CStyleGanConfig;
use agesynth_train::{
    cstylegan::{load_generator, render_all_groups, sample_grid, synth_pairs, SynthPairsOptions},
    log::read_log,
    rng::{randn, step_rng},
    CStyleGanTask, CStyleGanTrainConfig, Outcome, RealFaces, RunDir, SynthPairs, Trainer,
    TrainerOptions,
};
use candle_core::{DType, Device, Tensor};

/// `n` synthetic faces at 16 px, ages spread over the groups.
fn faces(n: usize) -> Arc<RealFaces> {
    let images: Vec<FaceImage> = (0..n)
        .map(|i| agesynth_data::testing::synthetic_face(16, 16, i as u64 * 7 + 1))
        .collect();
    let ages: Vec<f32> = (0..n).map(|i| (i * 13 % 70) as f32 + 2.0).collect();
    Arc::new(RealFaces::from_images(&images, &ages, &AgeBins::default()).unwrap())
}

fn config(seed: u64) -> CStyleGanTrainConfig {
    let mut c = CStyleGanTrainConfig::new(CStyleGanConfig::tiny(), 4, seed);
    c.r1_every = 4;
    c.sample_rows = 2;
    c
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

fn curve(run: &RunDir) -> Vec<(u64, Vec<(String, f64)>)> {
    read_log(run.log_path())
        .unwrap()
        .into_iter()
        .map(|r| (r.step, r.losses.into_iter().collect()))
        .collect()
}

/// The largest absolute difference between two tensors.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The largest absolute gender offset of `w` in a task's exported EMA
/// generator (which must have one, `(2, w_dim)`).
fn gender_offset_size(task: &CStyleGanTask, dev: &Device) -> f32 {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.safetensors");
    task.export_ema(&p).unwrap();
    let vars = load_generator(&p, dev).unwrap().1;
    let data = vars.data().lock().unwrap();
    let v = data.get("mapping.gender_offset").expect("a gender offset");
    assert_eq!(v.dims(), &[2, task.generator_ema().config().w_dim]);
    let zero = v.as_tensor().zeros_like().unwrap();
    max_diff(v.as_tensor(), &zero)
}

/// 40 steps straight against 20 + resume (fresh task, as after a restart)
/// and 20 more: identical losses at every step (D, G, R1, logits), identical
/// EMA weights at the end.
#[test]
fn resume_continues_the_same_gan_loss_curve() {
    let data = faces(12);
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let a_run = RunDir::open(dir.path().join("a")).unwrap();
    let mut a = CStyleGanTask::new(config(5), data.clone(), &dev).unwrap();
    Trainer::new(a_run.clone(), opts(40, 20))
        .run(&mut a, false)
        .unwrap();
    eprintln!("40 tiny GAN steps: {:.2} s", t0.elapsed().as_secs_f64());

    let b_run = RunDir::open(dir.path().join("b")).unwrap();
    let mut b1 = CStyleGanTask::new(config(5), data.clone(), &dev).unwrap();
    Trainer::new(b_run.clone(), opts(20, 20))
        .run(&mut b1, false)
        .unwrap();
    drop(b1);
    let mut b2 = CStyleGanTask::new(config(5), data.clone(), &dev).unwrap();
    let s = Trainer::new(b_run.clone(), opts(40, 20))
        .run(&mut b2, true)
        .unwrap();
    assert_eq!(
        (s.start_step, s.step, s.outcome),
        (20, 40, Outcome::Finished)
    );

    let (ca, cb) = (curve(&a_run), curve(&b_run));
    assert_eq!(ca.len(), 40);
    assert!(ca.iter().any(|(_, l)| l.iter().any(|(k, _)| k == "r1")));
    assert_eq!(ca, cb);
    let z = randn(&mut step_rng(1, "t", 0), (2, 16), &dev).unwrap();
    let img = |t: &CStyleGanTask| {
        render_all_groups(t.generator_ema(), &z, 1.0, 3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(img(&a), img(&b2));

    // Another seed gives another curve (the comparison can fail).
    let c_run = RunDir::open(dir.path().join("c")).unwrap();
    let mut c = CStyleGanTask::new(config(6), data, &dev).unwrap();
    Trainer::new(c_run.clone(), opts(5, 5))
        .run(&mut c, false)
        .unwrap();
    assert_ne!(curve(&c_run)[..5], ca[..5]);
}

/// D's warm start: a checkpoint's discriminator lands in another task's D
/// (the same scores afterwards, not before); a file of another network is
/// refused with its name and leaves D as it was.
#[test]
fn a_discriminator_warm_starts_from_a_saved_one() {
    let dev = Device::Cpu;
    let data = faces(8);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path().join("a")).unwrap();
    let mut a = CStyleGanTask::new(config(1), data.clone(), &dev).unwrap();
    Trainer::new(run.clone(), opts(2, 2))
        .run(&mut a, false)
        .unwrap();
    let ck = run.latest().unwrap().unwrap();
    let mut b = CStyleGanTask::new(config(2), data, &dev).unwrap();
    let x = randn(&mut step_rng(3, "x", 0), (2, 3, 16, 16), &dev).unwrap();
    let groups = [AgeGroup(0), AgeGroup(3)];
    let score = |t: &CStyleGanTask| {
        t.discriminator()
            .forward(&x, &groups)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let before = score(&b);
    assert_ne!(before, score(&a));
    let wrong = ck.tensors_path("generator_ema");
    let err = b.init_discriminator_from(&wrong).unwrap_err().to_string();
    assert!(err.contains("generator_ema.safetensors"), "{err}");
    assert_eq!(score(&b), before, "a refused file changes nothing");
    b.init_discriminator_from(&ck.tensors_path("discriminator"))
        .unwrap();
    assert_eq!(score(&b), score(&a));
}

/// A run resumes with another choice of which groups read the age-free
/// styles (no weight depends on it), but not with another architecture, and
/// the refusal names the field that differs.
#[test]
fn resume_accepts_a_new_age_free_group_and_names_a_changed_field() {
    let data = faces(8);
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path().join("r")).unwrap();
    let with = |layers: usize, from: usize| {
        let mut c = config(3);
        c.model.age_free_layers = layers;
        c.model.age_free_from_group = from;
        c.model.validate().unwrap();
        CStyleGanTask::new(c, data.clone(), &dev).unwrap()
    };
    Trainer::new(run.clone(), opts(2, 2))
        .run(&mut with(1, 0), false)
        .unwrap();
    let s = Trainer::new(run.clone(), opts(4, 2))
        .run(&mut with(1, 1), true)
        .unwrap();
    assert_eq!((s.start_step, s.step), (2, 4));
    let err = Trainer::new(run.clone(), opts(6, 2))
        .run(&mut with(2, 1), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("age_free_layers 1 → 2"), "{err}");
}

/// Mean over `samples` of the squared distance to the nearest of `reals`
/// (per pixel, images in [-1, 1]).
fn nearest_mse(samples: &Tensor, reals: &Tensor) -> f32 {
    let n = samples.dim(0).unwrap();
    let m = reals.dim(0).unwrap();
    let s = samples.flatten_from(1).unwrap();
    let r = reals.flatten_from(1).unwrap();
    let mut total = 0.0;
    for i in 0..n {
        let si = s.get(i).unwrap().unsqueeze(0).unwrap();
        let d = r
            .broadcast_sub(&si)
            .unwrap()
            .sqr()
            .unwrap()
            .mean(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        total += d.into_iter().fold(f32::INFINITY, f32::min);
    }
    let _ = m;
    total / n as f32
}

/// Four faces, 250 steps: the EMA generator's samples come close to the
/// training faces (nearest-face error about a quarter of the untrained one,
/// measured 0.48 -> 0.11) and
/// the losses stay finite and bounded.
#[test]
fn tiny_cstylegan_learns_a_handful_of_faces() {
    let data = faces(4);
    let dev = Device::Cpu;
    let mut cfg = config(11);
    cfg.r1_every = 16;
    cfg.ema_half_life_images = 100.0;
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path()).unwrap();
    let mut task = CStyleGanTask::new(cfg, data.clone(), &dev).unwrap();
    let reals = data.batch(&[0, 1, 2, 3], &[], &dev).unwrap();
    let z = randn(&mut step_rng(99, "eval", 0), (16, 16), &dev).unwrap();
    let groups: Vec<AgeGroup> = (0..16).map(|i| reals.groups[i % 4]).collect();
    let eval = |t: &CStyleGanTask| {
        let opts = agesynth_cstylegan::GenerateOptions {
            truncation: 1.0,
            mixing: None,
            noise: agesynth_cstylegan::Noise::Seeded(1),
            age_free_layers: 0,
        };
        let s = t
            .generator_ema()
            .forward(&z, &groups, &opts)
            .unwrap()
            .clamp(-1f32, 1f32)
            .unwrap();
        nearest_mse(&s, &reals.images)
    };
    let before = eval(&task);
    let t0 = Instant::now();
    let mut o = opts(250, 250);
    o.log_every = 25;
    Trainer::new(run.clone(), o).run(&mut task, false).unwrap();
    let after = eval(&task);
    let log = read_log(run.log_path()).unwrap();
    eprintln!(
        "250 steps in {:.1} s; nearest-face MSE {before:.4} -> {after:.4}; log {:?}",
        t0.elapsed().as_secs_f64(),
        log.iter()
            .map(|r| (r.step, r.losses.clone()))
            .collect::<Vec<_>>()
    );
    assert!(after < 0.35 * before && after < 0.15, "{before} -> {after}");
    let last = log.last().unwrap();
    assert!(
        last.losses["d"] < 1.5 && last.losses["g"] < 5.0,
        "{:?}",
        last.losses
    );
}

/// Export the EMA generator, load it back as `synth-pairs` and `sample` do,
/// write a synthetic-pairs set and read it: the bytes are the generator's
/// renders of the stored latents, and the grid has one row per latent and
/// one column per group.
#[test]
fn export_sample_and_synth_pairs_round_trip() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let mut task = CStyleGanTask::new(config(2), faces(6), &dev).unwrap();
    Trainer::new(run.clone(), opts(3, 3))
        .run(&mut task, false)
        .unwrap();
    let weights = dir.path().join("g.safetensors");
    task.export_ema(&weights).unwrap();

    // The exported file, the checkpoint folder and the run folder all load
    // the same generator.
    let z = randn(&mut step_rng(4, "z", 0), (3, 16), &dev).unwrap();
    let (g, _) = load_generator(&weights, &dev).unwrap();
    let want = render_all_groups(task.generator_ema(), &z, 0.7, 8).unwrap();
    let got = render_all_groups(&g, &z, 0.7, 8).unwrap();
    assert_eq!(
        want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        got.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    for p in [
        run.root().to_path_buf(),
        run.latest().unwrap().unwrap().dir().to_path_buf(),
    ] {
        let (g2, _) = load_generator(&p, &dev).unwrap();
        let again = render_all_groups(&g2, &z, 0.7, 8).unwrap();
        assert_eq!(
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            again.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    let msg = load_generator(&dir.path().join("none.safetensors"), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("none"), "{msg}");

    let grid = sample_grid(&g, 3, 0.7, 1).unwrap();
    // 6 columns of 16 px + 7 gaps of 2; 3 rows + 4 gaps. Group labels such
    // as "10-19" (5 glyphs x 4 px = 20 px) are wider than a 16 px tile plus
    // its gap, so the grid leaves the label header out rather than overlap
    // them (grid.rs tests the header on wide tiles).
    assert_eq!(grid.width(), 6 * 16 + 7 * 2);
    assert_eq!(grid.height(), 3 * 16 + 4 * 2);

    let out = dir.path().join("pairs");
    let opts = SynthPairsOptions {
        count: 7,
        truncation: 0.7,
        seed: 3,
        batch: 3,
        shard_size: 4,
        age_free_layers: 0,
    };
    let mut seen = Vec::new();
    let index = synth_pairs(&g, &out, &opts, serde_json::json!({"model": "g"}), |n| {
        seen.push(n)
    })
    .unwrap();
    assert_eq!(seen, vec![3, 6, 7]);
    assert_eq!((index.count, index.shards.len()), (7, 2));
    let pairs = SynthPairs::open(&out).unwrap();
    assert_eq!((pairs.identities(), pairs.image_size()), (7, 16));
    // Identity 4 is the second latent of the second batch: re-render it.
    let z1 = randn(&mut step_rng(3, "synth-pairs", 1), (3, 16), &dev).unwrap();
    assert_eq!(
        pairs.latent(4).unwrap(),
        z1.get(1).unwrap().to_vec1::<f32>().unwrap()
    );
    let noise: u64 = rand::Rng::random(&mut step_rng(3, "synth-pairs-noise", 1));
    let r = render_all_groups(&g, &z1, 0.7, noise).unwrap();
    let bytes = ((r.get(1).unwrap() + 1.0).unwrap() * 127.5)
        .unwrap()
        .clamp(0f32, 255f32)
        .unwrap()
        .round()
        .unwrap()
        .to_dtype(DType::U8)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let per = 3 * 16 * 16;
    for k in 0..6 {
        assert_eq!(
            pairs.chw_bytes(4, AgeGroup(k)).unwrap(),
            &bytes[k * per..(k + 1) * per]
        );
    }
    // One identity differs across ages (the age input matters).
    assert_ne!(
        pairs.chw_bytes(4, AgeGroup(0)).unwrap(),
        pairs.chw_bytes(4, AgeGroup(5)).unwrap()
    );
}

/// Issue 17, item 3: an unknown preset in a sidecar is refused; weights that
/// are finite but make the generator overflow give an error from sampling,
/// never a picture.
#[test]
fn damaged_sidecars_and_overflowing_outputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let task = CStyleGanTask::new(config(1), faces(8), &Device::Cpu).unwrap();
    let path = dir.path().join("g.safetensors");
    task.export_ema(&path).unwrap();
    let sidecar = path.with_extension("json");
    let good = std::fs::read_to_string(&sidecar).unwrap();
    std::fs::write(&sidecar, good.replace("\"tiny\"", "\"banana\"")).unwrap();
    let err = load_generator(&path, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unknown preset"), "{err}");
    std::fs::write(&sidecar, &good).unwrap();

    let (g, vars) = load_generator(&path, &Device::Cpu).unwrap();
    for var in vars.all_vars() {
        let huge = (var.as_tensor().ones_like().unwrap() * 1e30).unwrap();
        var.set(&huge).unwrap();
    }
    let err = sample_grid(&g, 1, 1.0, 0).err().unwrap();
    assert!(
        matches!(
            err,
            agesynth_train::TrainError::Core(agesynth_core::Error::NonFiniteOutput { .. })
        ),
        "{err}"
    );
}

/// A gender-conditioned run warm-started from a model without gender: the
/// mapping first computes what the source's did, the D warm-up leaves G and
/// its EMA alone, then both train; faces without a gender label are refused.
#[test]
fn a_gender_conditioned_run_warm_starts_from_a_model_without_gender() {
    let dev = Device::Cpu;
    let data = faces(12);
    // The source: a plain tiny model, trained a few steps.
    let mut src = CStyleGanTask::new(config(7), data.clone(), &dev).unwrap();
    for s in 1..=3 {
        agesynth_train::TrainTask::step(&mut src, s).unwrap();
    }
    let src_vars = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.safetensors");
        src.export_ema(&p).unwrap();
        load_generator(&p, &dev).unwrap().1
    };
    let mut cfg = config(8);
    cfg.model.gender_conditioned = true;
    cfg.d_warmup_steps = 2;
    // Unlabelled faces are refused.
    assert!(CStyleGanTask::new(cfg.clone(), data.clone(), &dev).is_err());
    let mut labelled = Arc::try_unwrap(faces(12)).ok().unwrap();
    labelled
        .set_genders(
            (0..12)
                .map(|i| {
                    Some(if i % 2 == 0 {
                        agesynth_core::Gender::Female
                    } else {
                        agesynth_core::Gender::Male
                    })
                })
                .collect(),
        )
        .unwrap();
    let mut task = CStyleGanTask::new(cfg, Arc::new(labelled), &dev).unwrap();
    task.init_generator_from(&src_vars).unwrap();
    assert_eq!(gender_offset_size(&task, &dev), 0.0);
    // The warm-started mapping equals the source's, whatever the gender.
    let z = randn(&mut step_rng(1, "z", 0), (3, 16), &dev).unwrap();
    let t = vec![AgeGroup(0), AgeGroup(3), AgeGroup(5)];
    let want = src.generator_ema().mapping(&z, &t).unwrap();
    let got = task.generator_ema().mapping(&z, &t).unwrap();
    let d = max_diff(&want, &got);
    assert!(d < 1e-5, "mapping differs by {d}");
    assert_eq!(task.generator_ema().w_avg().dims(), &[12, 16]);
    // D warm-up: G unchanged for two steps, then it trains.
    let t2 = [AgeGroup(1), AgeGroup(2), AgeGroup(4)];
    let snapshot = |t: &CStyleGanTask| t.generator().mapping(&z, &t2).unwrap();
    let before = snapshot(&task);
    for s in 1..=2 {
        let r = agesynth_train::TrainTask::step(&mut task, s).unwrap();
        assert!(r.losses.iter().all(|(_, v)| v.is_finite()));
        assert!(
            r.losses.iter().all(|(n, _)| n != "g"),
            "G trained in warm-up"
        );
    }
    assert_eq!(max_diff(&before, &snapshot(&task)), 0.0);
    for s in 3..=8 {
        let r = agesynth_train::TrainTask::step(&mut task, s).unwrap();
        assert!(r.losses.iter().any(|(n, _)| n == "g"));
        assert!(r.losses.iter().all(|(_, v)| v.is_finite()));
    }
    assert!(max_diff(&before, &snapshot(&task)) > 0.0);
    // The gender offsets of w start at zero and learn (at the optimiser's
    // full rate, not the mapping's multiplier).
    assert!(
        gender_offset_size(&task, &dev) > 0.0,
        "the gender offsets did not learn"
    );
    // Sample grids of one gender: only a gender-conditioned model takes one.
    let female = Some(agesynth_core::Gender::Female);
    assert!(
        agesynth_train::cstylegan::sample_grid_of(task.generator_ema(), 2, 0.7, 1, female).is_ok()
    );
    assert!(
        agesynth_train::cstylegan::sample_grid_of(src.generator_ema(), 2, 0.7, 1, female).is_err()
    );
    // A source of another architecture is refused, not half-copied.
    let other = candle_nn::VarMap::new();
    other
        .get(
            (3, 3),
            "mapping.age_embed",
            candle_nn::Init::Const(0.0),
            DType::F32,
            &dev,
        )
        .unwrap();
    assert!(task.init_generator_from(&other).is_err());
}

/// The cross-age identity term: logged and finite with an identity critic,
/// a clear error without one.
#[test]
fn the_cross_age_identity_term_needs_and_uses_its_critic() {
    use agesynth_critic::{CriticConfig, IdentityCritic};
    let dev = Device::Cpu;
    let mut cfg = config(9);
    cfg.cross_age_identity = 1.0;
    cfg.r1_every = 0;
    let mut bare = CStyleGanTask::new(cfg.clone(), faces(8), &dev).unwrap();
    assert!(agesynth_train::TrainTask::step(&mut bare, 1).is_err());
    let critic = IdentityCritic::new(
        &CriticConfig::tiny_identity(),
        agesynth_cstylegan::seeded_var_builder(&candle_nn::VarMap::new(), 3, DType::F32, &dev),
    )
    .unwrap();
    let mut task = CStyleGanTask::new(cfg, faces(8), &dev)
        .unwrap()
        .with_identity_critic(Arc::new(critic));
    for s in 1..=3 {
        let r = agesynth_train::TrainTask::step(&mut task, s).unwrap();
        let id = r
            .losses
            .iter()
            .find(|(n, _)| n == "cross_age_id")
            .map(|(_, v)| *v)
            .expect("the term is logged");
        assert!(id.is_finite() && id >= 0.0, "{id}");
    }
}

/// The contrastive form of the cross-age term: logged beside the plain
/// distance, bounded below by 0 and above by the chance level of the batch
/// at the start; a negative temperature is refused.
#[test]
fn the_contrastive_cross_age_term_is_logged_and_checked() {
    use agesynth_critic::{CriticConfig, IdentityCritic};
    let dev = Device::Cpu;
    let mut cfg = config(11);
    cfg.cross_age_identity = 1.0;
    cfg.cross_age_temperature = 0.1;
    cfg.r1_every = 0;
    let critic = IdentityCritic::new(
        &CriticConfig::tiny_identity(),
        agesynth_cstylegan::seeded_var_builder(&candle_nn::VarMap::new(), 3, DType::F32, &dev),
    )
    .unwrap();
    let mut task = CStyleGanTask::new(cfg.clone(), faces(8), &dev)
        .unwrap()
        .with_identity_critic(Arc::new(critic));
    let r = agesynth_train::TrainTask::step(&mut task, 1).unwrap();
    let get = |name: &str| r.losses.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let nce = get("cross_age_nce").expect("the contrastive term is logged");
    assert!(
        get("cross_age_id").is_some(),
        "the plain distance is logged too"
    );
    assert!(nce.is_finite() && nce >= 0.0, "{nce}");
    let mut bad = cfg;
    bad.cross_age_temperature = -1.0;
    assert!(CStyleGanTask::new(bad, faces(8), &dev).is_err());
}

/// A seeded tiny identity critic for the cross-age term's tests.
fn tiny_identity_critic(dev: &Device) -> Arc<dyn agesynth_core::FaceEmbedder> {
    use agesynth_critic::{CriticConfig, IdentityCritic};
    Arc::new(
        IdentityCritic::new(
            &CriticConfig::tiny_identity(),
            agesynth_cstylegan::seeded_var_builder(&candle_nn::VarMap::new(), 3, DType::F32, dev),
        )
        .unwrap(),
    )
}

/// The contrastive cross-age term's logged value at every step of `run`.
fn nce_curve(run: &RunDir) -> Vec<f64> {
    curve(run)
        .into_iter()
        .map(|(_, l)| l.into_iter().find(|(k, _)| k == "cross_age_nce").unwrap().1)
        .collect()
}

/// The contrastive term's queue: it fills with each batch's second renders
/// up to its size, is saved in checkpoints (a resumed run repeats the
/// straight one, which it would not with an empty queue), and changes the
/// term against the batch-only form; without the contrastive form it is
/// refused.
#[test]
fn the_cross_age_queue_fills_is_saved_and_resumes_exactly() {
    let dev = Device::Cpu;
    let data = faces(12);
    let critic = tiny_identity_critic(&dev);
    let mut cfg = config(13);
    cfg.cross_age_identity = 1.0;
    cfg.cross_age_temperature = 0.5;
    cfg.cross_age_queue = 6;
    let task = |cfg: &CStyleGanTrainConfig| {
        CStyleGanTask::new(cfg.clone(), data.clone(), &dev)
            .unwrap()
            .with_identity_critic(critic.clone())
    };
    let dir = tempfile::tempdir().unwrap();
    let a_run = RunDir::open(dir.path().join("a")).unwrap();
    Trainer::new(a_run.clone(), opts(4, 4))
        .run(&mut task(&cfg), false)
        .unwrap();
    let b_run = RunDir::open(dir.path().join("b")).unwrap();
    Trainer::new(b_run.clone(), opts(2, 2))
        .run(&mut task(&cfg), false)
        .unwrap();
    // Two batches of 4 into a queue of 6: the newest 6 descriptors kept.
    let ck = b_run.latest().unwrap().unwrap();
    let (q, _) = ck.load_tensors("cross_age_queue").unwrap();
    assert_eq!(q["descriptors"].dims(), &[6, critic.dim()]);
    Trainer::new(b_run.clone(), opts(4, 4))
        .run(&mut task(&cfg), true)
        .unwrap();
    assert_eq!(nce_curve(&a_run), nce_curve(&b_run));
    // The batch-only form agrees at the first step (the queue is empty);
    // at the second (the same models) the queue's descriptors are further
    // identities to tell apart, so the term is larger.
    let mut plain = cfg.clone();
    plain.cross_age_queue = 0;
    let c_run = RunDir::open(dir.path().join("c")).unwrap();
    Trainer::new(c_run.clone(), opts(2, 2))
        .run(&mut task(&plain), false)
        .unwrap();
    let (with, without) = (nce_curve(&a_run), nce_curve(&c_run));
    assert_eq!(with[0], without[0]);
    assert!(with[1] > without[1], "{with:?} {without:?}");
    assert!(c_run
        .latest()
        .unwrap()
        .unwrap()
        .load_tensors("cross_age_queue")
        .is_err());
    let mut bad = cfg;
    bad.cross_age_temperature = 0.0;
    assert!(CStyleGanTask::new(bad, data.clone(), &dev).is_err());
}

/// Centring the contrastive term's descriptors by age group: the running
/// means are saved in checkpoints (a resumed run repeats the straight one),
/// the term differs from the uncentred one once the means have history,
/// and centring without the contrastive form, or outside [0, 1), is refused.
#[test]
fn the_centred_cross_age_term_is_saved_and_resumes_exactly() {
    let dev = Device::Cpu;
    let data = faces(12);
    let critic = tiny_identity_critic(&dev);
    let mut cfg = config(17);
    cfg.cross_age_identity = 1.0;
    cfg.cross_age_temperature = 0.5;
    cfg.cross_age_anchor = Some(2);
    cfg.cross_age_centre = 0.9;
    let task = |cfg: &CStyleGanTrainConfig| {
        CStyleGanTask::new(cfg.clone(), data.clone(), &dev)
            .unwrap()
            .with_identity_critic(critic.clone())
    };
    let dir = tempfile::tempdir().unwrap();
    let a_run = RunDir::open(dir.path().join("a")).unwrap();
    Trainer::new(a_run.clone(), opts(4, 4))
        .run(&mut task(&cfg), false)
        .unwrap();
    let b_run = RunDir::open(dir.path().join("b")).unwrap();
    Trainer::new(b_run.clone(), opts(2, 2))
        .run(&mut task(&cfg), false)
        .unwrap();
    let ck = b_run.latest().unwrap().unwrap();
    let (m, _) = ck.load_tensors("cross_age_means").unwrap();
    let groups = cfg.model.num_groups();
    assert_eq!(m["means"].dims(), &[groups, critic.dim()]);
    // Every render is paired with 20–29: that group has been seen.
    let seen = m["seen"].to_vec1::<f32>().unwrap();
    assert_eq!(seen[2], 1.0, "{seen:?}");
    Trainer::new(b_run.clone(), opts(4, 4))
        .run(&mut task(&cfg), true)
        .unwrap();
    assert_eq!(nce_curve(&a_run), nce_curve(&b_run));
    let mut plain = cfg.clone();
    plain.cross_age_centre = 0.0;
    let c_run = RunDir::open(dir.path().join("c")).unwrap();
    Trainer::new(c_run.clone(), opts(2, 2))
        .run(&mut task(&plain), false)
        .unwrap();
    let (with, without) = (nce_curve(&a_run), nce_curve(&c_run));
    assert_ne!(with[1], without[1], "{with:?} {without:?}");
    assert!(with.iter().all(|v| v.is_finite() && *v >= 0.0), "{with:?}");
    assert!(c_run
        .latest()
        .unwrap()
        .unwrap()
        .load_tensors("cross_age_means")
        .is_err());
    for (centre, temperature) in [(0.9, 0.0), (1.0, 0.5), (-0.1, 0.5)] {
        let mut bad = cfg.clone();
        bad.cross_age_centre = centre;
        bad.cross_age_temperature = temperature;
        let err = CStyleGanTask::new(bad, data.clone(), &dev).err().unwrap();
        assert!(err.to_string().contains("cross_age_centre"), "{err}");
    }
}

/// The age-critic term: a clear error without its critic, a critic of other
/// groups refused, and with one the term is logged and changes G's update.
#[test]
fn the_age_critic_term_needs_and_uses_its_critic() {
    use agesynth_critic::{AgeCritic, CriticConfig};
    let dev = Device::Cpu;
    let critic = |cfg: &CriticConfig| {
        Arc::new(
            AgeCritic::new(
                cfg,
                agesynth_cstylegan::seeded_var_builder(
                    &candle_nn::VarMap::new(),
                    3,
                    DType::F32,
                    &dev,
                ),
            )
            .unwrap(),
        )
    };
    let mut cfg = config(10);
    cfg.r1_every = 0;
    let plain = CStyleGanTask::new(cfg.clone(), faces(8), &dev).unwrap();
    let mut twin = CStyleGanTask::new(cfg.clone(), faces(8), &dev).unwrap();
    cfg.age_critic = 5.0;
    let mut bare = CStyleGanTask::new(cfg.clone(), faces(8), &dev).unwrap();
    assert!(agesynth_train::TrainTask::step(&mut bare, 1).is_err());
    let mut other = CriticConfig::tiny_age();
    other.head = agesynth_critic::CriticHead::AgeGroups {
        lower_bounds: vec![0.0, 30.0, 60.0],
    };
    assert!(CStyleGanTask::new(cfg.clone(), faces(8), &dev)
        .unwrap()
        .with_age_critic(critic(&other))
        .is_err());
    let mut task = CStyleGanTask::new(cfg, faces(8), &dev)
        .unwrap()
        .with_age_critic(critic(&CriticConfig::tiny_age_gender()))
        .unwrap();
    let mut plain = plain;
    let r = agesynth_train::TrainTask::step(&mut task, 1).unwrap();
    let ce = r
        .losses
        .iter()
        .find(|(n, _)| n == "age_critic")
        .map(|(_, v)| *v)
        .expect("the term is logged");
    // Six groups, no genders (the model is not gender-conditioned): about
    // ln 6 from an untrained critic.
    assert!(ce.is_finite() && ce > 0.5 && ce < 5.0, "{ce}");
    agesynth_train::TrainTask::step(&mut plain, 1).unwrap();
    agesynth_train::TrainTask::step(&mut twin, 1).unwrap();
    // Same seed, same D step: only the term differs, and G moved differently
    // (while two runs without it agree exactly).
    let z = randn(
        &mut step_rng(1, "z", 0),
        (2, plain.generator().config().z_dim),
        &dev,
    )
    .unwrap();
    let groups = [AgeGroup(1), AgeGroup(4)];
    let opts = agesynth_cstylegan::GenerateOptions {
        noise: agesynth_cstylegan::Noise::Off,
        ..Default::default()
    };
    let render = |t: &CStyleGanTask| t.generator().forward(&z, &groups, &opts).unwrap();
    assert_eq!(max_diff(&render(&plain), &render(&twin)), 0.0);
    let d = max_diff(&render(&plain), &render(&task));
    assert!(d > 1e-6, "the age-critic term did not reach G ({d})");
}
