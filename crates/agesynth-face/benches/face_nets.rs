//! Per-face CPU latency of the identity embedder, the age estimator and
//! face-api's age-gender network.
//!
//! `cargo bench -p agesynth-face --bench face_nets`; results go to
//! BENCHMARKS.md, section "Face networks".

use std::{path::Path, time::Duration};

use agesynth_core::{
    candle_core::{Device, Tensor},
    AgeEstimator, FaceEmbedder,
};
use agesynth_face::{
    age_gender::{AgeGenderConfig, FaceApiAgeGender},
    AgeConfig, DlibAgeEstimator, DlibFaceEmbedder, EmbedderConfig,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn weights(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights")
        .join(name)
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let emb = DlibFaceEmbedder::load(
        &EmbedderConfig::default(),
        &weights("face_recognition.safetensors"),
        &dev,
    )
    .expect("recognition weights");
    let est = DlibAgeEstimator::load(&AgeConfig::default(), &weights("age.safetensors"), &dev)
        .expect("age weights");
    let age_gender = FaceApiAgeGender::load(
        &AgeGenderConfig::default(),
        &weights("age_gender.safetensors"),
        &dev,
    )
    .expect("age-gender weights");

    let mut g = c.benchmark_group("face_nets");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [1usize, 8, 64] {
        g.throughput(Throughput::Elements(n as u64));
        if n == 64 {
            // The evaluation's batch: face-api's network only.
            g.throughput(Throughput::Elements(n as u64));
            let x = Tensor::rand(0f32, 255.0, (n, 3, 112, 112), &dev).unwrap();
            g.bench_with_input(BenchmarkId::new("age_gender_chip_112", n), &x, |b, x| {
                b.iter(|| age_gender.predict_chips(x).unwrap())
            });
            continue;
        }
        let chips = Tensor::rand(0f32, 255.0, (n, 3, 150, 150), &dev).unwrap();
        g.bench_with_input(BenchmarkId::new("embed_chip_150", n), &chips, |b, x| {
            b.iter(|| emb.embed_chips(x).unwrap())
        });
        let utk = Tensor::rand(-1f32, 1.0, (n, 3, 200, 200), &dev).unwrap();
        g.bench_with_input(BenchmarkId::new("embed_utkface_200", n), &utk, |b, x| {
            b.iter(|| emb.embed(x).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("embed_backward_200", n), &utk, |b, x| {
            b.iter(|| {
                let v = agesynth_core::candle_core::Var::from_tensor(x).unwrap();
                let loss = emb
                    .embed(v.as_tensor())
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                loss.backward().unwrap()
            })
        });
        let chips = Tensor::rand(0f32, 255.0, (n, 3, 64, 64), &dev).unwrap();
        g.bench_with_input(BenchmarkId::new("age_chip_64", n), &chips, |b, x| {
            b.iter(|| est.ages_chips(x).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("age_utkface_200", n), &utk, |b, x| {
            b.iter(|| est.estimate(x).unwrap())
        });
        let x = Tensor::rand(0f32, 255.0, (n, 3, 112, 112), &dev).unwrap();
        g.bench_with_input(BenchmarkId::new("age_gender_chip_112", n), &x, |b, x| {
            b.iter(|| age_gender.predict_chips(x).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
