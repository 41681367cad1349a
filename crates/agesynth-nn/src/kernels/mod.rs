//! Slice-level CPU kernels: no candle types in here, just contiguous buffers.
//!
//! - [`conv`]: im2col / col2im + GEMM convolutions (forward, transposed,
//!   weight gradient), parallel over the batch;
//! - [`winograd`]: Winograd F(2×2, 3×3) for 3×3 stride-1 layers, with
//!   per-sample channel scales for the fused modulated convolution;
//! - [`eltwise`]: vectorised, parallel activations and per-channel affine
//!   maps with their gradients;
//! - [`optim`]: the Adam update and the weights' EMA, one fused pass each;
//! - [`bf16`]: a bf16 GEMM with f32 sums for CPUs with AVX-512 BF16, which
//!   the convolutions use when the matmul precision is set to bf16.

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

/// [`multiversion!`] for a function generic over one type parameter.
macro_rules! multiversion_generic {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$g:ident: $b:path>($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name<$g: $b>($($arg: $ty),*) {
            #[inline(always)]
            fn inner<$g: $b>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                unsafe fn v4<$g: $b>($($arg: $ty),*) { inner::<$g>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3<$g: $b>($($arg: $ty),*) { inner::<$g>($($arg),*) }
                if $crate::kernels::has_avx512() {
                    // SAFETY: the CPU supports the enabled features (checked above).
                    return unsafe { v4::<$g>($($arg),*) };
                }
                if $crate::kernels::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { v3::<$g>($($arg),*) };
                }
            }
            inner::<$g>($($arg),*)
        }
    };
}

pub mod bf16;
pub mod conv;
pub mod eltwise;
pub mod optim;
pub mod winograd;

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
    /// [`conv::im2col_plane_rows`].
    fn im2col_rows(
        xc: &[Self],
        g: &conv::ConvGeom,
        oy0: usize,
        oy1: usize,
        rows: &mut [Self],
        ld: usize,
    ) {
        conv::im2col_rows_body(xc, g, oy0, oy1, rows, ld, gather_strided_generic)
    }
    /// [`conv::col2im_rows`].
    fn col2im_rows(
        col: &[Self],
        g: &conv::ConvGeom,
        oy0: usize,
        oy1: usize,
        x: &mut [Self],
        ld: usize,
    ) {
        conv::col2im_rows_body(col, g, oy0, oy1, x, ld, scatter_add_strided_generic)
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
    /// [`conv::im2col_plane_rows`] for `f32`, compiled for AVX-512, AVX2 and
    /// baseline and picked at run time (one dispatch per plane, not per row).
    /// (Explicit masked AVX-512 gathers were slower here than the compiler's
    /// 256-bit shuffles: masked loads are slow on this CPU.)
    fn im2col_rows_f32(
        xc: &[f32],
        g: &conv::ConvGeom,
        oy0: usize,
        oy1: usize,
        rows: &mut [f32],
        ld: usize,
    ) {
        conv::im2col_rows_body(xc, g, oy0, oy1, rows, ld, gather_strided_generic)
    }
}

/// [`conv::col2im_rows`] for `f32`: AVX-512 (masked stride-2 scatter-adds),
/// AVX2 or baseline, picked at run time.
fn col2im_rows_f32(
    col: &[f32],
    g: &conv::ConvGeom,
    oy0: usize,
    oy1: usize,
    x: &mut [f32],
    ld: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn v4(
            col: &[f32],
            g: &conv::ConvGeom,
            oy0: usize,
            oy1: usize,
            x: &mut [f32],
            ld: usize,
        ) {
            conv::col2im_rows_body(col, g, oy0, oy1, x, ld, |d, s, st| {
                if st == 2 {
                    // SAFETY: AVX-512F is enabled in this function.
                    unsafe { avx512::scatter_add2(d, s) }
                } else {
                    scatter_add_strided_generic(d, s, st)
                }
            })
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v3(
            col: &[f32],
            g: &conv::ConvGeom,
            oy0: usize,
            oy1: usize,
            x: &mut [f32],
            ld: usize,
        ) {
            conv::col2im_rows_body(col, g, oy0, oy1, x, ld, scatter_add_strided_generic)
        }
        if has_avx512() {
            // SAFETY: the CPU supports the enabled features (checked).
            return unsafe { v4(col, g, oy0, oy1, x, ld) };
        }
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { v3(col, g, oy0, oy1, x, ld) };
        }
    }
    conv::col2im_rows_body(col, g, oy0, oy1, x, ld, scatter_add_strided_generic)
}

/// Stride-2 scatter-add with AVX-512: 16 sources per step, the ragged end
/// masked instead of a scalar loop. Inlined into callers compiled with
/// AVX-512F.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// `dst[2i] += src[i]` for `i < src.len()`; `dst` must hold at least
    /// `2·src.len() − 1` elements (odd positions get `+ 0`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline(always)]
    pub unsafe fn scatter_add2(dst: &mut [f32], src: &[f32]) {
        let m = src.len();
        if m == 0 {
            return;
        }
        assert!(dst.len() > 2 * (m - 1));
        // SAFETY: every load and store is masked to the slices' bounds.
        unsafe {
            let lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            let hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
            let mut i = 0;
            while i < m {
                let s = _mm512_maskz_loadu_ps(mask(m - i), src.as_ptr().add(i));
                let base = 2 * i;
                // Only the span the valid sources reach is touched.
                let span = (2 * (m - i) - 1).min(32);
                let (n0, n1) = (span.min(16), span.saturating_sub(16));
                let p0 = dst.as_mut_ptr().add(base);
                let d0 = _mm512_maskz_loadu_ps(mask(n0), p0);
                let d0 = _mm512_add_ps(d0, _mm512_maskz_permutexvar_ps(0x5555, lo, s));
                _mm512_mask_storeu_ps(p0, mask(n0), d0);
                if n1 > 0 {
                    let p1 = p0.add(16);
                    let d1 = _mm512_maskz_loadu_ps(mask(n1), p1);
                    let d1 = _mm512_add_ps(d1, _mm512_maskz_permutexvar_ps(0x5555, hi, s));
                    _mm512_mask_storeu_ps(p1, mask(n1), d1);
                }
                i += 16;
            }
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
    fn im2col_rows(
        xc: &[f32],
        g: &conv::ConvGeom,
        oy0: usize,
        oy1: usize,
        rows: &mut [f32],
        ld: usize,
    ) {
        im2col_rows_f32(xc, g, oy0, oy1, rows, ld)
    }
    fn col2im_rows(
        col: &[f32],
        g: &conv::ConvGeom,
        oy0: usize,
        oy1: usize,
        x: &mut [f32],
        ld: usize,
    ) {
        col2im_rows_f32(col, g, oy0, oy1, x, ld)
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

/// The precision of the convolutions' matrix products (every GEMM of
/// [`conv`] and [`winograd`] on `f32` data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulPrecision {
    /// f32 throughout (the default).
    #[default]
    F32,
    /// Inputs rounded to bf16, products summed in f32 ([`bf16::gemm_bf16`]);
    /// only where [`bf16::available`].
    Bf16,
}

static MATMUL_BF16: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the precision of the convolutions' matrix products for the whole
/// process (weights, optimiser state and everything outside the GEMMs stay
/// f32). Asking for bf16 on a CPU without AVX-512 BF16 is refused with the
/// reason, and the setting stays f32.
pub fn set_matmul_precision(p: MatmulPrecision) -> Result<(), String> {
    if p == MatmulPrecision::Bf16 && !bf16::available() {
        return Err(
            "bf16 matrix products need a CPU with AVX-512 BF16 (avx512bf16), which this one lacks"
                .into(),
        );
    }
    MATMUL_BF16.store(
        p == MatmulPrecision::Bf16,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}

/// The precision set by [`set_matmul_precision`].
pub fn matmul_precision() -> MatmulPrecision {
    if MATMUL_BF16.load(std::sync::atomic::Ordering::Relaxed) {
        MatmulPrecision::Bf16
    } else {
        MatmulPrecision::F32
    }
}

/// Number of worker threads the kernels split work over.
pub(crate) fn num_threads() -> usize {
    rayon::current_num_threads().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 stride-2 scatter-add equals the plain loop on every
    /// length around the 16-lane blocks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_stride2_matches_generic() {
        if !has_avx512() {
            eprintln!("skipping: no AVX-512 on this CPU");
            return;
        }
        for m in [1usize, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100] {
            for extra in [0usize, 1, 5] {
                let src: Vec<f32> = (0..2 * m - 1 + extra).map(|i| i as f32 + 0.25).collect();
                let vals: Vec<f32> = (0..m).map(|i| 1.5 * i as f32 - 3.0).collect();
                let (mut c, mut d) = (src.clone(), src.clone());
                // SAFETY: AVX-512 is available (checked above).
                unsafe { avx512::scatter_add2(&mut c, &vals) };
                scatter_add_strided_generic(&mut d, &vals, 2);
                assert_eq!(c, d, "scatter m={m} extra={extra}");
            }
        }
    }

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
