//! face-api's age-gender network on agesynth's image convention: batched,
//! differentiable with respect to the input, any image size.

mod common;

use agesynth_core::{
    candle_core::{DType, Device, Tensor, Var},
    AgeEstimator,
};
use agesynth_face::{AgeGenderConfig, FaceApiAgeGender};
use common::*;

fn net() -> FaceApiAgeGender {
    FaceApiAgeGender::load(
        &AgeGenderConfig::default(),
        &weights("age_gender.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

/// Fixture faces as `(N, 3, S, S)` images in `[-1, 1]`.
fn images(names: &[&str]) -> Tensor {
    let px: Vec<Tensor> = names.iter().map(|n| png_pixels(&fixture(n))).collect();
    ((Tensor::cat(&px, 0).unwrap() / 127.5).unwrap() - 1.0).unwrap()
}

#[test]
fn age_gender_is_batch_independent_and_differentiable() {
    let net = net();
    let x = images(&["age_gender_0.png", "age_gender_1.png"]);
    let batch = net.predict(&x).unwrap();
    assert_eq!(batch.age.dims(), &[2]);
    assert_eq!(batch.gender.dims(), &[2, 2]);
    let one = net.predict(&x.narrow(0, 1, 1).unwrap()).unwrap();
    let a = batch.age.to_vec1::<f32>().unwrap();
    let b = one.age.to_vec1::<f32>().unwrap();
    assert!(
        (a[1] - b[0]).abs() < 1e-4,
        "batch changes the age: {a:?} {b:?}"
    );
    // The trait gives the same ages.
    assert_eq!(net.estimate(&x).unwrap().to_vec1::<f32>().unwrap(), a);
    // P(female) is the second column.
    let pf = batch.female().unwrap().to_vec1::<f32>().unwrap();
    let g = batch.gender.to_vec2::<f32>().unwrap();
    assert_eq!(pf, vec![g[0][1], g[1][1]]);

    // Gradients of the age and of P(female) with respect to the image.
    let v = Var::from_tensor(&x).unwrap();
    let out = net.predict(v.as_tensor()).unwrap();
    let loss = (out.age.sum_all().unwrap() + out.female().unwrap().sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let gx = grads.get(v.as_tensor()).unwrap();
    assert_eq!(gx.dims(), x.dims());
    let norm = gx
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm.is_finite() && norm > 0.0, "gradient norm {norm}");
}

#[test]
fn any_image_size_is_framed_and_resized() {
    let net = net();
    for s in [16usize, 64, 200] {
        let x = Tensor::zeros((2, 3, s, s), DType::F32, &Device::Cpu).unwrap();
        let out = net.predict(&x).unwrap();
        let ages = out.age.to_vec1::<f32>().unwrap();
        assert!(ages.iter().all(|a| a.is_finite()), "{s}: {ages:?}");
        assert_eq!(net.chips(&x).unwrap().dims(), &[2, 3, 112, 112]);
    }
}
