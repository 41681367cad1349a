//! Ageing a photo end to end on the CPU: decode, detect, align, estimate the
//! age, FaceGAN at four target ages, paste back; and the steps alone.
//!
//! `photo_640x480/age_and_save_4_targets` is the whole `agesynth age` job
//! on a 640×480 JPEG (FG-NET dev's `001A28.JPG` scaled to 480 rows and
//! centred on a grey 640×480 canvas, encoded once at quality 90): decode to
//! written PNGs (four aged photos and the strip).
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

    let vga = dir.path().join("photo-640x480.jpg");
    write_vga_photo(&path, &vga);
    let mut g = c.benchmark_group("photo_640x480");
    g.sample_size(10);
    let out = tempfile::tempdir().unwrap();
    g.bench_function("age_and_save_4_targets", |b| {
        b.iter(|| {
            ager.age_file(&vga, &AGES)
                .unwrap()
                .save(out.path(), "bench")
                .unwrap()
        })
    });
    g.bench_function("detect", |b| {
        let photo = agesynth_pipeline::input::load_photo(&vga, &Default::default()).unwrap();
        b.iter(|| ager.detect(&photo).unwrap())
    });
    g.finish();
}

/// `src` scaled to 480 rows, centred on a mid-grey 640×480 canvas, saved as
/// a quality-90 JPEG at `dst`.
fn write_vga_photo(src: &std::path::Path, dst: &std::path::Path) {
    let img = image::open(src).expect("photo").to_rgb8();
    let w = (img.width() as f64 * 480.0 / img.height() as f64).round() as u32;
    let scaled =
        image::imageops::resize(&img, w.min(640), 480, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut canvas, &scaled, ((640 - scaled.width()) / 2) as i64, 0);
    let file = std::fs::File::create(dst).expect("create");
    let mut enc =
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90);
    enc.encode_image(&canvas).expect("encode");
}

criterion_group!(benches, bench);
criterion_main!(benches);
