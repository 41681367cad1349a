//! Slice-level CPU kernels: no candle types in here, just contiguous buffers.
//!
//! - [`conv`]: im2col / col2im + GEMM convolutions (forward, transposed,
//!   weight gradient), parallel over the batch;
//! - [`eltwise`]: vectorised, parallel activations and per-channel affine
//!   maps with their gradients.

/// Defines a function whose body is compiled three times (AVX-512, AVX2+FMA
/// and baseline) and picks the best at run time, so that plain loops are
/// auto-vectorised with the widest registers this CPU has.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn inner($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) { inner($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) { inner($($arg),*) }
                if $crate::kernels::has_avx512() {
                    // SAFETY: the CPU supports the enabled features (checked above).
                    return unsafe { v4($($arg),*) };
                }
                if $crate::kernels::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { v3($($arg),*) };
                }
            }
            inner($($arg),*)
        }
    };
}

pub mod conv;
pub mod eltwise;

use std::cell::RefCell;

/// Floating point element types the kernels run on (`f32` and `f64`).
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + Default
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Runs `f` on a per-thread scratch buffer of `len` elements (contents
    /// unspecified). The buffer is reused across calls so that large im2col
    /// matrices do not page-fault on every step.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// `dst[i] = src[i·stride]` for every `i < dst.len()`.
    fn gather_strided(dst: &mut [Self], src: &[Self], stride: usize) {
        gather_strided_generic(dst, src, stride)
    }
    /// `dst[i·stride] += src[i]` for every `i < src.len()`.
    fn scatter_add_strided(dst: &mut [Self], src: &[Self], stride: usize) {
        scatter_add_strided_generic(dst, src, stride)
    }
}

#[inline(always)]
fn gather_strided_generic<T: Copy>(dst: &mut [T], src: &[T], stride: usize) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    if stride == 2 {
        // Pairs, so that the loop vectorises as an interleaved load.
        for (d, pair) in dst[..n - 1]
            .iter_mut()
            .zip(src[..2 * (n - 1)].chunks_exact(2))
        {
            *d = pair[0];
        }
        dst[n - 1] = src[2 * (n - 1)];
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = src[i * stride];
        }
    }
}

#[inline(always)]
fn scatter_add_strided_generic<T: Copy + std::ops::Add<Output = T> + Default>(
    dst: &mut [T],
    src: &[T],
    stride: usize,
) {
    let n = src.len();
    if n == 0 {
        return;
    }
    if stride == 1 {
        for (d, &s) in dst[..n].iter_mut().zip(src) {
            *d = *d + s;
        }
    } else if stride == 2 {
        // Read-modify-write whole pairs (adding zero to the odd element) so
        // that the loop vectorises as an interleaved load and store.
        let zero = T::default();
        for (pair, &s) in dst[..2 * (n - 1)].chunks_exact_mut(2).zip(&src[..n - 1]) {
            pair[0] = pair[0] + s;
            pair[1] = pair[1] + zero;
        }
        dst[2 * (n - 1)] = dst[2 * (n - 1)] + src[n - 1];
    } else {
        for (i, &s) in src.iter().enumerate() {
            dst[i * stride] = dst[i * stride] + s;
        }
    }
}

multiversion! {
    fn gather_strided_f32(dst: &mut [f32], src: &[f32], stride: usize) {
        gather_strided_generic(dst, src, stride)
    }
}
multiversion! {
    fn scatter_add_strided_f32(dst: &mut [f32], src: &[f32], stride: usize) {
        scatter_add_strided_generic(dst, src, stride)
    }
}

fn with_cell<T: Copy + Default, R>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    // Take the buffer out of the cell so that a re-entrant call (work
    // stealing inside `f`) simply gets a fresh buffer instead of panicking.
    let mut buf = cell.with(|c| {
        c.try_borrow_mut()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    });
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    let r = f(&mut buf[..len]);
    cell.with(|c| {
        if let Ok(mut b) = c.try_borrow_mut() {
            if b.capacity() < buf.capacity() {
                *b = buf;
            }
        }
    });
    r
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        with_cell(&SCRATCH_F32, len, f)
    }
    fn gather_strided(dst: &mut [f32], src: &[f32], stride: usize) {
        gather_strided_f32(dst, src, stride)
    }
    fn scatter_add_strided(dst: &mut [f32], src: &[f32], stride: usize) {
        scatter_add_strided_f32(dst, src, stride)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        with_cell(&SCRATCH_F64, len, f)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    use std::sync::OnceLock;
    static F: OnceLock<bool> = OnceLock::new();
    *F.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("fma")
    })
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static F: OnceLock<bool> = OnceLock::new();
    *F.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Number of worker threads the kernels split work over.
pub(crate) fn num_threads() -> usize {
    rayon::current_num_threads().max(1)
}
