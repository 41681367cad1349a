//! Fused optimiser arithmetic: one pass over each parameter buffer.
//!
//! candle composes an Adam update from about a dozen tensor ops, each of
//! which reads and writes the whole parameter (and allocates its result);
//! the EMA of the weights takes three more. Here each is a single loop that
//! reads every operand once and writes the results in place, compiled for
//! AVX-512, AVX2 or baseline and run in parallel chunks.

use rayon::prelude::*;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// The scalars of one Adam / AdamW update (PyTorch's formulation):
///
/// ```text
/// g  ← g + λθ                       (coupled decay, `decoupled == false`)
/// θ  ← θ (1 − lr λ)                 (decoupled decay, `decoupled == true`)
/// m  ← β₁ m + (1 − β₁) g
/// v  ← β₂ v + (1 − β₂) g²
/// θ  ← θ − lr · (m / bc₁) / (√(v / bc₂) + ε)
/// ```
/// with the bias corrections `bc₁ = 1 − β₁ᵗ`, `bc₂ = 1 − β₂ᵗ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay β₁.
    pub beta1: f64,
    /// Second-moment decay β₂.
    pub beta2: f64,
    /// Bias correction of the first moment, `1 − β₁ᵗ`.
    pub bc1: f64,
    /// Bias correction of the second moment, `1 − β₂ᵗ`.
    pub bc2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay λ.
    pub weight_decay: f64,
    /// AdamW's decoupled decay instead of L2 decay added to the gradient.
    pub decoupled: bool,
}

#[derive(Clone, Copy)]
struct Coeffs {
    b1: f32,
    c1: f32,
    b2: f32,
    c2: f32,
    step: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    l2: f32,
    shrink: f32,
}

impl AdamStep {
    fn coeffs(&self) -> Coeffs {
        let (l2, shrink) = match (self.weight_decay > 0.0, self.decoupled) {
            (false, _) => (0.0, 1.0),
            (true, false) => (self.weight_decay as f32, 1.0),
            (true, true) => (0.0, (1.0 - self.lr * self.weight_decay) as f32),
        };
        Coeffs {
            b1: self.beta1 as f32,
            c1: (1.0 - self.beta1) as f32,
            b2: self.beta2 as f32,
            c2: (1.0 - self.beta2) as f32,
            step: (self.lr / self.bc1) as f32,
            inv_sqrt_bc2: (1.0 / self.bc2.sqrt()) as f32,
            eps: self.eps as f32,
            l2,
            shrink,
        }
    }
}

multiversion! {
    fn adam_chunk(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: Coeffs) {
        let n = theta.len();
        let (grad, m, v) = (&grad[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let t = theta[i];
            let g = grad[i] + k.l2 * t;
            let mi = k.b1 * m[i] + k.c1 * g;
            let vi = k.b2 * v[i] + k.c2 * (g * g);
            m[i] = mi;
            v[i] = vi;
            theta[i] = t * k.shrink - k.step * mi / (vi.sqrt() * k.inv_sqrt_bc2 + k.eps);
        }
    }
}

multiversion! {
    fn ema_chunk(ema: &mut [f32], live: &[f32], decay: f32, keep: f32) {
        let n = ema.len();
        let live = &live[..n];
        for i in 0..n {
            ema[i] = decay * ema[i] + keep * live[i];
        }
    }
}

/// One Adam / AdamW update of `theta` with gradient `grad`, updating the
/// moments `m` and `v` in place. All four slices have the same length.
///
/// # Panics
/// If the lengths differ.
pub fn adam_step(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let n = theta.len();
    assert!(
        grad.len() == n && m.len() == n && v.len() == n,
        "adam_step: lengths differ"
    );
    let k = s.coeffs();
    if n <= 2 * CHUNK {
        adam_chunk(theta, grad, m, v, k);
        return;
    }
    theta
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((t, g), (m, v))| adam_chunk(t, g, m, v, k));
}

/// One step of an exponential moving average, in place:
/// `ema ← decay · ema + (1 − decay) · live`.
///
/// # Panics
/// If the lengths differ.
pub fn ema_step(ema: &mut [f32], live: &[f32], decay: f64) {
    assert_eq!(ema.len(), live.len(), "ema_step: lengths differ");
    let (d, k) = (decay as f32, (1.0 - decay) as f32);
    if ema.len() <= 2 * CHUNK {
        ema_chunk(ema, live, d, k);
        return;
    }
    ema.par_chunks_mut(CHUNK)
        .zip(live.par_chunks(CHUNK))
        .for_each(|(e, l)| ema_chunk(e, l, d, k));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The update written out in f64, element by element.
    fn reference(theta: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64], s: &AdamStep) {
        for i in 0..theta.len() {
            let mut g = grad[i];
            if s.weight_decay > 0.0 && !s.decoupled {
                g += s.weight_decay * theta[i];
            }
            if s.weight_decay > 0.0 && s.decoupled {
                theta[i] *= 1.0 - s.lr * s.weight_decay;
            }
            m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * g;
            v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * g * g;
            theta[i] -= s.lr * (m[i] / s.bc1) / ((v[i] / s.bc2).sqrt() + s.eps);
        }
    }

    fn pseudo(i: usize, k: usize) -> f64 {
        ((i * 7919 + k * 104_729) as f64 * 0.618_033_988_7).fract() * 2.0 - 1.0
    }

    #[test]
    fn adam_step_matches_f64_reference_over_steps() {
        // Sizes below and above the parallel threshold, with a ragged tail.
        for n in [1usize, 37, 3 * CHUNK + 5] {
            for (wd, decoupled) in [(0.0, false), (0.01, false), (0.1, true)] {
                let mut t32: Vec<f32> = (0..n).map(|i| pseudo(i, 1) as f32).collect();
                let mut t64: Vec<f64> = t32.iter().map(|&x| x as f64).collect();
                let (mut m32, mut v32) = (vec![0f32; n], vec![0f32; n]);
                let (mut m64, mut v64) = (vec![0f64; n], vec![0f64; n]);
                for t in 1..=4 {
                    let g: Vec<f64> = (0..n).map(|i| pseudo(i, t + 1) * 3.0).collect();
                    let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
                    let (b1, b2) = (0.5f64, 0.99f64);
                    let s = AdamStep {
                        lr: 1e-2,
                        beta1: b1,
                        beta2: b2,
                        bc1: 1.0 - b1.powi(t as i32),
                        bc2: 1.0 - b2.powi(t as i32),
                        eps: 1e-8,
                        weight_decay: wd,
                        decoupled,
                    };
                    adam_step(&mut t32, &g32, &mut m32, &mut v32, &s);
                    reference(&mut t64, &g, &mut m64, &mut v64, &s);
                }
                for i in 0..n {
                    let d = (t32[i] as f64 - t64[i]).abs();
                    assert!(
                        d < 1e-5,
                        "n {n} wd {wd} {decoupled}: θ[{i}] {} vs {}",
                        t32[i],
                        t64[i]
                    );
                    assert!((m32[i] as f64 - m64[i]).abs() < 1e-5);
                    assert!((v32[i] as f64 - v64[i]).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn ema_step_mixes_in_place() {
        for n in [3usize, 2 * CHUNK + 1, 5 * CHUNK] {
            let mut e: Vec<f32> = (0..n).map(|i| pseudo(i, 0) as f32).collect();
            let l: Vec<f32> = (0..n).map(|i| pseudo(i, 9) as f32).collect();
            let want: Vec<f64> = (0..n)
                .map(|i| 0.9 * e[i] as f64 + 0.1 * l[i] as f64)
                .collect();
            ema_step(&mut e, &l, 0.9);
            for i in 0..n {
                assert!((e[i] as f64 - want[i]).abs() < 1e-6, "{i}");
            }
        }
    }
}
