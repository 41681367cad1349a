//! Bad input: truncated, mismatched and tampered files, wrong shapes, NaN.

mod common;

use std::fs;

use agesynth_core::{
    candle_core::{DType, Device, Tensor},
    AgeEstimator, FaceEmbedder,
};
use agesynth_face::{
    import, AgeConfig, AgeGenderConfig, DlibAgeEstimator, DlibFaceEmbedder, EmbedderConfig,
    FaceApiAgeGender,
};
use common::*;

#[test]
fn truncated_weights_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("age_truncated.safetensors");
    let bytes = fs::read(weights("age.safetensors")).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = DlibAgeEstimator::load(&AgeConfig::default(), &path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("age_truncated.safetensors"), "{msg}");
}

#[test]
fn mismatched_weights_file_names_the_file_and_the_tensor() {
    // The age weights are not the recognition net's.
    let path = weights("age.safetensors");
    let msg = DlibFaceEmbedder::load(&EmbedderConfig::default(), &path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("age.safetensors") && msg.contains("conv32_down.conv.weight"),
        "{msg}"
    );

    // One tensor of the right name but the wrong shape.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("age_bad_shape.safetensors");
    let mut t = agesynth_core::io::load_tensors(&path, &Device::Cpu).unwrap();
    t.insert(
        "fc.bias".to_string(),
        Tensor::zeros(80, DType::F16, &Device::Cpu).unwrap(),
    );
    agesynth_core::io::save_tensors(&bad, &t, None).unwrap();
    let msg = DlibAgeEstimator::load(&AgeConfig::default(), &bad, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("age_bad_shape.safetensors") && msg.contains("fc.bias"),
        "{msg}"
    );

    // A missing file.
    let msg = DlibAgeEstimator::load(
        &AgeConfig::default(),
        &dir.path().join("nope.safetensors"),
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("nope.safetensors"), "{msg}");
}

#[test]
fn import_rejects_sources_that_are_not_the_pinned_release() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    fs::create_dir_all(&model).unwrap();
    fs::write(dir.path().join(import::FACE_RECOGNITION_MANIFEST), b"[]").unwrap();
    let msg = import::import_face_recognition(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("face_recognition_model-weights_manifest.json") && msg.contains("sha256"),
        "{msg}"
    );
    let msg = import::import_age(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("age-v1.onnx"), "{msg}");
}

#[test]
fn wrong_shapes_and_nan_are_errors_not_panics() {
    let emb = DlibFaceEmbedder::load(
        &EmbedderConfig::default(),
        &weights("face_recognition.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let est = DlibAgeEstimator::load(
        &AgeConfig::default(),
        &weights("age.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let grey = Tensor::zeros((1, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
    assert!(emb.embed(&grey).is_err());
    assert!(est.estimate(&grey).is_err());
    let empty = Tensor::zeros((0, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    assert!(est.estimate(&empty).is_err());
    let nan = (Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap() / 0.0).unwrap();
    let msg = est.estimate(&nan).unwrap_err().to_string();
    assert!(msg.contains("NaN"), "{msg}");
    // Too small for the network's strided layers once resampled? No: any size
    // is resampled to the chip, so a tiny image still gives an answer.
    let tiny = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(emb.embed(&tiny).unwrap().dims(), &[2, 128]);
}

#[test]
fn age_gender_weights_and_inputs_are_checked() {
    // The dlib age weights are not the age-gender net's.
    let path = weights("age.safetensors");
    let msg = FaceApiAgeGender::load(&AgeGenderConfig::default(), &path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("age.safetensors") && msg.contains("xception.entry_flow.conv_in.weight"),
        "{msg}"
    );
    let msg = FaceApiAgeGender::load(
        &AgeGenderConfig::default(),
        std::path::Path::new("nope/age_gender.safetensors"),
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("age_gender.safetensors"), "{msg}");
    // An unpinned package: the manifest is named.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("model")).unwrap();
    fs::write(dir.path().join(import::AGE_GENDER_MANIFEST), b"[]").unwrap();
    let msg = import::import_age_gender(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("age_gender_model-weights_manifest.json") && msg.contains("sha256"),
        "{msg}"
    );
    // Wrong shapes and NaN are errors.
    let net = FaceApiAgeGender::load(
        &AgeGenderConfig::default(),
        &weights("age_gender.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let grey = Tensor::zeros((1, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
    assert!(net.estimate(&grey).is_err());
    let nan = (Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap() / 0.0).unwrap();
    let msg = net.estimate(&nan).unwrap_err().to_string();
    assert!(msg.contains("NaN"), "{msg}");
}

#[test]
fn faceres_weights_sources_and_inputs_are_checked() {
    use agesynth_face::{FaceRes, FaceResConfig};
    // Another network's weights are named as such, with a tensor it lacks.
    let msg = FaceRes::load(
        &FaceResConfig::default(),
        &weights("age.safetensors"),
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("age.safetensors") && msg.contains("stem"),
        "{msg}"
    );
    // An unpinned package: the graph model is named.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("models")).unwrap();
    fs::write(dir.path().join(import::FACERES_MODEL), b"{}").unwrap();
    let msg = import::import_faceres(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("faceres.json") && msg.contains("sha256"),
        "{msg}"
    );
    // Wrong channels and NaN are errors; any size is resampled.
    let net = FaceRes::load(
        &FaceResConfig::default(),
        &weights("faceres.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let grey = Tensor::zeros((1, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
    assert!(net.embed(&grey).is_err());
    let nan = (Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap() / 0.0).unwrap();
    assert!(net.embed(&nan).is_err());
    let tiny = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.embed(&tiny).unwrap().dims(), &[2, 1024]);
}
