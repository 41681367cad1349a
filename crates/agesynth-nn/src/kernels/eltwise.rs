//! Elementwise activations and per-channel maps, vectorised and parallel.
//!
//! The `f32` paths are branch-free loops over slices (compiled for AVX-512,
//! AVX2 or baseline by `multiversion!`) using our own vectorisable `exp`;
//! `f64` paths use the standard library and exist for gradient checks.

use super::{output_vec, Float};
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// Vectorisable `exp` for `f32` (Cephes polynomial, relative error ~2 ulp
/// on the clamped range `[-87.3, 88.3]`).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    // Round x·log2(e) to the nearest integer with the 1.5·2²³ trick.
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

/// Vectorisable `tanh` for `f32`: an odd Taylor polynomial near zero, else
/// `sign(x)·(1 − e)/(1 + e)` with `e = exp(−2|x|)`.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let e = exp_f32(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    // x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 for |x| < 0.125
    let small = x
        * (1.0
            + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    if a < 0.125 {
        small
    } else {
        big.copysign(x)
    }
}

/// Vectorisable logistic sigmoid for `f32`.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// Vectorisable `softplus(x) = ln(1 + eˣ)` for `f32`, computed as
/// `max(x, 0) + log1p(e^{−|x|})` with `log1p(e) = 2·atanh(e / (2 + e))`.
#[inline(always)]
pub fn softplus_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let s = e / (2.0 + e); // in (0, 1/3]
    let s2 = s * s;
    let mut q = 1.0 / 15.0;
    q = q * s2 + 1.0 / 13.0;
    q = q * s2 + 1.0 / 11.0;
    q = q * s2 + 1.0 / 9.0;
    q = q * s2 + 1.0 / 7.0;
    q = q * s2 + 1.0 / 5.0;
    q = q * s2 + 1.0 / 3.0;
    q = q * s2 + 1.0;
    x.max(0.0) + 2.0 * s * q
}

multiversion! {
    fn lrelu_f32(x: &[f32], y: &mut [f32], a: f32) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x > 0.0 { x } else { x * a };
        }
    }
}
multiversion! {
    fn lrelu_bwd_f32(v: &[f32], g: &[f32], o: &mut [f32], a: f32) {
        for ((o, &v), &g) in o.iter_mut().zip(v).zip(g) {
            *o = if v > 0.0 { g } else { g * a };
        }
    }
}
multiversion! {
    fn tanh_slice_f32(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = tanh_f32(x);
        }
    }
}
multiversion! {
    fn tanh_bwd_f32(y: &[f32], g: &[f32], o: &mut [f32]) {
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = g * (1.0 - y * y);
        }
    }
}
multiversion! {
    fn sigmoid_slice_f32(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = sigmoid_f32(x);
        }
    }
}
multiversion! {
    fn sigmoid_bwd_f32(y: &[f32], g: &[f32], o: &mut [f32]) {
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = g * y * (1.0 - y);
        }
    }
}
multiversion! {
    fn softplus_slice_f32(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = softplus_f32(x);
        }
    }
}
multiversion! {
    fn softplus_bwd_f32(x: &[f32], g: &[f32], o: &mut [f32]) {
        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
            *o = g * sigmoid_f32(x);
        }
    }
}
multiversion! {
    fn affine_f32(x: &[f32], y: &mut [f32], s: f32, b: f32) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * s + b;
        }
    }
}
multiversion! {
    fn affine_lrelu_f32(x: &[f32], y: &mut [f32], s: f32, b: f32, a: f32) {
        for (y, &x) in y.iter_mut().zip(x) {
            let t = x * s + b;
            *y = if t > 0.0 { t } else { t * a };
        }
    }
}
multiversion! {
    fn sum_f32(x: &[f32], out: &mut f64) {
        // 16 independent partial sums so the loop vectorises.
        let mut acc = [0f32; 16];
        let mut it = x.chunks_exact(16);
        for c in &mut it {
            for i in 0..16 {
                acc[i] += c[i];
            }
        }
        let mut s: f64 = it.remainder().iter().map(|&v| v as f64).sum();
        s += acc.iter().map(|&v| v as f64).sum::<f64>();
        *out = s;
    }
}
multiversion! {
    fn dot_f32(x: &[f32], y: &[f32], out: &mut f64) {
        let mut acc = [0f32; 16];
        let mut ix = x.chunks_exact(16);
        let mut iy = y.chunks_exact(16);
        for (a, b) in (&mut ix).zip(&mut iy) {
            for i in 0..16 {
                acc[i] += a[i] * b[i];
            }
        }
        let mut s: f64 = ix.remainder().iter().zip(iy.remainder()).map(|(&a, &b)| a as f64 * b as f64).sum();
        s += acc.iter().map(|&v| v as f64).sum::<f64>();
        *out = s;
    }
}

/// An elementwise function with its `f32` slice kernel and `f64` scalar form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `x` if `x > 0` else `slope·x`.
    LeakyRelu(f64),
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// `ln(1 + eˣ)`.
    Softplus,
}

/// The gradient of a [`Unary`], from the saved input or output `v` and the
/// output gradient `g`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryBwd {
    /// `g` where `v > 0` else `slope·g`; `v` is the input, or the output when
    /// `slope ≥ 0` (same sign).
    LeakyRelu(f64),
    /// `g·(1 − y²)` from the output `y`.
    Tanh,
    /// `g·y·(1 − y)` from the output `y`.
    Sigmoid,
    /// `g·sigmoid(x)` from the input `x`.
    Softplus,
}

/// Applies a unary function to `x` in parallel; `T` is `f32` or `f64`.
pub trait UnaryKernel: Float {
    /// `y = f(x)` elementwise.
    fn unary(f: Unary, x: &[Self], y: &mut [Self]);
    /// `o = f'(v, g)` elementwise.
    fn unary_bwd(f: UnaryBwd, v: &[Self], g: &[Self], o: &mut [Self]);
    /// `y = act(x·s + b)` on one contiguous channel plane.
    fn affine(x: &[Self], y: &mut [Self], s: Self, b: Self, slope: Option<Self>);
    /// Sum of a slice, accumulated in f64.
    fn sum(x: &[Self]) -> f64;
    /// Dot product of two slices, accumulated in f64.
    fn dot(x: &[Self], y: &[Self]) -> f64;
}

impl UnaryKernel for f32 {
    fn unary(f: Unary, x: &[f32], y: &mut [f32]) {
        match f {
            Unary::LeakyRelu(a) => lrelu_f32(x, y, a as f32),
            Unary::Tanh => tanh_slice_f32(x, y),
            Unary::Sigmoid => sigmoid_slice_f32(x, y),
            Unary::Softplus => softplus_slice_f32(x, y),
        }
    }
    fn unary_bwd(f: UnaryBwd, v: &[f32], g: &[f32], o: &mut [f32]) {
        match f {
            UnaryBwd::LeakyRelu(a) => lrelu_bwd_f32(v, g, o, a as f32),
            UnaryBwd::Tanh => tanh_bwd_f32(v, g, o),
            UnaryBwd::Sigmoid => sigmoid_bwd_f32(v, g, o),
            UnaryBwd::Softplus => softplus_bwd_f32(v, g, o),
        }
    }
    fn affine(x: &[f32], y: &mut [f32], s: f32, b: f32, slope: Option<f32>) {
        match slope {
            None => affine_f32(x, y, s, b),
            Some(a) => affine_lrelu_f32(x, y, s, b, a),
        }
    }
    fn sum(x: &[f32]) -> f64 {
        let mut s = 0.0;
        sum_f32(x, &mut s);
        s
    }
    fn dot(x: &[f32], y: &[f32]) -> f64 {
        let mut s = 0.0;
        dot_f32(x, y, &mut s);
        s
    }
}

fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl UnaryKernel for f64 {
    fn unary(f: Unary, x: &[f64], y: &mut [f64]) {
        let it = y.iter_mut().zip(x);
        match f {
            Unary::LeakyRelu(a) => it.for_each(|(y, &x)| *y = if x > 0.0 { x } else { x * a }),
            Unary::Tanh => it.for_each(|(y, &x)| *y = x.tanh()),
            Unary::Sigmoid => it.for_each(|(y, &x)| *y = sigmoid_f64(x)),
            Unary::Softplus => it.for_each(|(y, &x)| *y = x.max(0.0) + (-x.abs()).exp().ln_1p()),
        }
    }
    fn unary_bwd(f: UnaryBwd, v: &[f64], g: &[f64], o: &mut [f64]) {
        let it = o.iter_mut().zip(v).zip(g);
        match f {
            UnaryBwd::LeakyRelu(a) => {
                it.for_each(|((o, &v), &g)| *o = if v > 0.0 { g } else { g * a })
            }
            UnaryBwd::Tanh => it.for_each(|((o, &y), &g)| *o = g * (1.0 - y * y)),
            UnaryBwd::Sigmoid => it.for_each(|((o, &y), &g)| *o = g * y * (1.0 - y)),
            UnaryBwd::Softplus => it.for_each(|((o, &x), &g)| *o = g * sigmoid_f64(x)),
        }
    }
    fn affine(x: &[f64], y: &mut [f64], s: f64, b: f64, slope: Option<f64>) {
        for (y, &x) in y.iter_mut().zip(x) {
            let t = x * s + b;
            *y = match slope {
                Some(a) if t <= 0.0 => t * a,
                _ => t,
            };
        }
    }
    fn sum(x: &[f64]) -> f64 {
        x.iter().sum()
    }
    fn dot(x: &[f64], y: &[f64]) -> f64 {
        x.iter().zip(y).map(|(a, b)| a * b).sum()
    }
}

/// `y = f(x)`, in parallel chunks.
pub fn unary<T: UnaryKernel>(f: Unary, x: &[T]) -> Vec<T> {
    let mut y = output_vec::<T>(x.len());
    if x.len() <= 2 * CHUNK {
        T::unary(f, x, &mut y);
    } else {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| T::unary(f, x, y));
    }
    y
}

/// `o = f'(v, g)`, in parallel chunks.
pub fn unary_bwd<T: UnaryKernel>(f: UnaryBwd, v: &[T], g: &[T]) -> Vec<T> {
    let mut o = output_vec::<T>(v.len());
    if v.len() <= 2 * CHUNK {
        T::unary_bwd(f, v, g, &mut o);
    } else {
        o.par_chunks_mut(CHUNK)
            .zip(v.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (v, g))| T::unary_bwd(f, v, g, o));
    }
    o
}

/// `o = f'(v, c)` for a gradient that is the same value `c` everywhere (the
/// gradient of a sum or mean), without materialising it: the kernel reads
/// `c` from a small block in cache.
pub fn unary_bwd_const<T: UnaryKernel>(f: UnaryBwd, v: &[T], c: T) -> Vec<T> {
    const BLOCK: usize = 1024;
    let mut o = output_vec::<T>(v.len());
    let run = |o: &mut [T], v: &[T]| {
        let g = [c; BLOCK];
        for (o, v) in o.chunks_mut(BLOCK).zip(v.chunks(BLOCK)) {
            T::unary_bwd(f, v, &g[..v.len()], o);
        }
    };
    if v.len() <= 2 * CHUNK {
        run(&mut o, v);
    } else {
        o.par_chunks_mut(CHUNK)
            .zip(v.par_chunks(CHUNK))
            .for_each(|(o, v)| run(o, v));
    }
    o
}

fn planes_min_len(plane: usize) -> usize {
    (CHUNK / plane.max(1)).max(1)
}

/// Per-channel `y = act(x·scale[c] + bias[c])` on `x (n, c, plane)`.
pub fn channel_affine<T: UnaryKernel>(
    x: &[T],
    c: usize,
    plane: usize,
    scale: Option<&[T]>,
    bias: Option<&[T]>,
    slope: Option<T>,
) -> Vec<T> {
    let mut y = output_vec::<T>(x.len());
    let f = |(i, (y, x)): (usize, (&mut [T], &[T]))| {
        let ch = i % c;
        let s = scale.map(|s| s[ch]).unwrap_or(T::ONE);
        let b = bias.map(|b| b[ch]).unwrap_or(T::ZERO);
        T::affine(x, y, s, b, slope);
    };
    if plane == 0 {
        return y;
    }
    if x.len() <= 2 * CHUNK {
        y.chunks_mut(plane)
            .zip(x.chunks(plane))
            .enumerate()
            .for_each(f);
    } else {
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .with_min_len(planes_min_len(plane))
            .for_each(f);
    }
    y
}

/// Per-channel sums of `x (n, c, plane)` (with `y = None`) or of `x·y`, shape `(c)`.
pub fn channel_reduce<T: UnaryKernel>(x: &[T], y: Option<&[T]>, c: usize, plane: usize) -> Vec<T> {
    if plane == 0 || c == 0 {
        return vec![T::ZERO; c];
    }
    let planes = x.len() / plane;
    let one = |i: usize| -> f64 {
        let xs = &x[i * plane..(i + 1) * plane];
        match y {
            None => T::sum(xs),
            Some(y) => T::dot(xs, &y[i * plane..(i + 1) * plane]),
        }
    };
    let per_plane: Vec<f64> = if x.len() <= 2 * CHUNK {
        (0..planes).map(one).collect()
    } else {
        (0..planes)
            .into_par_iter()
            .with_min_len(planes_min_len(plane))
            .map(one)
            .collect()
    };
    let mut acc = vec![0f64; c];
    for (i, v) in per_plane.into_iter().enumerate() {
        acc[i % c] += v;
    }
    acc.into_iter().map(T::from_f64).collect()
}
