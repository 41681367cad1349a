//! Ageing a photo end to end on the CPU: decode, detect, align, estimate the
//! age, FaceGAN at four target ages, paste back; and the steps alone.
//!
//! The photo is FG-NET dev's `001A28.JPG` (408×498, one face) when the
//! shared data folder is present (see
//! `agesynth_data::testing::shared_data_dir`); without it the bench prints
//! a note and measures nothing. The FaceGAN generator is the shipped one
//! when `weights/facegan-cpu64.safetensors` exists, else a freshly
//! initialised `cpu64` generator (the same computation).

use agesynth_data::testing::shared_data_dir;
use agesynth_pipeline::paste::{paste, ChipField, FaceMask, PasteMode};
use agesynth_pipeline::testing::weights_dir_for_tests;
use agesynth_pipeline::Ager;
use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};

const AGES: [f32; 4] = [10.0, 30.0, 50.0, 70.0];

fn bench(c: &mut Criterion) {
    let Some(path) = shared_data_dir()
        .map(|d| d.join("fgnet-dev/images/001A28.JPG"))
        .filter(|p| p.is_file())
    else {
        eprintln!("note: ../shared/data/fgnet-dev not found; nothing to benchmark");
        return;
    };
    let dir = tempfile::tempdir().expect("temporary folder");
    let weights = weights_dir_for_tests(dir.path()).expect("weights");
    let ager = Ager::from_weights_dir(&weights, &Device::Cpu).expect("networks");
    let photo = agesynth_pipeline::input::load_photo(&path, &Default::default()).expect("photo");
    let aged = ager.age_image(&photo, &AGES).expect("ageing");
    let face = aged.faces[0].clone();

    let mut g = c.benchmark_group("age_photo_408x498");
    g.sample_size(10);
    g.bench_function("age_file_4_targets", |b| {
        b.iter(|| ager.age_file(&path, &AGES).unwrap())
    });
    g.bench_function("detect", |b| b.iter(|| ager.detect(&photo).unwrap()));
    let targets = ager.face_ager().targets(&AGES).unwrap();
    g.bench_function("facegan_4_targets", |b| {
        b.iter(|| {
            ager.face_ager()
                .age_chips(std::slice::from_ref(&face.chip), &targets)
                .unwrap()
        })
    });
    let residual = ChipField::from_image(&face.outputs[0].chip)
        .unwrap()
        .minus(&ChipField::from_image(&face.chip).unwrap())
        .unwrap();
    g.bench_function("paste_back_1_face", |b| {
        b.iter(|| {
            let mut out = photo.clone();
            paste(
                &mut out,
                &residual,
                &face.to_chip,
                &FaceMask::default(),
                PasteMode::Residual,
            )
            .unwrap();
            out
        })
    });
    g.bench_function("strip_and_pngs", |b| {
        let out = tempfile::tempdir().unwrap();
        b.iter(|| aged.save(out.path(), "bench").unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
