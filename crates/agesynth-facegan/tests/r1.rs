//! R1 on the FaceGAN PatchGAN discriminator against finite differences.
//!
//! `R1(θ) = (1/N) ‖∇ₓ Σ D_θ(x)‖²` (the logits of every patch summed) is
//! computed exactly with one backward pass; its parameter gradient is
//! estimated by central differences in f64 with `δ = 1e-6` (truncation
//! `O(δ²)` and rounding `~1e-16/δ` are far below the 1e-6 tolerance, and a
//! step this small leaves the leaky-ReLU pattern unchanged). The loss of
//! `agesynth_losses::r1_penalty`, built on `Discriminator::forward_jvp` and
//! backpropagated, must reproduce it to 1e-6 of the largest probed gradient:
//! it is the exact gradient by construction, so only rounding remains.

use agesynth_core::AgeGroup;
use agesynth_facegan::{seeded_var_builder, Discriminator, FaceGanConfig};
use agesynth_losses::{r1_penalty, r1_value};
use agesynth_nn::vars::sorted_vars;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

fn images() -> Tensor {
    let n = 3 * 3 * 16 * 16;
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f64 / 500.0 - 1.0) * 0.9)
        .collect();
    Tensor::from_vec(v, (3, 3, 16, 16), &Device::Cpu).unwrap()
}

fn nudge(v: &Var, k: usize, delta: f64) {
    let shape = v.shape().clone();
    let mut flat = v
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    flat[k] += delta;
    v.set(&Tensor::from_vec(flat, shape, &Device::Cpu).unwrap())
        .unwrap();
}

#[test]
fn patchgan_r1_gradient_matches_finite_differences() {
    let cfg = FaceGanConfig::tiny();
    let vm = VarMap::new();
    let d = Discriminator::new(&cfg, seeded_var_builder(&vm, 7, DType::F64, &Device::Cpu)).unwrap();
    let groups: Vec<AgeGroup> = [0, 3, 5].iter().map(|&g| AgeGroup(g)).collect();
    let x = images();

    // The JVP's logits are forward's logits.
    let plain = d.forward(&x, &groups).unwrap().logits;
    let (logits, _) = d
        .forward_jvp(&x, &x.zeros_like().unwrap(), &groups)
        .unwrap();
    let same = (&plain - &logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(same < 1e-12, "forward_jvp's logits differ by {same}");

    let f = |x: &Tensor| Ok(d.forward(x, &groups)?.logits);
    let f_jvp = |x: &Tensor, v: &Tensor| Ok(d.forward_jvp(x, v, &groups)?.1);
    let r1 = r1_penalty(&f, &f_jvp, &x).unwrap();
    assert!((r1.value - r1_value(&f, &x).unwrap().0).abs() < 1e-12);
    let grads = r1.loss.backward().unwrap();

    let delta = 1e-6;
    let mut probes = Vec::new();
    for (name, v) in sorted_vars(&vm).unwrap() {
        // The auxiliary age head does not enter the logits.
        if name.starts_with("classes") {
            continue;
        }
        let n = v.elem_count();
        for k in [0, n / 3, n - 1] {
            probes.push((name.clone(), v.clone(), k));
        }
    }
    let mut fd = Vec::new();
    for (_, v, k) in &probes {
        nudge(v, *k, delta);
        let plus = r1_value(&f, &x).unwrap().0;
        nudge(v, *k, -2.0 * delta);
        let minus = r1_value(&f, &x).unwrap().0;
        nudge(v, *k, delta);
        fd.push((plus - minus) / (2.0 * delta));
    }
    let scale = fd.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-6, "the penalty must depend on the parameters");
    let mut worst = 0f64;
    for ((name, v, k), want) in probes.iter().zip(&fd) {
        let g = grads
            .get(v.as_tensor())
            .cloned()
            .unwrap_or_else(|| v.as_tensor().zeros_like().unwrap())
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[*k];
        let err = (g - want).abs() / scale;
        worst = worst.max(err);
        assert!(
            err < 1e-6,
            "{name}[{k}]: R1 gradient {g} vs finite difference {want}"
        );
    }
    println!(
        "R1 = {:.6}; {} probes; worst relative error {worst:.2e}",
        r1.value,
        probes.len()
    );
}
