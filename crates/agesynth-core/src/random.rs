//! Reproducible random tensors. candle's CPU generator cannot be seeded, so
//! initialisers and tests that must repeat draw from a seeded ChaCha8 stream
//! instead.

use candle_core::{DType, Device, Result, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One standard normal draw from `rng` (Box–Muller).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A tensor of `shape` holding normal draws of standard deviation `std`
/// (mean 0) from the stream seeded with `seed`, in `dtype` on `device`: the
/// same seed gives the same values on every run and machine.
pub fn seeded_normal(
    seed: u64,
    std: f64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    seeded(seed, shape, dtype, device, |rng| std * standard_normal(rng))
}

/// A tensor of `shape` holding uniform draws in `[lo, hi)` from the stream
/// seeded with `seed`, in `dtype` on `device`.
pub fn seeded_uniform(
    seed: u64,
    lo: f64,
    hi: f64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    seeded(seed, shape, dtype, device, |rng| {
        lo + (hi - lo) * rng.random::<f64>()
    })
}

/// `shape`'s elements drawn one by one by `draw` from the stream seeded with
/// `seed`.
fn seeded(
    seed: u64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
    mut draw: impl FnMut(&mut ChaCha8Rng) -> f64,
) -> Result<Tensor> {
    let shape = shape.into();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..shape.elem_count()).map(|_| draw(&mut rng)).collect();
    Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_repeat_from_their_seed_and_have_their_spread() {
        let dev = Device::Cpu;
        let a = seeded_normal(3, 2.0, (100, 100), DType::F64, &dev).unwrap();
        let b = seeded_normal(3, 2.0, (100, 100), DType::F64, &dev).unwrap();
        let c = seeded_normal(4, 2.0, (100, 100), DType::F64, &dev).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(v(&a), v(&b));
        assert_ne!(v(&a), v(&c));
        let x = v(&a);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let sd = (x.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!(mean.abs() < 0.1 && (sd - 2.0).abs() < 0.1, "{mean} {sd}");
        let u = seeded_uniform(5, -1.0, 3.0, 10_000, DType::F32, &dev).unwrap();
        assert_eq!(u.dtype(), DType::F32);
        let u = u.to_vec1::<f32>().unwrap();
        assert!(u.iter().all(|&y| (-1.0..3.0).contains(&y)));
        let mean = u.iter().sum::<f32>() / u.len() as f32;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
    }
}
