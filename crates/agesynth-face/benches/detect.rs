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

criterion_group!(benches, bench);
criterion_main!(benches);
