//! Seeded randomness for reproducible training.
//!
//! candle's CPU random tensors come from a thread-local generator that cannot
//! be seeded, so a resumed run could not repeat them. Everything random in
//! training (latents, noise, mixing, sampled age groups, data order) is drawn
//! here instead, from a ChaCha generator keyed by the run's seed, a stream
//! name and the step: the draws of step `t` are the same whether the run
//! went straight through or was resumed.

use candle_core::{Device, Shape, Tensor};
use rand::Rng;

use crate::Result;

pub use agesynth_data::seeded::step_rng;

/// One standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl Rng) -> f32 {
    loop {
        let u1: f64 = rng.random();
        if u1 > 1e-300 {
            let u2: f64 = rng.random();
            return ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
        }
    }
}

/// A tensor of standard normal values drawn from `rng`.
pub fn randn(rng: &mut impl Rng, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count()).map(|_| normal(rng)).collect();
    Ok(Tensor::from_vec(v, shape, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_repeat_and_differ() {
        let a: Vec<f32> = (0..4).map(|_| normal(&mut step_rng(1, "z", 7))).collect();
        let mut r = step_rng(1, "z", 7);
        let b: Vec<f32> = (0..4).map(|_| normal(&mut r)).collect();
        assert_eq!(a[0], b[0]);
        assert_ne!(normal(&mut step_rng(1, "z", 8)), b[0]);
        assert_ne!(normal(&mut step_rng(1, "noise", 7)), b[0]);
        assert_ne!(normal(&mut step_rng(2, "z", 7)), b[0]);
        // Moments of 20k draws: mean ≈ 0 (σ/√n ≈ 0.007), variance ≈ 1.
        let mut r = step_rng(3, "m", 0);
        let x: Vec<f32> = (0..20_000).map(|_| normal(&mut r)).collect();
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / x.len() as f32;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
