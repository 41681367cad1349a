//! Criterion bench of one FaceGAN training step on the CPU: the full
//! semi-supervised step of `agesynth_train::FaceGanTask` (one generator
//! pass for the batch, the D step with its auxiliary age head, the G step
//! with adversarial, age, synthetic reconstruction, cycle and
//! self-reconstruction terms, both Adam updates), and the generator's
//! forward pass alone. Throughput is in images (inputs) per second.
//!
//! The identity term is off here (no embedder): its cost is the identity
//! network's, measured in agesynth-face's benches.
//!
//! Run with `RAYON_NUM_THREADS=2 cargo bench -p agesynth-facegan --bench step`;
//! `FACEGAN_BENCH_PRESET` (default `cpu64`) and `FACEGAN_BENCH_BATCH`
//! (default 16, half synthetic) change the setting.

use std::sync::Arc;

use agesynth_core::{AgeBins, AgeGroup, FaceImage};
use agesynth_facegan::{seeded_var_builder, FaceGanConfig, Generator};
use agesynth_train::{
    FaceGanTask, FaceGanTrainConfig, PairsWriter, RealFaces, SynthPairs, TrainTask,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use criterion::{criterion_group, Criterion, Throughput};

fn pseudo(i: usize) -> f32 {
    ((i as f32) * 0.6180339).fract() * 1.6 - 0.8
}

fn bench(c: &mut Criterion) {
    let name = std::env::var("FACEGAN_BENCH_PRESET").unwrap_or_else(|_| "cpu64".into());
    let batch: usize = std::env::var("FACEGAN_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let model = FaceGanConfig::preset(&name).expect("preset");
    let s = model.image_size;
    let bins = AgeBins::default();
    let dev = Device::Cpu;

    // Generated data: 32 "real" faces and 32 synthetic identities.
    let images: Vec<FaceImage> = (0..32)
        .map(|k| {
            let px = (0..3 * s * s)
                .map(|i| ((pseudo(i + 7919 * k) + 1.0) * 127.5) as u8)
                .collect();
            FaceImage::new(s as u32, s as u32, px).expect("image")
        })
        .collect();
    let ages: Vec<f32> = (0..32).map(|i| (i * 13 % 70) as f32 + 2.0).collect();
    let real = Arc::new(RealFaces::from_images(&images, &ages, &bins).expect("faces"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w =
        PairsWriter::create(dir.path(), s, &bins, 1, 64, serde_json::json!({})).expect("pairs");
    let n = 32;
    let data: Vec<f32> = (0..n * bins.len() * 3 * s * s).map(pseudo).collect();
    w.push(
        &Tensor::from_vec(data, (n, bins.len(), 3, s, s), &dev).expect("t"),
        &Tensor::zeros((n, 1), DType::F32, &dev).expect("z"),
    )
    .expect("push");
    w.finish().expect("finish");
    let pairs = Arc::new(SynthPairs::open(dir.path()).expect("open"));

    let cfg = FaceGanTrainConfig::new(model.clone(), batch, 0);
    let mut task = FaceGanTask::new(cfg, Some(real), Some(pairs), None, &dev).expect("task");
    let mut group = c.benchmark_group(format!("facegan/{name}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    let mut step = 0u64;
    group.bench_function(format!("train_step/batch{batch}"), |b| {
        b.iter(|| {
            step += 1;
            task.step(step).expect("step")
        })
    });

    let vm = VarMap::new();
    let g = Generator::new(&model, seeded_var_builder(&vm, 1, DType::F32, &dev)).expect("G");
    let x = Tensor::from_vec(
        (0..batch * 3 * s * s).map(pseudo).collect::<Vec<f32>>(),
        (batch, 3, s, s),
        &dev,
    )
    .expect("x");
    let t: Vec<AgeGroup> = (0..batch).map(|i| AgeGroup(i % bins.len())).collect();
    group.bench_function(format!("generator_forward/batch{batch}"), |b| {
        b.iter(|| g.forward(&x, &t).expect("forward"))
    });
    group.finish();

    // The optimiser and the EMA over the generator's parameters: the fused
    // one-pass updates against the same arithmetic as chains of candle ops.
    let params = agesynth_train::ParamGroup::from_varmap("g", &vm, 1.0);
    let n_params = params.numel();
    // Gradients of Σ 5e-4·θ²: 1e-3·θ, contiguous like a real step's.
    let mut loss = Tensor::zeros((), DType::F32, &dev).expect("zero");
    for (_, v) in &params.params {
        let sq = v.as_tensor().sqr().expect("sqr").sum_all().expect("sum");
        loss = (loss + (sq * 5e-4).expect("scale")).expect("add");
    }
    let grads = loss.backward().expect("backward");
    let mut group = c.benchmark_group(format!("optim/facegan_{name}_generator"));
    group.sample_size(20);
    group.throughput(Throughput::Elements(n_params as u64));
    for fused in [true, false] {
        let mut opt = agesynth_train::Adam::new(
            vec![params.clone()],
            agesynth_train::AdamConfig {
                lr: 1e-4,
                beta1: 0.5,
                ..Default::default()
            },
        )
        .expect("adam");
        opt.set_fused(fused).expect("fused");
        let label = if fused { "fused" } else { "candle_ops" };
        group.bench_function(format!("adam_step/{label}"), |b| {
            b.iter(|| opt.step(&grads).expect("step"))
        });
    }
    let ema = VarMap::new();
    Generator::new(&model, seeded_var_builder(&ema, 2, DType::F32, &dev)).expect("G");
    group.bench_function("ema/fused", |b| {
        b.iter(|| agesynth_nn::vars::ema_update(&ema, &vm, 0.999, |_| false).expect("ema"))
    });
    let pairs: Vec<_> = agesynth_nn::vars::sorted_vars(&ema)
        .expect("ema vars")
        .into_iter()
        .zip(agesynth_nn::vars::sorted_vars(&vm).expect("vars"))
        .collect();
    group.bench_function("ema/candle_ops", |b| {
        b.iter(|| {
            for ((_, e), (_, l)) in &pairs {
                let next = ((e.as_tensor().detach() * 0.999).expect("mul")
                    + (l.as_tensor().detach() * 0.001).expect("mul"))
                .expect("add");
                e.set(&next).expect("set");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

/// Set up like the `agesynth` binary trains: mimalloc keeping freed memory,
/// candle's pool not spinning, the work on a rayon worker.
#[global_allocator]
static GLOBAL: agesynth_nn::runtime::MiMalloc = agesynth_nn::runtime::MiMalloc;

fn main() {
    agesynth_nn::runtime::tune_process();
    agesynth_nn::runtime::run_on_pool(|| {
        benches();
        Criterion::default().configure_from_args().final_summary();
    });
}
