//! Fake face networks shared by the evaluation's integration tests.

use agesynth_core::{candle_core::Tensor, AgeEstimator, FaceEmbedder, FaceImage, Result};
use agesynth_eval::FaceDetector;

/// Embeds a face as its mean brightness.
pub struct Brightness;
impl FaceEmbedder for Brightness {
    fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let m = x.flatten_from(1)?.mean_keepdim(1)?;
        Ok(Tensor::cat(&[&m, &m.zeros_like()?], 1)?)
    }
    fn dim(&self) -> usize {
        2
    }
    fn threshold(&self) -> f32 {
        0.6
    }
}

/// Reads every face as 25.
pub struct Always25;
impl AgeEstimator for Always25 {
    fn estimate(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Tensor::full(25f32, x.dim(0)?, x.device())?)
    }
}

/// Finds a face in every image.
pub struct SeesFaces;
impl FaceDetector for SeesFaces {
    fn has_face(&self, _: &FaceImage) -> Result<bool> {
        Ok(true)
    }
}
