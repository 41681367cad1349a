//! The embedder and the age estimator on agesynth's image convention:
//! batched, differentiable with respect to the input.

mod common;

use agesynth_core::{
    candle_core::{DType, Device, Tensor, Var},
    AgeEstimator, FaceEmbedder,
};
use agesynth_face::{AgeConfig, DlibAgeEstimator, DlibFaceEmbedder, EmbedderConfig};
use common::*;

/// Fixture chips as `(N, 3, S, S)` images in `[-1, 1]`.
fn images(names: &[&str]) -> Tensor {
    let px: Vec<Tensor> = names.iter().map(|n| png_pixels(&fixture(n))).collect();
    ((Tensor::cat(&px, 0).unwrap() / 127.5).unwrap() - 1.0).unwrap()
}

#[test]
fn embedding_is_differentiable_and_batch_independent() {
    let emb = DlibFaceEmbedder::load(
        &EmbedderConfig::default(),
        &weights("face_recognition.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(emb.dim(), 128);
    assert_eq!(emb.threshold(), 0.6);
    let x = images(&["embed_0.png", "embed_1.png"]);
    let batch = emb.embed(&x).unwrap();
    assert_eq!(batch.dims(), &[2, 128]);
    let one = emb.embed(&x.narrow(0, 1, 1).unwrap()).unwrap();
    let diff = (batch.narrow(0, 1, 1).unwrap() - &one)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "batch changes the embedding by {diff}");

    // Gradient of an identity loss with respect to the input image.
    let v = Var::from_tensor(&x).unwrap();
    let target = batch.detach();
    let loss = (emb.embed(v.as_tensor()).unwrap() - &target.flip_rows())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(v.as_tensor())
        .expect("no gradient reaches the input");
    assert_eq!(g.dims(), x.dims());
    let norm = g
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm.is_finite() && norm > 0.0, "gradient norm {norm}");
}

#[test]
fn age_estimate_is_batched_and_in_range() {
    let est = DlibAgeEstimator::load(
        &AgeConfig::default(),
        &weights("age.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let x = images(&["age_0.png", "age_1.png", "age_2.png"]);
    let ages = est.estimate(&x).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ages.len(), 3);
    // UTKFace framing of a 64x64 image is the age chip itself: same answer
    // as the chip-level entry point.
    let chips = ((&x + 1.0).unwrap() * 127.5).unwrap();
    let direct = est.ages_chips(&chips).unwrap().to_vec1::<f32>().unwrap();
    for (a, b) in ages.iter().zip(&direct) {
        assert!((0.25..=80.0).contains(a), "{a}");
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
    // Half-precision images are computed in f32 (weights are f32).
    let half = est
        .estimate(&x.to_dtype(DType::F16).unwrap())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (a, b) in ages.iter().zip(&half) {
        assert!((a - b).abs() < 0.5, "{a} vs {b} from f16 images");
    }
}

trait FlipRows {
    fn flip_rows(&self) -> Tensor;
}

impl FlipRows for Tensor {
    /// Reverses the batch order.
    fn flip_rows(&self) -> Tensor {
        let n = self.dim(0).unwrap();
        let idx =
            Tensor::from_vec((0..n as u32).rev().collect::<Vec<_>>(), n, self.device()).unwrap();
        self.index_select(&idx, 0).unwrap()
    }
}
