//! Parity of the candle ports with the source packages' own pipelines, on the
//! committed fixtures made by `scripts/face-fixtures/make_face_fixtures.py`.

mod common;

use agesynth_core::candle_core::{Device, Tensor};
use agesynth_face::{AgeConfig, DlibAgeEstimator, DlibFaceEmbedder, EmbedderConfig};
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
