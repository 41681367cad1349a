//! Convolutions as im2col / col2im + GEMM on NCHW buffers.
//!
//! With `K = Cin/groups · kh · kw` and `P = Hout · Wout`, one sample and one
//! group of a convolution is the matrix product
//! `Y[Cout/g × P] = W[Cout/g × K] · col(X)[K × P]`. From it:
//! - the transposed convolution (and the input gradient of a convolution) is
//!   `col2im(Wᵀ · Y)`,
//! - the weight gradient is `Σₙ dYₙ · col(Xₙ)ᵀ`.
//!
//! Samples run in parallel on the rayon pool, each GEMM single-threaded (the
//! `gemm` crate picks AVX-512 micro-kernels at run time); with fewer samples
//! than threads the GEMMs themselves are parallelised instead.

use super::{num_threads, output_vec, Float};
use gemm::Parallelism;
use rayon::prelude::*;

/// Shape of one 2-D convolution `X (n, cin, h, w) ⊛ W (cout, cin/groups, kh, kw)
/// → Y (n, cout, ho, wo)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes).
    pub pad: usize,
    /// Dilation (both axes).
    pub dil: usize,
    /// Channel groups.
    pub groups: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

impl ConvGeom {
    /// The geometry of a convolution, with the output size derived from the
    /// input size. Returns a message when the shapes do not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        dil: usize,
        groups: usize,
    ) -> Result<Self, String> {
        if stride == 0 || dil == 0 || groups == 0 || kh == 0 || kw == 0 {
            return Err("stride, dilation, groups and kernel size must be positive".into());
        }
        if !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
            return Err(format!(
                "channels ({cin} in, {cout} out) are not divisible by groups={groups}"
            ));
        }
        let eh = dil * (kh - 1) + 1;
        let ew = dil * (kw - 1) + 1;
        if h + 2 * pad < eh || w + 2 * pad < ew {
            return Err(format!(
                "input {h}x{w} with padding {pad} is smaller than the dilated kernel {eh}x{ew}"
            ));
        }
        let ho = (h + 2 * pad - eh) / stride + 1;
        let wo = (w + 2 * pad - ew) / stride + 1;
        Ok(Self {
            n,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            stride,
            pad,
            dil,
            groups,
            ho,
            wo,
        })
    }

    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of one group's im2col matrix: `cin/groups · kh · kw`.
    pub fn kdim(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    /// Output pixels per channel.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }
    /// Input pixels per channel.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Elements of the input.
    pub fn x_len(&self) -> usize {
        self.n * self.cin * self.hw()
    }
    /// Elements of the output.
    pub fn y_len(&self) -> usize {
        self.n * self.cout * self.p()
    }
    /// Elements of the weight.
    pub fn w_len(&self) -> usize {
        self.cout * self.kdim()
    }
    /// A 1×1, stride-1, unpadded convolution needs no im2col.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    /// Valid output column range `[lo, hi)` for kernel column `kx`.
    #[inline(always)]
    fn ox_range(&self, kx: usize) -> (usize, usize, isize) {
        let off = (kx * self.dil) as isize - self.pad as isize;
        let s = self.stride as isize;
        let lo = if off >= 0 {
            0
        } else {
            ((-off + s - 1) / s) as usize
        };
        let last = self.w as isize - 1 - off;
        let hi = if last < 0 {
            0
        } else {
            ((last / s) as usize + 1).min(self.wo)
        };
        (lo.min(hi), hi, off)
    }
}

/// `Σ_c partial(c)` over `c < chunks`, the chunks run in parallel when
/// `parallel` (each computing its own partial sum of a reduction).
pub(super) fn sum_partials<T: Float>(
    chunks: usize,
    parallel: bool,
    partial: impl Fn(usize) -> Vec<T> + Sync + Send,
) -> Vec<T> {
    let mut parts: Vec<Vec<T>> = if parallel {
        (0..chunks)
            .into_par_iter()
            .with_max_len(1)
            .map(partial)
            .collect()
    } else {
        (0..chunks).map(partial).collect()
    };
    let mut sum = parts.swap_remove(0);
    for part in parts {
        for (d, s) in sum.iter_mut().zip(part) {
            *d += s;
        }
    }
    sum
}

/// Raw pointer that may cross threads; every use writes a disjoint region.
#[derive(Clone, Copy)]
pub(super) struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// Wraps a pointer.
    pub(super) fn new(p: *mut T) -> Self {
        Self(p)
    }
    /// Method access so that closures capture the whole (Send) wrapper.
    pub(super) fn get(&self) -> *mut T {
        self.0
    }
}

/// `col[(ci·kh + ky)·kw + kx, oy·wo + ox] = x[ci, oy·s + ky·d − p, ox·s + kx·d − p]`
/// (zero outside the image), for one sample.
pub fn im2col<T: Float>(x: &[T], g: &ConvGeom, col: &mut [T]) {
    let (p, hw, kk) = (g.p(), g.hw(), g.kh * g.kw);
    for ci in 0..g.cin {
        im2col_plane(
            &x[ci * hw..(ci + 1) * hw],
            g,
            &mut col[ci * kk * p..(ci + 1) * kk * p],
            p,
        );
    }
}

/// The `kh·kw` im2col rows of one input plane `xc (h, w)`, written to `rows`
/// with row stride `ld` (the first `p` entries of each row).
pub fn im2col_plane<T: Float>(xc: &[T], g: &ConvGeom, rows: &mut [T], ld: usize) {
    im2col_plane_rows(xc, g, 0, g.ho, rows, ld)
}

/// [`im2col_plane`] for output rows `oy0..oy1` only (column `(oy − oy0)·wo + ox`).
pub fn im2col_plane_rows<T: Float>(
    xc: &[T],
    g: &ConvGeom,
    oy0: usize,
    oy1: usize,
    rows: &mut [T],
    ld: usize,
) {
    T::im2col_rows(xc, g, oy0, oy1, rows, ld)
}

/// The body of [`im2col_plane_rows`], inlined into each instruction-set
/// variant (`Float::im2col_rows`) so that the short strided row copies of
/// small layers pay no call or dispatch per row.
#[inline(always)]
pub(super) fn im2col_rows_body<T: Float>(
    xc: &[T],
    g: &ConvGeom,
    oy0: usize,
    oy1: usize,
    rows: &mut [T],
    ld: usize,
    gather: impl Fn(&mut [T], &[T], usize),
) {
    let cp = (oy1 - oy0) * g.wo;
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let row = ky * g.kw + kx;
            let dst = &mut rows[row * ld..row * ld + cp];
            let (lo, hi, off) = g.ox_range(kx);
            for oy in oy0..oy1 {
                let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
                let drow = &mut dst[(oy - oy0) * g.wo..(oy - oy0 + 1) * g.wo];
                if iy < 0 || iy >= g.h as isize {
                    drow.fill(T::ZERO);
                    continue;
                }
                let xrow = &x_row(xc, iy as usize, g.w);
                drow[..lo].fill(T::ZERO);
                drow[hi..].fill(T::ZERO);
                let ix0 = ((lo * g.stride) as isize + off) as usize;
                if g.stride == 1 {
                    drow[lo..hi].copy_from_slice(&xrow[ix0..ix0 + (hi - lo)]);
                } else if hi > lo {
                    gather(&mut drow[lo..hi], &xrow[ix0..], g.stride);
                }
            }
        }
    }
}

#[inline(always)]
fn x_row<T>(xc: &[T], iy: usize, w: usize) -> &[T] {
    &xc[iy * w..(iy + 1) * w]
}

/// The adjoint of [`im2col`]: `x[ci, iy, ix] += col[...]` for one sample.
/// `x` must be zeroed by the caller.
pub fn col2im<T: Float>(col: &[T], g: &ConvGeom, x: &mut [T]) {
    col2im_rows(col, g, 0, g.ho, x, g.p())
}

/// [`col2im`] for output rows `oy0..oy1` of a chunk whose rows have stride
/// `ld` (column `(oy − oy0)·wo + ox`).
pub fn col2im_rows<T: Float>(
    col: &[T],
    g: &ConvGeom,
    oy0: usize,
    oy1: usize,
    x: &mut [T],
    ld: usize,
) {
    T::col2im_rows(col, g, oy0, oy1, x, ld)
}

/// The body of [`col2im_rows`], inlined into each instruction-set variant.
#[inline(always)]
pub(super) fn col2im_rows_body<T: Float>(
    col: &[T],
    g: &ConvGeom,
    oy0: usize,
    oy1: usize,
    x: &mut [T],
    ld: usize,
    scatter_add: impl Fn(&mut [T], &[T], usize),
) {
    let hw = g.hw();
    for ci in 0..g.cin {
        let xc = &mut x[ci * hw..(ci + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                let src = &col[row * ld..];
                let (lo, hi, off) = g.ox_range(kx);
                for oy in oy0..oy1 {
                    let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let iy = iy as usize;
                    let srow = &src[(oy - oy0) * g.wo..(oy - oy0 + 1) * g.wo];
                    let xrow = &mut xc[iy * g.w..(iy + 1) * g.w];
                    let ix0 = ((lo * g.stride) as isize + off) as usize;
                    if hi > lo {
                        scatter_add(&mut xrow[ix0..], &srow[lo..hi], g.stride);
                    }
                }
            }
        }
    }
}

/// Row-major matrix view for [`gemm::gemm`]: pointer, row stride, column stride.
#[derive(Clone, Copy)]
pub(super) struct Mat<T> {
    pub(super) ptr: *const T,
    pub(super) rs: isize,
    pub(super) cs: isize,
}

/// `dst[m×n] (row-major, row stride ld) (+)= a[m×k] · b[k×n]`.
///
/// # Safety
/// All pointers must be valid for the given shapes and strides.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    ld: usize,
    accumulate: bool,
    a: Mat<T>,
    b: Mat<T>,
    par: Parallelism,
) {
    if b.cs == 1
        && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && super::matmul_precision() == super::MatmulPrecision::Bf16
    {
        let threads = match par {
            Parallelism::Rayon(t) => t.max(1),
            _ => 1,
        };
        // SAFETY: T is f32 (checked above), bf16 was only enabled where the
        // CPU has it, and the pointers are the caller's.
        unsafe {
            super::bf16::gemm_bf16(
                m,
                n,
                k,
                super::bf16::StridedA {
                    ptr: a.ptr as *const f32,
                    rs: a.rs,
                    cs: a.cs,
                },
                b.ptr as *const f32,
                b.rs as usize,
                dst as *mut f32,
                ld,
                accumulate,
                threads,
            )
        };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ld as isize,
            accumulate,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

/// How to split a batch of `n` samples over the thread pool.
fn plan(n: usize, work_per_sample: usize) -> (bool, Parallelism) {
    let nt = num_threads();
    if nt <= 1 || n * work_per_sample < 1 << 16 {
        (false, Parallelism::None)
    } else if n >= nt {
        (true, Parallelism::None)
    } else {
        (false, Parallelism::Rayon(nt))
    }
}

fn for_each_sample(n: usize, parallel: bool, f: impl Fn(usize) + Sync + Send) {
    if parallel {
        (0..n).into_par_iter().with_max_len(1).for_each(f);
    } else {
        (0..n).for_each(f);
    }
}

/// Per-channel epilogue on one sample's output `(c, p)`: `y = act(y + bias[c])`
/// where `act` is a leaky ReLU with `slope` if given.
pub fn epilogue<T: Float>(y: &mut [T], c: usize, p: usize, bias: Option<&[T]>, slope: Option<T>) {
    for ch in 0..c {
        let row = &mut y[ch * p..(ch + 1) * p];
        let b = bias.map(|b| b[ch]).unwrap_or(T::ZERO);
        match (bias.is_some(), slope) {
            (false, None) => {}
            (true, None) => row.iter_mut().for_each(|v| *v += b),
            (_, Some(a)) => row.iter_mut().for_each(|v| {
                let t = *v + b;
                *v = if t > T::ZERO { t } else { t * a };
            }),
        }
    }
}

/// Forward convolution: `y = act(conv(x, w) + bias)`; returns `y (n, cout, ho, wo)`.
///
/// 3×3 stride-1 layers with enough channels run on [`super::winograd`],
/// everything else on [`im2col_conv2d_fwd`].
pub fn conv2d_fwd<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    if super::winograd::applies(g) {
        return super::winograd::conv2d_fwd(x, w, bias, slope, g);
    }
    im2col_conv2d_fwd(x, w, bias, slope, g)
}

/// [`conv2d_fwd`] through im2col + GEMM, for any shape.
pub fn im2col_conv2d_fwd<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    conv2d_fwd_chunked(x, w, bias, slope, g, FWD_CHUNK)
}

fn conv2d_fwd_chunked<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
    chunk: usize,
) -> Vec<T> {
    let (p, kdim) = (g.p(), g.kdim());
    // Every element is written by the GEMMs (zero beta) before the epilogue.
    let mut y = output_vec::<T>(g.y_len());
    let (parallel, par) = plan(g.n, g.cout * kdim * p);
    let yp = SendPtr(y.as_mut_ptr());
    let x_n_len = g.cin * g.hw();
    let y_n_len = g.cout * p;
    let rows = chunk_rows(g, chunk);
    let kk = g.kh * g.kw;
    for_each_sample(g.n, parallel, |n| {
        let x_n = &x[n * x_n_len..(n + 1) * x_n_len];
        // SAFETY: sample n writes only y[n·y_n_len ..][.. y_n_len].
        let y_n = unsafe { std::slice::from_raw_parts_mut(yp.get().add(n * y_n_len), y_n_len) };
        if g.is_pointwise() {
            // SAFETY: x_n is the (cin × p) "im2col" matrix of a 1×1 conv.
            unsafe { fwd_product(g, w, x_n.as_ptr(), p, 0, p, y_n.as_mut_ptr(), par) };
        } else {
            let rows = rows.min(g.ho);
            T::with_scratch(g.cin * kk * rows * g.wo, |col| {
                for oy0 in (0..g.ho).step_by(rows) {
                    let oy1 = (oy0 + rows).min(g.ho);
                    let cp = (oy1 - oy0) * g.wo;
                    for ci in 0..g.cin {
                        let xc = &x_n[ci * g.hw()..(ci + 1) * g.hw()];
                        let dst = &mut col[ci * kk * cp..(ci + 1) * kk * cp];
                        im2col_plane_rows(xc, g, oy0, oy1, dst, cp);
                    }
                    // SAFETY: the chunk's columns lie inside y_n's rows.
                    unsafe {
                        fwd_product(
                            g,
                            w,
                            col.as_ptr(),
                            cp,
                            oy0 * g.wo,
                            cp,
                            y_n.as_mut_ptr(),
                            par,
                        )
                    };
                }
            });
        }
        epilogue(y_n, g.cout, p, bias, slope);
    });
    y
}

/// Below this many output channels per group the forward GEMM is computed
/// transposed (`Yᵀ = colᵀ·Wᵀ`), so that the long pixel axis fills the
/// micro-kernel's 64-row panels instead of the few channels (a 32→3 output
/// layer otherwise uses 3/64 of each panel).
const SMALL_COUT: usize = 32;

/// `y_n[:, c0 .. c0 + cp] = W · col` for every group, where `col` holds the
/// chunk's im2col matrix (`cin·kh·kw` rows of stride `ld`) and `y_n` rows
/// have stride `p`.
///
/// # Safety
/// `col` and `y_n` must be valid for those shapes.
#[allow(clippy::too_many_arguments)]
unsafe fn fwd_product<T: Float>(
    g: &ConvGeom,
    w: &[T],
    col: *const T,
    ld: usize,
    c0: usize,
    cp: usize,
    y_n: *mut T,
    par: Parallelism,
) {
    let (p, kdim, cout_g) = (g.p(), g.kdim(), g.cout_g());
    for gi in 0..g.groups {
        // SAFETY: offsets stay inside the buffers described by the caller.
        unsafe {
            let dst = y_n.add(gi * cout_g * p + c0);
            let wg = w.as_ptr().add(gi * cout_g * kdim);
            let cg = col.add(gi * kdim * ld);
            if cout_g < SMALL_COUT {
                gemm::gemm(
                    cp,
                    cout_g,
                    kdim,
                    dst,
                    p as isize,
                    1,
                    false,
                    cg,
                    ld as isize,
                    1,
                    wg,
                    kdim as isize,
                    1,
                    T::ZERO,
                    T::ONE,
                    false,
                    false,
                    false,
                    par,
                );
            } else {
                matmul(
                    cout_g,
                    cp,
                    kdim,
                    dst,
                    p,
                    false,
                    Mat {
                        ptr: wg,
                        rs: kdim as isize,
                        cs: 1,
                    },
                    Mat {
                        ptr: cg,
                        rs: ld as isize,
                        cs: 1,
                    },
                    par,
                );
            }
        }
    }
}

/// im2col chunk sizes (elements) of the forward, input-gradient and
/// weight-gradient kernels, measured on this project's 2-core AVX-512 CPU:
/// chunks of ~1 MB (f32) that stay in L2 made the forward ~15 % faster; the
/// input gradient's GEMM (short reduction over output channels) loses more
/// from narrower products than it gains, so it is only chunked to bound
/// memory.
const FWD_CHUNK: usize = 1 << 18;
const BWD_INPUT_CHUNK: usize = 1 << 22;
const WEIGHT_GRAD_CHUNK: usize = 1 << 18;

/// Output rows per im2col chunk, so that a chunk of the im2col matrix stays
/// in the L2 cache between being written and being read by the GEMM.
fn chunk_rows(g: &ConvGeom, target: usize) -> usize {
    let per_row = g.cin * g.kh * g.kw * g.wo;
    (target / per_row.max(1)).clamp(1, g.ho)
}

/// Transposed convolution, the adjoint of [`conv2d_fwd`] in `x`:
/// given `dy (n, cout, ho, wo)` and the convolution weight `w (cout, cin/g, kh, kw)`
/// returns `act(dx + bias)` with `dx (n, cin, h, w)` and `bias` per input channel.
/// This is both `conv_transpose2d` and the input gradient of `conv2d`.
///
/// 3×3 stride-1 layers with enough channels run on [`super::winograd`],
/// everything else on [`im2col_conv2d_bwd_input`].
pub fn conv2d_bwd_input<T: Float>(
    dy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    if super::winograd::applies(g) {
        return super::winograd::conv2d_bwd_input(dy, w, bias, slope, g);
    }
    im2col_conv2d_bwd_input(dy, w, bias, slope, g)
}

/// [`conv2d_bwd_input`] through GEMM + col2im, for any shape.
pub fn im2col_conv2d_bwd_input<T: Float>(
    dy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    conv2d_bwd_input_chunked(dy, w, bias, slope, g, BWD_INPUT_CHUNK)
}

fn conv2d_bwd_input_chunked<T: Float>(
    dy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
    chunk: usize,
) -> Vec<T> {
    let (p, kdim, cin_g, cout_g, hw) = (g.p(), g.kdim(), g.cin_g(), g.cout_g(), g.hw());
    let mut dx = vec![T::ZERO; g.x_len()];
    let (parallel, par) = plan(g.n, g.cout * kdim * p);
    let dxp = SendPtr(dx.as_mut_ptr());
    let x_n_len = g.cin * hw;
    let y_n_len = g.cout * p;
    let rows = chunk_rows(g, chunk);
    for_each_sample(g.n, parallel, |n| {
        // SAFETY: sample n writes only its own slice of dx.
        let dx_n = unsafe { std::slice::from_raw_parts_mut(dxp.get().add(n * x_n_len), x_n_len) };
        let dy_n = &dy[n * y_n_len..(n + 1) * y_n_len];
        // dst (kdim rows of ld per group) = Wᵀ · dy_n[:, c0 .. c0 + cp].
        let gemm_into = |dst: *mut T, ld: usize, c0: usize, cp: usize| {
            for gi in 0..g.groups {
                // SAFETY: Wᵀ of group gi is (kdim × cout_g) with row stride 1 and
                // column stride kdim; dst has kdim rows of ld per group.
                unsafe {
                    matmul(
                        kdim,
                        cp,
                        cout_g,
                        dst.add(gi * kdim * ld),
                        ld,
                        false,
                        Mat {
                            ptr: w.as_ptr().add(gi * cout_g * kdim),
                            rs: 1,
                            cs: kdim as isize,
                        },
                        Mat {
                            ptr: dy_n.as_ptr().add(gi * cout_g * p + c0),
                            rs: p as isize,
                            cs: 1,
                        },
                        par,
                    );
                }
            }
        };
        if g.is_pointwise() {
            gemm_into(dx_n.as_mut_ptr(), hw, 0, p);
        } else {
            T::with_scratch(g.cin * g.kh * g.kw * rows * g.wo, |col| {
                for oy0 in (0..g.ho).step_by(rows) {
                    let oy1 = (oy0 + rows).min(g.ho);
                    let cp = (oy1 - oy0) * g.wo;
                    gemm_into(col.as_mut_ptr(), cp, oy0 * g.wo, cp);
                    col2im_rows(col, g, oy0, oy1, dx_n, cp);
                }
            });
        }
        let _ = cin_g;
        epilogue(dx_n, g.cin, hw, bias, slope);
    });
    dx
}

/// `dst[j·rows + i] = src[i·cols + j]` for a `rows × cols` row-major `src`.
pub fn transpose<T: Float>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    T::transpose(src, rows, cols, dst)
}

/// `dw (groups, cout_g, kdim)` from the `dwᵀ (groups, kdim, cout_g)` the
/// weight-gradient GEMMs accumulate.
fn weight_grad_from_transposed<T: Float>(dwt: &[T], g: &ConvGeom) -> Vec<T> {
    let (kdim, cout_g) = (g.kdim(), g.cout_g());
    let m = kdim * cout_g;
    let mut dw = output_vec::<T>(g.w_len());
    for (src, dst) in dwt.chunks_exact(m).zip(dw.chunks_exact_mut(m)) {
        transpose(src, kdim, cout_g, dst);
    }
    dw
}

/// Weight gradient of [`conv2d_fwd`]: `dw = Σₙ dyₙ · col(xₙ)ᵀ`, shape
/// `(cout, cin/groups, kh, kw)`.
///
/// Both factors store the pixel axis (the GEMM's reduction axis) contiguously,
/// which the `gemm` crate packs slowly (a third of its speed), so each sample
/// computes `dwᵀ += col(xₙ) · dyₙᵀ` with `dyₙ` transposed first (cheap: it is
/// `kh·kw` times smaller than `col`) and `dwᵀ` is transposed once at the end.
///
/// 3×3 stride-1 layers with enough channels run on [`super::winograd`],
/// everything else on [`im2col_conv2d_bwd_weight`].
pub fn conv2d_bwd_weight<T: Float>(x: &[T], dy: &[T], g: &ConvGeom) -> Vec<T> {
    if super::winograd::applies(g) {
        return super::winograd::conv2d_bwd_weight(x, dy, g);
    }
    im2col_conv2d_bwd_weight(x, dy, g)
}

/// [`conv2d_bwd_weight`] through im2col + GEMM, for any shape.
pub fn im2col_conv2d_bwd_weight<T: Float>(x: &[T], dy: &[T], g: &ConvGeom) -> Vec<T> {
    let col_all = g.cin * g.kh * g.kw * g.n * g.p();
    if g.n > 1 && g.p() <= BATCHED_MAX_P && col_all <= BATCHED_MAX_COL && num_threads() > 1 {
        conv2d_bwd_weight_batched(x, dy, g)
    } else {
        conv2d_bwd_weight_per_sample(x, dy, g, WEIGHT_GRAD_CHUNK)
    }
}

/// Layers with at most this many output pixels per sample take the batched
/// weight-gradient path (one GEMM over the whole batch).
const BATCHED_MAX_P: usize = 256;
/// ... when the batch's im2col matrix has at most this many elements.
const BATCHED_MAX_COL: usize = 1 << 23;

/// Weight gradient for small spatial sizes: with few pixels per sample the
/// per-sample GEMMs have a short reduction axis and re-read the whole `dwᵀ`
/// for little work, so the batch's im2col matrices are laid side by side
/// (`kdim × n·p`) and reduced in one GEMM parallelised inside.
fn conv2d_bwd_weight_batched<T: Float>(x: &[T], dy: &[T], g: &ConvGeom) -> Vec<T> {
    let (p, kdim, cout_g, hw, kk) = (g.p(), g.kdim(), g.cout_g(), g.hw(), g.kh * g.kw);
    let np = g.n * p;
    let x_n_len = g.cin * hw;
    let y_n_len = g.cout * p;
    // dyᵀ for the whole batch: (n·p × cout).
    let mut dyt = output_vec::<T>(g.n * y_n_len);
    dyt.par_chunks_mut(y_n_len)
        .enumerate()
        .for_each(|(n, out)| transpose(&dy[n * y_n_len..(n + 1) * y_n_len], g.cout, p, out));
    // Written whole by the GEMMs (zero beta).
    let mut dwt = output_vec::<T>(g.w_len());
    T::with_scratch(g.cin * kk * np, |col| {
        // Row block of input channel ci: kk rows of n·p; sample n at column n·p.
        col.par_chunks_mut(kk * np)
            .enumerate()
            .for_each(|(ci, rows)| {
                for n in 0..g.n {
                    let xc = &x[n * x_n_len + ci * hw..n * x_n_len + (ci + 1) * hw];
                    im2col_plane(xc, g, &mut rows[n * p..], np);
                }
            });
        for gi in 0..g.groups {
            // SAFETY: col rows of group gi: (kdim × n·p) row-major; dyᵀ
            // columns of group gi: (n·p × cout_g), row stride cout.
            unsafe {
                matmul(
                    kdim,
                    cout_g,
                    np,
                    dwt.as_mut_ptr().add(gi * kdim * cout_g),
                    cout_g,
                    false,
                    Mat {
                        ptr: col.as_ptr().add(gi * kdim * np),
                        rs: np as isize,
                        cs: 1,
                    },
                    Mat {
                        ptr: dyt.as_ptr().add(gi * cout_g),
                        rs: g.cout as isize,
                        cs: 1,
                    },
                    Parallelism::Rayon(num_threads()),
                );
            }
        }
    });
    weight_grad_from_transposed(&dwt, g)
}

fn conv2d_bwd_weight_per_sample<T: Float>(x: &[T], dy: &[T], g: &ConvGeom, chunk: usize) -> Vec<T> {
    let (p, kdim, cout_g, hw) = (g.p(), g.kdim(), g.cout_g(), g.hw());
    let x_n_len = g.cin * hw;
    let y_n_len = g.cout * p;
    let nt = num_threads();
    let big = g.n * g.cout * kdim * p >= 1 << 16;
    let chunks = if big { g.n.min(nt) } else { 1 };
    let par = if big && g.n < nt {
        Parallelism::Rayon(nt)
    } else {
        Parallelism::None
    };
    let per_chunk = g.n.div_ceil(chunks.max(1));
    let rows = chunk_rows(g, chunk);
    // Partial dwᵀ laid out as (groups, kdim, cout_g).
    let partial = |c: usize| -> Vec<T> {
        let mut dwt = vec![T::ZERO; g.w_len()];
        let mut dyt = output_vec::<T>(y_n_len);
        let mut first = true;
        for n in c * per_chunk..((c + 1) * per_chunk).min(g.n) {
            let x_n = &x[n * x_n_len..(n + 1) * x_n_len];
            transpose(&dy[n * y_n_len..(n + 1) * y_n_len], g.cout, p, &mut dyt);
            // dwᵀ (+)= col[:, chunk] · dyᵀ[chunk, :] for pixels c0 .. c0 + cp,
            // with `col` holding that chunk's columns (row stride cp).
            let run = |col: &[T], c0: usize, cp: usize, dwt: &mut [T], acc: bool| {
                for gi in 0..g.groups {
                    // SAFETY: col of group gi is (kdim × cp) row-major; dyᵀ of
                    // group gi is (p × cout_g) with row stride cout; dwᵀ of
                    // group gi is (kdim × cout_g) row-major.
                    unsafe {
                        matmul(
                            kdim,
                            cout_g,
                            cp,
                            dwt.as_mut_ptr().add(gi * kdim * cout_g),
                            cout_g,
                            acc,
                            Mat {
                                ptr: col.as_ptr().add(gi * kdim * cp),
                                rs: cp as isize,
                                cs: 1,
                            },
                            Mat {
                                ptr: dyt.as_ptr().add(c0 * g.cout + gi * cout_g),
                                rs: g.cout as isize,
                                cs: 1,
                            },
                            par,
                        );
                    }
                }
            };
            if g.is_pointwise() {
                run(x_n, 0, p, &mut dwt, !first);
            } else {
                let kk = g.kh * g.kw;
                T::with_scratch(g.cin * kk * rows * g.wo, |col| {
                    for oy0 in (0..g.ho).step_by(rows) {
                        let oy1 = (oy0 + rows).min(g.ho);
                        let cp = (oy1 - oy0) * g.wo;
                        for ci in 0..g.cin {
                            let xc = &x_n[ci * hw..(ci + 1) * hw];
                            im2col_plane_rows(
                                xc,
                                g,
                                oy0,
                                oy1,
                                &mut col[ci * kk * cp..(ci + 1) * kk * cp],
                                cp,
                            );
                        }
                        run(col, oy0 * g.wo, cp, &mut dwt, !first);
                        first = false;
                    }
                });
            }
            first = false;
        }
        dwt
    };
    let dwt = sum_partials(chunks, chunks > 1 && g.n >= nt, partial);
    weight_grad_from_transposed(&dwt, g)
}

/// Whether [`conv2d_fwd_and_weight_grad`] pays on this geometry: an im2col
/// layer (not 1×1, not Winograd) on the per-sample weight-gradient path.
pub fn fused_fwd_weight_applies(g: &ConvGeom) -> bool {
    !g.is_pointwise() && !super::winograd::applies(g) && g.p() > BATCHED_MAX_P
}

/// `(conv2d_fwd(x, w), conv2d_bwd_weight(x, dy))` from one im2col of `x`:
/// the backward of a transposed convolution needs both for the same `x`
/// (its output gradient), so each chunk of the im2col matrix feeds the
/// forward GEMM and the weight-gradient GEMM while it is in cache.
pub fn conv2d_fwd_and_weight_grad<T: Float>(
    x: &[T],
    w: &[T],
    dy: &[T],
    g: &ConvGeom,
) -> (Vec<T>, Vec<T>) {
    let (p, kdim, cout_g, hw, kk) = (g.p(), g.kdim(), g.cout_g(), g.hw(), g.kh * g.kw);
    let x_n_len = g.cin * hw;
    let y_n_len = g.cout * p;
    let nt = num_threads();
    let chunks = g.n.clamp(1, nt);
    let per_chunk = g.n.div_ceil(chunks);
    let par = if g.n < nt && nt > 1 {
        Parallelism::Rayon(nt)
    } else {
        Parallelism::None
    };
    let rows = chunk_rows(g, FWD_CHUNK).min(g.ho);
    // Written whole: every sample's rows by the forward GEMMs (zero beta).
    let mut y = output_vec::<T>(g.y_len());
    let yp = SendPtr(y.as_mut_ptr());
    let partial = |c: usize| -> Vec<T> {
        let mut dwt = vec![T::ZERO; g.w_len()];
        let mut dyt = output_vec::<T>(y_n_len);
        T::with_scratch(g.cin * kk * rows * g.wo, |col| {
            for n in c * per_chunk..((c + 1) * per_chunk).min(g.n) {
                let x_n = &x[n * x_n_len..(n + 1) * x_n_len];
                transpose(&dy[n * y_n_len..(n + 1) * y_n_len], g.cout, p, &mut dyt);
                for oy0 in (0..g.ho).step_by(rows) {
                    let oy1 = (oy0 + rows).min(g.ho);
                    let cp = (oy1 - oy0) * g.wo;
                    for ci in 0..g.cin {
                        let xc = &x_n[ci * hw..(ci + 1) * hw];
                        im2col_plane_rows(
                            xc,
                            g,
                            oy0,
                            oy1,
                            &mut col[ci * kk * cp..(ci + 1) * kk * cp],
                            cp,
                        );
                    }
                    // SAFETY: sample n's output rows are written only here;
                    // the chunk's columns lie inside them.
                    unsafe {
                        fwd_product(
                            g,
                            w,
                            col.as_ptr(),
                            cp,
                            oy0 * g.wo,
                            cp,
                            yp.get().add(n * y_n_len),
                            par,
                        )
                    };
                    for gi in 0..g.groups {
                        // SAFETY: col of group gi (kdim × cp) row-major; dyᵀ rows
                        // of this chunk (cp × cout_g, row stride cout); dwᵀ of
                        // group gi (kdim × cout_g) row-major.
                        unsafe {
                            matmul(
                                kdim,
                                cout_g,
                                cp,
                                dwt.as_mut_ptr().add(gi * kdim * cout_g),
                                cout_g,
                                true,
                                Mat {
                                    ptr: col.as_ptr().add(gi * kdim * cp),
                                    rs: cp as isize,
                                    cs: 1,
                                },
                                Mat {
                                    ptr: dyt.as_ptr().add(oy0 * g.wo * g.cout + gi * cout_g),
                                    rs: g.cout as isize,
                                    cs: 1,
                                },
                                par,
                            );
                        }
                    }
                }
            }
        });
        dwt
    };
    let dwt = sum_partials(chunks, chunks > 1 && g.n >= nt, partial);
    let dw = weight_grad_from_transposed(&dwt, g);
    (y, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let m = b.iter().map(|y| y.abs()).fold(1e-30, f64::max);
        assert!(d / m < 1e-12, "chunked result differs: {}", d / m);
    }

    /// The chunked im2col paths (one output row per chunk) agree with the
    /// whole-image paths, for plain, strided, dilated and grouped layers.
    #[test]
    fn chunked_paths_match_unchunked() {
        for (n, cin, cout, h, w, k, s, p, d, gr) in [
            (3, 4, 6, 9, 7, 3, 1, 1, 1, 1),
            (2, 6, 4, 11, 10, 4, 2, 1, 1, 2),
            (1, 3, 5, 8, 9, 3, 1, 2, 2, 1),
            (2, 5, 40, 7, 6, 3, 1, 1, 1, 1),
        ] {
            let g = ConvGeom::new(n, cin, h, w, cout, k, k, s, p, d, gr).unwrap();
            let val = |i: usize| ((i * 7919) % 97) as f64 / 97.0 - 0.5;
            let x: Vec<f64> = (0..g.x_len()).map(val).collect();
            let wt: Vec<f64> = (0..g.w_len()).map(|i| val(i + 13)).collect();
            let dy: Vec<f64> = (0..g.y_len()).map(|i| val(i + 29)).collect();
            let b: Vec<f64> = (0..cout).map(|i| val(i + 3)).collect();
            close(
                &conv2d_fwd_chunked(&x, &wt, Some(&b), Some(0.2), &g, 1),
                &conv2d_fwd_chunked(&x, &wt, Some(&b), Some(0.2), &g, usize::MAX),
            );
            close(
                &conv2d_bwd_input_chunked(&dy, &wt, None, None, &g, 1),
                &conv2d_bwd_input_chunked(&dy, &wt, None, None, &g, usize::MAX),
            );
            close(
                &conv2d_bwd_weight_per_sample(&x, &dy, &g, 1),
                &conv2d_bwd_weight_per_sample(&x, &dy, &g, usize::MAX),
            );
            close(
                &conv2d_bwd_weight_batched(&x, &dy, &g),
                &conv2d_bwd_weight_per_sample(&x, &dy, &g, usize::MAX),
            );
            let (yf, dwf) = conv2d_fwd_and_weight_grad(&x, &wt, &dy, &g);
            close(
                &yf,
                &conv2d_fwd_chunked(&x, &wt, None, None, &g, usize::MAX),
            );
            close(&dwf, &conv2d_bwd_weight_per_sample(&x, &dy, &g, usize::MAX));
        }
    }
}
