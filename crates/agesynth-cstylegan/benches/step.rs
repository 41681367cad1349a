//! Criterion benches of cStyleGAN training steps on the CPU: a full
//! generator + discriminator step (non-saturating logistic loss, forward and
//! backward passes, no optimiser update) at batch 32 for the `cpu64` preset,
//! its parts, and the lazy R1 step. Throughput is reported in images/s.
//!
//! Run with `cargo bench -p agesynth-cstylegan --bench step`; set
//! `CSTYLEGAN_BENCH_PRESET=paper128` to bench another preset.

use agesynth_core::AgeGroup;
use agesynth_cstylegan::{
    seeded_latents, seeded_var_builder, CStyleGanConfig, Discriminator, GenerateOptions, Generator,
};
use agesynth_losses::{r1_penalty, AdversarialLoss};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use criterion::{criterion_group, Criterion, Throughput};

struct Setup {
    g: Generator,
    d: Discriminator,
    z: Tensor,
    real: Tensor,
    groups: Vec<AgeGroup>,
    batch: usize,
}

fn setup() -> Setup {
    let name = std::env::var("CSTYLEGAN_BENCH_PRESET").unwrap_or_else(|_| "cpu64".into());
    let cfg = CStyleGanConfig::preset(&name).expect("preset");
    let batch: usize = std::env::var("CSTYLEGAN_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let dev = Device::Cpu;
    let (gm, dm) = (VarMap::new(), VarMap::new());
    let g = Generator::new(&cfg, seeded_var_builder(&gm, 1, DType::F32, &dev)).expect("G");
    let d = Discriminator::new(&cfg, seeded_var_builder(&dm, 2, DType::F32, &dev)).expect("D");
    let z = seeded_latents(batch, cfg.z_dim, 3, &dev).expect("z");
    let s = cfg.image_size;
    let real = (seeded_latents(batch, 3 * s * s, 4, &dev).expect("x") * 0.5)
        .expect("x")
        .reshape((batch, 3, s, s))
        .expect("x");
    let groups = (0..batch).map(|i| AgeGroup(i % cfg.num_groups())).collect();
    Setup {
        g,
        d,
        z,
        real,
        groups,
        batch,
    }
}

fn d_step(s: &Setup) {
    let loss = AdversarialLoss::Logistic;
    let fake =
        s.g.forward(&s.z, &s.groups, &GenerateOptions::default())
            .expect("G")
            .detach();
    let lr = s.d.forward(&s.real, &s.groups).expect("D real");
    let lf = s.d.forward(&fake, &s.groups).expect("D fake");
    let l = loss.d_loss(&lr, &lf).expect("loss");
    let _ = l.backward().expect("backward");
}

fn g_step(s: &Setup) {
    let loss = AdversarialLoss::Logistic;
    let fake =
        s.g.forward(&s.z, &s.groups, &GenerateOptions::default())
            .expect("G");
    let lf = s.d.forward(&fake, &s.groups).expect("D fake");
    let l = loss.g_loss(&lf).expect("loss");
    let _ = l.backward().expect("backward");
}

fn r1_step(s: &Setup) {
    let d = |x: &Tensor| s.d.forward(x, &s.groups);
    let d_jvp = |x: &Tensor, v: &Tensor| Ok(s.d.forward_jvp(x, v, &s.groups)?.1);
    let r1 = r1_penalty(&d, &d_jvp, &s.real).expect("r1");
    let _ = r1.loss.backward().expect("backward");
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let name = s.g.config().preset.clone();
    let mut grp = c.benchmark_group(format!("cstylegan_{name}_b{}", s.batch));
    grp.sample_size(10);
    grp.throughput(Throughput::Elements(s.batch as u64));
    grp.bench_function("g_plus_d_step", |b| {
        b.iter(|| {
            d_step(&s);
            g_step(&s);
        })
    });
    grp.bench_function("d_step", |b| b.iter(|| d_step(&s)));
    grp.bench_function("g_step", |b| b.iter(|| g_step(&s)));
    grp.bench_function("r1_step", |b| b.iter(|| r1_step(&s)));
    grp.finish();
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
