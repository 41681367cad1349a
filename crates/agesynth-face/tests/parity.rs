//! Parity of the candle ports with the source packages' own pipelines, on the
//! committed fixtures made by `scripts/face-fixtures/make_face_fixtures.py`.

mod common;

use agesynth_core::candle_core::{Device, Tensor};
use agesynth_face::{
    AgeConfig, AgeGenderConfig, DlibAgeEstimator, DlibFaceEmbedder, EmbedderConfig,
    FaceApiAgeGender,
};
use common::*;

#[test]
fn embeddings_match_face_api_within_1e4() {
    let emb = DlibFaceEmbedder::load(
        &EmbedderConfig::default(),
        &weights("face_recognition.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let reference = json("embed_reference.json");
    let inputs: Vec<Tensor> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| png_pixels(&fixture(n.as_str().unwrap())))
        .collect();
    // As a batch, to check batching too.
    let got = emb
        .embed_chips(&Tensor::cat(&inputs, 0).unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut worst = 0f32;
    for (i, want) in reference["descriptors"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let want = floats(want);
        assert_eq!(want.len(), 128);
        for (a, b) in got[i].iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
    }
    println!("embedder: max abs difference to face-api {worst:.2e}");
    assert!(worst < 1e-4, "max abs difference {worst}");
}

#[test]
fn ages_match_onnxruntime_within_a_tenth_of_a_year() {
    let est = DlibAgeEstimator::load(
        &AgeConfig::default(),
        &weights("age.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let reference = json("age_reference.json");
    let inputs: Vec<Tensor> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| png_pixels(&fixture(n.as_str().unwrap())))
        .collect();
    let batch = Tensor::cat(&inputs, 0).unwrap();
    let ages = est.ages_chips(&batch).unwrap().to_vec1::<f32>().unwrap();
    let want = floats(&reference["ages"]);
    let probs = est
        .probabilities_chips(&batch)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut worst_p = 0f32;
    for (i, wp) in reference["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (a, b) in probs[i].iter().zip(floats(wp)) {
            worst_p = worst_p.max((a - b).abs());
        }
    }
    println!(
        "age: ours {ages:?}, onnxruntime {want:?}, max abs probability difference {worst_p:.2e}"
    );
    for (a, b) in ages.iter().zip(&want) {
        assert!((a - b).abs() < 0.1, "age {a} vs reference {b}");
    }
}

#[test]
fn age_gender_matches_face_api() {
    let net = FaceApiAgeGender::load(
        &AgeGenderConfig::default(),
        &weights("age_gender.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let reference = json("age_gender_reference.json");
    let inputs: Vec<Tensor> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| png_pixels(&fixture(n.as_str().unwrap())))
        .collect();
    let want_ages = floats(&reference["ages"]);
    let want_genders: Vec<Vec<f32>> = reference["genders"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(inputs.len(), want_ages.len());
    // The faces differ in size (face-api pads and resizes each to 112), so
    // one at a time; the first two are 112x112 and also go as a batch.
    let mut got: Vec<(f32, Vec<f32>)> = Vec::new();
    for x in &inputs {
        let out = net.predict_faces(x).unwrap();
        let age = out.age.to_vec1::<f32>().unwrap()[0];
        got.push((age, out.gender.to_vec2::<f32>().unwrap().remove(0)));
    }
    let batch = net
        .predict_chips(&Tensor::cat(&inputs[..2], 0).unwrap())
        .unwrap();
    let batch_ages = batch.age.to_vec1::<f32>().unwrap();
    let (mut worst_age, mut worst_p) = (0f32, 0f32);
    for (i, (age, gender)) in got.iter().enumerate() {
        worst_age = worst_age.max((age - want_ages[i]).abs());
        for (a, b) in gender.iter().zip(&want_genders[i]) {
            worst_p = worst_p.max((a - b).abs());
        }
        if i < 2 {
            assert!((batch_ages[i] - age).abs() < 1e-4, "batch vs single {i}");
        }
    }
    println!(
        "age-gender: ages {:?} vs face-api {want_ages:?}; max abs age difference {worst_age:.2e} \
         years, max abs probability difference {worst_p:.2e}",
        got.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    assert!(worst_age < 0.05, "max abs age difference {worst_age}");
    assert!(worst_p < 1e-3, "max abs probability difference {worst_p}");
}

/// FaceRes against the package's own graph in TF.js (fixtures from
/// `scripts/face-fixtures/faceres_reference.cjs`).
#[test]
fn faceres_matches_the_packages_graph() {
    use agesynth_face::{FaceRes, FaceResConfig};
    let net = FaceRes::load(
        &FaceResConfig::default(),
        &weights("faceres.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let reference = json("faceres_reference.json");
    let size = reference["size"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(fixture(reference["inputs"].as_str().unwrap())).unwrap();
    let want: Vec<Vec<f32>> = reference["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(bytes.len(), want.len() * size * size * 3);
    // HWC bytes to (N, 3, H, W) f32 pixels, as a batch.
    let pixels: Vec<f32> = bytes.iter().map(|&b| b as f32).collect();
    let images = Tensor::from_vec(pixels, (want.len(), size, size, 3), &Device::Cpu)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap()
        .contiguous()
        .unwrap();
    let got = net.features(&images).unwrap().to_vec2::<f32>().unwrap();
    let (mut worst, mut scale) = (0f32, 0f32);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(w.len(), 1024);
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
            scale = scale.max(b.abs());
        }
    }
    println!("FaceRes: max abs difference to the package's graph {worst:.2e} (features up to {scale:.2})");
    assert!(worst < 1e-4 * scale.max(1.0), "max abs difference {worst}");
    // Different inputs give different features (the fixture is not degenerate).
    let d01: f32 = want[0]
        .iter()
        .zip(&want[1])
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(d01 > 100.0 * worst, "the references barely differ: {d01}");
}
