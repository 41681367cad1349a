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
    /// `dst[j·rows + i] = src[i·cols + j]` for a `rows × cols` row-major `src`.
    fn transpose(src: &[Self], rows: usize, cols: usize, dst: &mut [Self]) {
        transpose_generic(src, rows, cols, dst)
    }
}

/// A vector of `len` elements whose contents are unspecified: for outputs
/// that the caller overwrites completely before anything reads them (a GEMM
/// with a zero `beta`, a transpose, an elementwise map), so that no pass is
/// spent zeroing them first.
pub(crate) fn output_vec<T: Float>(len: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: T is f32 or f64 (plain data without invalid values or drop
    // glue); every caller writes all `len` elements before reading any.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
    v
}

/// Tile edge of the cache-blocked transpose.
const TRANSPOSE_TILE: usize = 32;

#[inline(always)]
fn transpose_generic<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let b = TRANSPOSE_TILE;
    for i0 in (0..rows).step_by(b) {
        for j0 in (0..cols).step_by(b) {
            for i in i0..(i0 + b).min(rows) {
                for j in j0..(j0 + b).min(cols) {
                    dst[j * rows + i] = src[i * cols + j];
                }
            }
        }
    }
}

/// `f32` transpose: 8×8 blocks through AVX registers (unpack, shuffle,
/// lane permute) inside cache tiles, the ragged edges element by element.
fn transpose_f32(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && rows >= 8 && cols >= 8 {
        // SAFETY: AVX is available (checked) and both slices hold rows·cols
        // elements (asserted); every block read and written lies inside them.
        unsafe { transpose_f32_avx(src, rows, cols, dst) };
        return;
    }
    transpose_generic(src, rows, cols, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_f32_avx(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    let sp = src.as_ptr();
    let dp = dst.as_mut_ptr();
    let b = TRANSPOSE_TILE;
    for i0 in (0..r8).step_by(b) {
        for j0 in (0..c8).step_by(b) {
            for i in (i0..(i0 + b).min(r8)).step_by(8) {
                for j in (j0..(j0 + b).min(c8)).step_by(8) {
                    // SAFETY: rows i..i+8 and columns j..j+8 are inside src;
                    // rows j..j+8 and columns i..i+8 are inside dst.
                    unsafe {
                        let s = sp.add(i * cols + j);
                        let r0 = _mm256_loadu_ps(s);
                        let r1 = _mm256_loadu_ps(s.add(cols));
                        let r2 = _mm256_loadu_ps(s.add(2 * cols));
                        let r3 = _mm256_loadu_ps(s.add(3 * cols));
                        let r4 = _mm256_loadu_ps(s.add(4 * cols));
                        let r5 = _mm256_loadu_ps(s.add(5 * cols));
                        let r6 = _mm256_loadu_ps(s.add(6 * cols));
                        let r7 = _mm256_loadu_ps(s.add(7 * cols));
                        let t0 = _mm256_unpacklo_ps(r0, r1);
                        let t1 = _mm256_unpackhi_ps(r0, r1);
                        let t2 = _mm256_unpacklo_ps(r2, r3);
                        let t3 = _mm256_unpackhi_ps(r2, r3);
                        let t4 = _mm256_unpacklo_ps(r4, r5);
                        let t5 = _mm256_unpackhi_ps(r4, r5);
                        let t6 = _mm256_unpacklo_ps(r6, r7);
                        let t7 = _mm256_unpackhi_ps(r6, r7);
                        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                        let d = dp.add(j * rows + i);
                        _mm256_storeu_ps(d, _mm256_permute2f128_ps::<0x20>(u0, u4));
                        _mm256_storeu_ps(d.add(rows), _mm256_permute2f128_ps::<0x20>(u1, u5));
                        _mm256_storeu_ps(d.add(2 * rows), _mm256_permute2f128_ps::<0x20>(u2, u6));
                        _mm256_storeu_ps(d.add(3 * rows), _mm256_permute2f128_ps::<0x20>(u3, u7));
                        _mm256_storeu_ps(d.add(4 * rows), _mm256_permute2f128_ps::<0x31>(u0, u4));
                        _mm256_storeu_ps(d.add(5 * rows), _mm256_permute2f128_ps::<0x31>(u1, u5));
                        _mm256_storeu_ps(d.add(6 * rows), _mm256_permute2f128_ps::<0x31>(u2, u6));
                        _mm256_storeu_ps(d.add(7 * rows), _mm256_permute2f128_ps::<0x31>(u3, u7));
                    }
                }
            }
        }
    }
    // Ragged edges: the last rows % 8 rows, then the last cols % 8 columns.
    for i in r8..rows {
        for j in 0..cols {
            dst[j * rows + i] = src[i * cols + j];
        }
    }
    for i in 0..r8 {
        for j in c8..cols {
            dst[j * rows + i] = src[i * cols + j];
        }
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
    fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
        transpose_f32(src, rows, cols, dst)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX transpose (8×8 blocks in cache tiles, ragged edges) equals
    /// the element-by-element definition on every shape, odd ones included.
    #[test]
    fn f32_transpose_matches_definition() {
        for (rows, cols) in [
            (1, 1),
            (3, 17),
            (8, 8),
            (9, 8),
            (8, 9),
            (33, 70),
            (64, 4096),
            (3, 16384),
            (129, 255),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 7.0).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            <f32 as Float>::transpose(&src, rows, cols, &mut dst);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        dst[j * rows + i],
                        src[i * cols + j],
                        "{rows}x{cols} at {i},{j}"
                    );
                }
            }
        }
    }
}
