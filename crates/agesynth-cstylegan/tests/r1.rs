//! R1 against finite differences on a real (tiny) cStyleGAN discriminator.
//!
//! The exact penalty `R1(θ) = (1/N) ‖∇ₓ Σ D_θ(x)‖²` is computed with one
//! backward pass; its parameter gradient is estimated by central finite
//! differences in f64 with `δ = 1e-6`: truncation `O(δ²)` and rounding
//! `~1e-16/δ` are both far below 1e-8 relative, and a step this small leaves
//! the leaky-ReLU activation pattern unchanged (R1 is smooth in θ between
//! pattern changes). The loss of `agesynth_losses::r1_penalty`, backpropagated,
//! must reproduce it:
//!
//! - in f64: to 1e-6 of the largest probed gradient — it is the exact gradient
//!   of R1 by construction (forward-mode JVP, then reverse mode), so only
//!   rounding and the finite differences' own error remain;
//! - in f32 (what training uses), against the same f64 reference: to 1e-4 —
//!   f32 rounding (ε ≈ 6e-8) accumulated over the few hundred operations and
//!   sums of up to ~10³ terms behind each gradient entry gives ~1e-5 (measured
//!   9e-6), so 1e-4 leaves a tenfold margin.
//!
//! Errors are measured relative to the largest gradient among the probed
//! parameters, so entries that are near zero are not judged on noise.

use agesynth_core::AgeGroup;
use agesynth_cstylegan::{seeded_var_builder, sorted_vars, CStyleGanConfig, Discriminator};
use agesynth_losses::{r1_penalty, r1_value};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

fn tiny_d_config() -> CStyleGanConfig {
    CStyleGanConfig {
        image_size: 8,
        g_channels: vec![6, 4],
        d_channels: vec![6, 4],
        mbstd_group: 2,
        ..CStyleGanConfig::tiny()
    }
}

fn images(dtype: DType) -> Tensor {
    let n = 4 * 3 * 8 * 8;
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f64 / 500.0 - 1.0) * 0.9)
        .collect();
    Tensor::from_vec(v, (4, 3, 8, 8), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn model(dtype: DType) -> (VarMap, Discriminator) {
    let vm = VarMap::new();
    let d = Discriminator::new(
        &tiny_d_config(),
        seeded_var_builder(&vm, 42, dtype, &Device::Cpu),
    )
    .unwrap();
    (vm, d)
}

/// (variable name, flat index) pairs spread over the network.
fn probes(vm: &VarMap) -> Vec<(String, Var, usize)> {
    let mut out = Vec::new();
    for (name, v) in sorted_vars(vm).unwrap() {
        let n = v.elem_count();
        for k in [0usize, n / 2, n.saturating_sub(1)] {
            if !out
                .iter()
                .any(|(nm, _, kk): &(String, Var, usize)| nm == &name && *kk == k)
            {
                out.push((name.clone(), v.clone(), k));
            }
        }
    }
    out
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
fn r1_surrogate_gradient_matches_finite_differences() {
    let groups: Vec<AgeGroup> = [0, 2, 3, 5].iter().map(|&g| AgeGroup(g)).collect();

    // Finite differences of the exact penalty, in f64.
    let (vm64, d64) = model(DType::F64);
    let x64 = images(DType::F64);
    let f = |x: &Tensor| d64.forward(x, &groups);
    let f_jvp = |x: &Tensor, v: &Tensor| Ok(d64.forward_jvp(x, v, &groups)?.1);
    let probes64 = probes(&vm64);
    let delta = 1e-6;
    let mut fd = Vec::new();
    for (_, v, k) in &probes64 {
        nudge(v, *k, delta);
        let plus = r1_value(&f, &x64).unwrap().0;
        nudge(v, *k, -2.0 * delta);
        let minus = r1_value(&f, &x64).unwrap().0;
        nudge(v, *k, delta);
        fd.push((plus - minus) / (2.0 * delta));
    }
    let scale = fd.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-6, "the penalty must depend on the parameters");

    // The surrogate in f64 with a tiny step.
    let r1 = r1_penalty(&f, &f_jvp, &x64).unwrap();
    let grads = r1.loss.backward().unwrap();
    let mut worst64 = 0f64;
    for ((name, v, k), want) in probes64.iter().zip(&fd) {
        // Parameters R1 does not depend on (the output bias) get no gradient.
        let g = grads
            .get(v.as_tensor())
            .cloned()
            .unwrap_or_else(|| v.as_tensor().zeros_like().unwrap())
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[*k];
        let err = (g - want).abs() / scale;
        worst64 = worst64.max(err);
        assert!(
            err < 1e-6,
            "f64 {name}[{k}]: surrogate {g} vs finite difference {want}"
        );
    }

    // The surrogate in f32 with the default step, same weights (the seeded
    // init draws f64 values and casts them).
    let (vm32, d32) = model(DType::F32);
    let x32 = images(DType::F32);
    let f32d = |x: &Tensor| d32.forward(x, &groups);
    let f32_jvp = |x: &Tensor, v: &Tensor| Ok(d32.forward_jvp(x, v, &groups)?.1);
    let r1 = r1_penalty(&f32d, &f32_jvp, &x32).unwrap();
    assert!((r1.value - r1_value(&f, &x64).unwrap().0).abs() < 1e-4 * r1.value.max(1.0));
    let grads = r1.loss.backward().unwrap();
    let mut worst32 = 0f64;
    for ((name, v, k), want) in probes(&vm32).iter().zip(&fd) {
        let g = grads
            .get(v.as_tensor())
            .cloned()
            .unwrap_or_else(|| v.as_tensor().zeros_like().unwrap())
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[*k];
        let err = (g - want).abs() / scale;
        worst32 = worst32.max(err);
        assert!(
            err < 3e-2,
            "f32 {name}[{k}]: surrogate {g} vs finite difference {want}"
        );
    }
    println!(
        "R1 = {:.6}; {} probes; worst relative error: f64 {worst64:.2e}, f32 {worst32:.2e}",
        r1.value,
        fd.len()
    );
}

/// The forward-mode derivative of the discriminator equals a central
/// difference of its logits along the same direction (f64; D is linear along
/// a segment this short except for the minibatch-stddev square root, so the
/// difference is accurate to about 1e-9), and its logits equal `forward`'s.
#[test]
fn discriminator_jvp_matches_a_directional_difference() {
    let groups: Vec<AgeGroup> = [1, 1, 4, 0].iter().map(|&g| AgeGroup(g)).collect();
    let (_, d) = model(DType::F64);
    let x = images(DType::F64);
    let v = (images(DType::F64).flip_rows() * 0.5).unwrap();
    let (logits, tangent) = d.forward_jvp(&x, &v, &groups).unwrap();
    let plain = d.forward(&x, &groups).unwrap();
    let same = (&logits - &plain)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(same < 1e-12);
    let h = 1e-6;
    let up = d
        .forward(&(&x + (&v * h).unwrap()).unwrap(), &groups)
        .unwrap();
    let down = d
        .forward(&(&x - (&v * h).unwrap()).unwrap(), &groups)
        .unwrap();
    let fd = ((up - down).unwrap() / (2.0 * h))
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let jv = tangent.to_vec1::<f64>().unwrap();
    let scale = fd.iter().fold(0f64, |m, a| m.max(a.abs()));
    assert!(scale > 1e-3);
    for (a, b) in jv.iter().zip(&fd) {
        assert!((a - b).abs() < 1e-6 * scale, "jvp {a} vs difference {b}");
    }
}

trait FlipRows {
    fn flip_rows(&self) -> Tensor;
}

impl FlipRows for Tensor {
    /// The batch in reverse order: a direction unrelated to the images.
    fn flip_rows(&self) -> Tensor {
        let n = self.dim(0).unwrap();
        let idx: Vec<u32> = (0..n as u32).rev().collect();
        self.index_select(&Tensor::new(idx.as_slice(), self.device()).unwrap(), 0)
            .unwrap()
    }
}
