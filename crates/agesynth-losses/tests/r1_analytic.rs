//! R1 on a discriminator whose penalty has a closed form.
//!
//! `D_θ(x)_n = Σ_j θ_j x_{n,j}²`, so `∇_{x_n} D = 2 θ ⊙ x_n`,
//! `R1 = (1/N) Σ_{n,j} 4 θ_j² x_{n,j}²` and
//! `∂R1/∂θ_j = (8/N) θ_j Σ_n x_{n,j}²`. Its forward-mode derivative along
//! `v` is `Σ_j 2 θ_j x_{n,j} v_{n,j}`. Everything is exact in f64, so the
//! loss's value and gradient must match to rounding (1e-9 relative).

use agesynth_losses::{r1_penalty, r1_value};
use candle_core::{DType, Device, Tensor, Var};

#[test]
fn r1_matches_the_closed_form() {
    let dev = Device::Cpu;
    let theta_v = vec![0.5f64, -1.0, 2.0, 0.25];
    let theta = Var::new(theta_v.as_slice(), &dev).unwrap();
    let xs = vec![
        vec![0.1f64, -0.2, 0.3, 0.4],
        vec![-0.5, 0.6, 0.7, -0.8],
        vec![0.9, 1.0, -0.1, 0.2],
    ];
    let x = Tensor::new(xs.clone(), &dev).unwrap();
    let d = |x: &Tensor| -> agesynth_core::Result<Tensor> {
        Ok(x.sqr()?.broadcast_mul(theta.as_tensor())?.sum(1)?)
    };
    let d_jvp = |x: &Tensor, v: &Tensor| -> agesynth_core::Result<Tensor> {
        Ok(((x * v)? * 2.0)?.broadcast_mul(theta.as_tensor())?.sum(1)?)
    };
    let n = xs.len() as f64;
    let expect: f64 = xs
        .iter()
        .map(|r| {
            r.iter()
                .zip(&theta_v)
                .map(|(x, t)| 4.0 * t * t * x * x)
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    let (v, g) = r1_value(&d, &x).unwrap();
    assert!((v - expect).abs() < 1e-12, "{v} vs {expect}");
    assert_eq!(g.dims(), x.dims());

    let r1 = r1_penalty(&d, &d_jvp, &x).unwrap();
    assert!((r1.value - expect).abs() < 1e-12);
    // The loss tensor carries the penalty as its value...
    let lv = r1
        .loss
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((lv - expect).abs() < 1e-12, "{lv} vs {expect}");
    // ...and the penalty's gradient.
    let grads = r1.loss.backward().unwrap();
    let gt = grads
        .get(theta.as_tensor())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (j, (&got, t)) in gt.iter().zip(&theta_v).enumerate() {
        let want = 8.0 / n * t * xs.iter().map(|r| r[j] * r[j]).sum::<f64>();
        assert!(
            (got - want).abs() < 1e-9 * want.abs().max(1.0),
            "θ_{j}: {got} vs {want}"
        );
    }
}

#[test]
fn r1_of_a_constant_discriminator_is_zero_and_empty_batches_error() {
    let dev = Device::Cpu;
    let d = |x: &Tensor| -> agesynth_core::Result<Tensor> { Ok((x.sum(1)? * 0.0)?) };
    let d_jvp =
        |_x: &Tensor, v: &Tensor| -> agesynth_core::Result<Tensor> { Ok((v.sum(1)? * 0.0)?) };
    let x = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
    let r1 = r1_penalty(&d, &d_jvp, &x).unwrap();
    assert_eq!(r1.value, 0.0);
    let empty = Tensor::zeros((0, 3), DType::F32, &dev).unwrap();
    assert!(r1_penalty(&d, &d_jvp, &empty).is_err());
}
