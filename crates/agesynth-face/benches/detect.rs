//! MTCNN detection and 5-point alignment latency on a 640×480 photo (CPU).
//!
//! The photo is FG-NET dev's `001A02.JPG` resized to 640×480 when the shared
//! data folder is present (see `agesynth_data::testing::shared_data_dir`);
//! otherwise a generated face-like image of that size stands in (the cascade
//! then stops earlier, so the numbers are lower bounds) and a note is printed.

use agesynth_core::FaceImage;
use agesynth_data::testing::{shared_data_dir, synthetic_face};
use agesynth_data::transform::{decode_file, resize, DecodeLimits};
use agesynth_face::align::{align_face, ChipSpec};
use agesynth_face::detect::{Mtcnn, MtcnnConfig};
use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};

fn photo() -> FaceImage {
    if let Some(dir) = shared_data_dir() {
        let p = dir.join("fgnet-dev/images/001A02.JPG");
        if let Ok(img) = decode_file(&p, &DecodeLimits::default()) {
            return resize(&img, 640, 480).expect("resizing the bench photo");
        }
    }
    eprintln!("note: ../shared/data not found; benchmarking on a generated 640x480 image");
    synthetic_face(640, 480, 0)
}

fn bench(c: &mut Criterion) {
    let weights =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/mtcnn.safetensors");
    let det = Mtcnn::load(weights, &MtcnnConfig::default(), &Device::Cpu).expect("MTCNN weights");
    let img = photo();
    let faces = det.detect(&img).expect("detection");
    eprintln!("faces in the bench photo: {}", faces.len());
    let mut g = c.benchmark_group("mtcnn_640x480");
    g.sample_size(20);
    g.bench_function("detect", |b| b.iter(|| det.detect(&img).unwrap()));
    if let Some(face) = faces.first().cloned() {
        g.bench_function("align_150_recognition", |b| {
            b.iter(|| align_face(&img, &face, &ChipSpec::RECOGNITION).unwrap())
        });
        g.bench_function("detect_and_align_150", |b| {
            b.iter(|| {
                let faces = det.detect(&img).unwrap();
                faces
                    .iter()
                    .map(|f| align_face(&img, f, &ChipSpec::RECOGNITION).unwrap())
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

/// 64 face chips shrunk to 64 px and upsampled to 160 px, as `agesynth eval`
/// checks its outputs: UTKFace chips where the shared data is present,
/// generated faces otherwise.
fn chips() -> Vec<FaceImage> {
    let limits = DecodeLimits::default();
    let files: Vec<std::path::PathBuf> = shared_data_dir()
        .and_then(|d| std::fs::read_dir(d.join("utkface")).ok())
        .map(|rd| {
            let mut v: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    (0..64)
        .map(|i| {
            let chip = files
                .get(i * 300)
                .and_then(|p| decode_file(p, &limits).ok())
                .unwrap_or_else(|| synthetic_face(200, 200, i as u64));
            let small = resize(&chip, 64, 64).expect("resizing a chip");
            resize(&small, 160, 160).expect("resizing a chip")
        })
        .collect()
}

fn bench_chips(c: &mut Criterion) {
    use rayon::prelude::*;
    let weights =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/mtcnn.safetensors");
    let cfg = MtcnnConfig {
        min_face_size: 40.0,
        ..MtcnnConfig::default()
    };
    let det = Mtcnn::load(weights, &cfg, &Device::Cpu).expect("MTCNN weights");
    let chips = chips();
    let mut g = c.benchmark_group("mtcnn_64_chips_160");
    g.sample_size(10);
    g.bench_function("one_by_one_in_parallel", |b| {
        b.iter(|| {
            chips
                .par_iter()
                .map(|c| det.detect(c).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("detect_batch", |b| {
        b.iter(|| det.detect_batch(&chips).unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench, bench_chips);
criterion_main!(benches);
