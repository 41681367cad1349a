//! A bf16 GEMM with f32 accumulation for CPUs with AVX-512 BF16.
//!
//! `vdpbf16ps` multiplies 32 pairs of bf16 values and adds each pair's two
//! products into 16 f32 accumulators: twice the multiply–adds of an f32 FMA
//! per instruction, from operands half the size. Inputs stay f32 in memory;
//! the packing that every blocked GEMM does anyway rounds them to bf16
//! (round to nearest even) on the way into the packed panels, and the
//! products are summed in f32. That is the usual mixed-precision contract:
//! about three significant digits per input, f32 sums.
//!
//! Layout: `C (m×n, row-major, row stride ldc) (+)= A (m×k) · B (k×n)`, `A`
//! with any strides, `B` with unit column stride (what every convolution of
//! [`super::conv`] and [`super::winograd`] passes). Blocking follows BLIS:
//! `B` panels of `KC × NR` pairs stay in L1, blocks of `A` (`MC × KC`) in L2;
//! the micro-kernel keeps a 12 × 32 tile of `C` in 24 registers.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of the micro-tile.
const MR: usize = 12;
/// Columns of the micro-tile (two vectors of 16).
const NR: usize = 32;
/// Depth of a block, in values (even).
const KC: usize = 384;
/// Rows of an `A` block (a multiple of `MR`).
const MC: usize = 120;
/// Columns of a `B` block (a multiple of `NR`).
const NC: usize = 512;

/// Whether this CPU runs [`gemm_bf16`] (x86-64 with AVX-512 F, BW and BF16).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static F: OnceLock<bool> = OnceLock::new();
        *F.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to bf16 (nearest, ties to even), as the bits of the upper
/// half of an f32; NaN stays NaN. The same rounding as the packing, for
/// references and tests.
pub fn to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((u >> 16) & 1);
    (u.wrapping_add(round) >> 16) as u16
}

/// `x` rounded to bf16 and widened back to f32.
pub fn round_to_bf16(x: f32) -> f32 {
    f32::from_bits((to_bf16_bits(x) as u32) << 16)
}

/// A strided view of `A`: element `(i, p)` is at `ptr + i·rs + p·cs`.
#[derive(Clone, Copy, Debug)]
pub struct StridedA {
    /// The first element.
    pub ptr: *const f32,
    /// Row stride, in elements.
    pub rs: isize,
    /// Column stride, in elements.
    pub cs: isize,
}

/// `C[m×n] (+)= A[m×k] · B[k×n]` in bf16 with f32 sums.
///
/// `b` has row stride `ldb` and unit column stride; `c` row stride `ldc` and
/// unit column stride. With `accumulate` the product is added to `C`,
/// otherwise it replaces it. `threads > 1` splits the columns (or, for a
/// narrow `C`, the rows) over the rayon pool.
///
/// # Safety
/// [`available`] must be true, and every pointer valid for the shapes and
/// strides given (`C` writable and not overlapping `A` or `B`).
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_bf16(
    m: usize,
    n: usize,
    k: usize,
    a: StridedA,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of C is valid for n elements (caller).
                unsafe { std::ptr::write_bytes(c.add(i * ldc), 0, n) };
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let (a, b, c) = (SendA(a), SendPtr(b), SendMut(c));
        let run = move |i0: usize, i1: usize, j0: usize, j1: usize| {
            let (a, b, c) = (a, b, c);
            // SAFETY: the sub-problem stays inside the caller's shapes.
            unsafe {
                let sub_a = StridedA {
                    ptr: a.0.ptr.offset(i0 as isize * a.0.rs),
                    ..a.0
                };
                gemm_serial(
                    i1 - i0,
                    j1 - j0,
                    k,
                    sub_a,
                    b.0.add(j0),
                    ldb,
                    c.0.add(i0 * ldc + j0),
                    ldc,
                    accumulate,
                )
            }
        };
        if threads > 1 && n >= 2 * NR * threads {
            let per = n.div_ceil(threads).div_ceil(NR) * NR;
            rayon::scope(|s| {
                for j0 in (0..n).step_by(per) {
                    let j1 = (j0 + per).min(n);
                    s.spawn(move |_| run(0, m, j0, j1));
                }
            });
        } else if threads > 1 && m >= 2 * MR * threads {
            let per = m.div_ceil(threads).div_ceil(MR) * MR;
            rayon::scope(|s| {
                for i0 in (0..m).step_by(per) {
                    let i1 = (i0 + per).min(m);
                    s.spawn(move |_| run(i0, i1, 0, n));
                }
            });
        } else {
            run(0, m, 0, n);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, b, ldb, c, ldc, accumulate, threads);
        panic!("gemm_bf16 needs x86-64 with AVX-512 BF16 (check `available()` first)");
    }
}

#[derive(Clone, Copy)]
struct SendA(StridedA);
// SAFETY: only read, and the caller keeps it alive for the call.
unsafe impl Send for SendA {}
unsafe impl Sync for SendA {}
#[derive(Clone, Copy)]
struct SendPtr(*const f32);
// SAFETY: as above.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
#[derive(Clone, Copy)]
struct SendMut(*mut f32);
// SAFETY: each thread writes a disjoint block of C.
unsafe impl Send for SendMut {}
unsafe impl Sync for SendMut {}

thread_local! {
    static PACK_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PACK_B: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One thread's blocked GEMM.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_serial(
    m: usize,
    n: usize,
    k: usize,
    a: StridedA,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    PACK_A.with_borrow_mut(|pa| {
        PACK_B.with_borrow_mut(|pb| {
            let nc_max = NC.min(n.div_ceil(NR) * NR);
            let mc_max = MC.min(m.div_ceil(MR) * MR);
            pb.resize(KC / 2 * nc_max, 0);
            pa.resize(KC / 2 * mc_max, 0);
            for jc in (0..n).step_by(NC) {
                let nc = NC.min(n - jc);
                for pc in (0..k).step_by(KC) {
                    let kc = KC.min(k - pc);
                    let pairs = kc.div_ceil(2);
                    // SAFETY: the block lies inside B; pb holds KC/2 · nc_max words.
                    unsafe { pack_b(pb, b.add(pc * ldb + jc), ldb, kc, nc) };
                    let acc = accumulate || pc > 0;
                    for ic in (0..m).step_by(MC) {
                        let mc = MC.min(m - ic);
                        // SAFETY: the block lies inside A.
                        unsafe {
                            pack_a(
                                pa,
                                a.ptr.offset(ic as isize * a.rs + pc as isize * a.cs),
                                a.rs,
                                a.cs,
                                mc,
                                kc,
                            )
                        };
                        for jr in (0..nc).step_by(NR) {
                            let nr = NR.min(nc - jr);
                            for ir in (0..mc).step_by(MR) {
                                let mr = MR.min(mc - ir);
                                // SAFETY: the panels were packed above; the C
                                // tile lies inside C.
                                unsafe {
                                    kernel(
                                        pairs,
                                        pa.as_ptr().add(ir * pairs),
                                        pb.as_ptr().add(jr * pairs),
                                        c.add((ic + ir) * ldc + jc + jr),
                                        ldc,
                                        mr,
                                        nr,
                                        acc,
                                    )
                                };
                            }
                        }
                    }
                }
            }
        })
    })
}

/// Packs `kc × nc` of `B` (row stride `ldb`, unit column stride) into panels
/// of `NR` columns: panel `q` holds, for each pair of rows `(2p, 2p+1)`,
/// `NR` words whose low half is row `2p`'s bf16 and high half row `2p+1`'s.
/// Missing rows and columns are zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_b(dst: &mut [u32], b: *const f32, ldb: usize, kc: usize, nc: usize) {
    let pairs = kc.div_ceil(2);
    let idx = interleave_index();
    for (q, j0) in (0..nc).step_by(NR).enumerate() {
        let panel = &mut dst[q * pairs * NR..(q + 1) * pairs * NR];
        for half in 0..2 {
            let jj = j0 + 16 * half;
            let cols = nc.saturating_sub(jj).min(16);
            let mask: __mmask16 = if cols >= 16 {
                0xffff
            } else {
                (1u16 << cols) - 1
            };
            for p in 0..pairs {
                // SAFETY: the masked loads read only columns < nc of rows < kc.
                let words = unsafe {
                    pair_words(
                        b.add(2 * p * ldb + jj),
                        ldb as isize,
                        mask,
                        2 * p + 1 < kc,
                        idx,
                    )
                };
                // SAFETY: 16 words at p·NR + 16·half inside the panel.
                unsafe {
                    _mm512_storeu_si512(panel.as_mut_ptr().add(p * NR + 16 * half) as *mut _, words)
                };
            }
        }
    }
}

/// Up to 16 words pairing `even[j]` (low half) with `odd[j]` (high half) as
/// bf16, where `even` is the 16 values at `even` (lanes outside `mask` read
/// as 0) and `odd` the 16 values `stride` further on (all 0 without
/// `has_odd`).
///
/// # Safety
/// The masked lanes at `even` (and at `even + stride` with `has_odd`) must be
/// readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair_words(
    even: *const f32,
    stride: isize,
    mask: __mmask16,
    has_odd: bool,
    idx: __m512i,
) -> __m512i {
    // SAFETY: the caller's.
    let (e, o) = unsafe {
        let e = _mm512_maskz_loadu_ps(mask, even);
        let o = if has_odd {
            _mm512_maskz_loadu_ps(mask, even.offset(stride))
        } else {
            _mm512_setzero_ps()
        };
        (e, o)
    };
    _mm512_permutexvar_epi16(idx, bh_bits(_mm512_cvtne2ps_pbh(o, e)))
}

/// Packs `mc × kc` of `A` into panels of `MR` rows: panel `r` holds, for each
/// pair of columns `(2p, 2p+1)`, `MR` words (row-major pairs). Missing rows
/// and columns are zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_a(dst: &mut [u32], a: *const f32, rs: isize, cs: isize, mc: usize, kc: usize) {
    let pairs = kc.div_ceil(2);
    for (r, i0) in (0..mc).step_by(MR).enumerate() {
        let rows = MR.min(mc - i0);
        let panel = &mut dst[r * pairs * MR..(r + 1) * pairs * MR];
        if rs == 1 {
            // Columns are contiguous: two columns give MR interleaved words.
            let idx = interleave_index();
            let mask: __mmask16 = (1u16 << rows) - 1;
            for p in 0..pairs {
                // SAFETY: the masked loads read only rows < mc of columns < kc.
                let words = unsafe {
                    pair_words(
                        a.offset(i0 as isize + 2 * p as isize * cs),
                        cs,
                        mask,
                        2 * p + 1 < kc,
                        idx,
                    )
                };
                // SAFETY: MR (< 16) words at p·MR inside the panel.
                unsafe {
                    _mm512_mask_storeu_epi32(
                        panel.as_mut_ptr().add(p * MR) as *mut _,
                        0x0fff,
                        words,
                    )
                };
            }
        } else if cs == 1 {
            // Rows are contiguous: 32 values of a row are 16 pairs in order.
            let mut tmp = [0u32; 16];
            for i in 0..MR {
                if i >= rows {
                    for p in 0..pairs {
                        panel[p * MR + i] = 0;
                    }
                    continue;
                }
                // SAFETY: row i0 + i of the block.
                let row = unsafe { a.offset((i0 + i) as isize * rs) };
                for p0 in (0..pairs).step_by(16) {
                    let vals = (kc - 2 * p0).min(32);
                    let lo_n = vals.min(16);
                    let hi_n = vals - lo_n;
                    let lo_m: __mmask16 = if lo_n >= 16 {
                        0xffff
                    } else {
                        (1u16 << lo_n) - 1
                    };
                    let hi_m: __mmask16 = if hi_n >= 16 {
                        0xffff
                    } else {
                        (1u16 << hi_n) - 1
                    };
                    // SAFETY: masked loads stay inside the row's kc values.
                    let (lo, hi) = unsafe {
                        (
                            _mm512_maskz_loadu_ps(lo_m, row.add(2 * p0)),
                            _mm512_maskz_loadu_ps(hi_m, row.add(2 * p0 + 16)),
                        )
                    };
                    let bh = bh_bits(_mm512_cvtne2ps_pbh(hi, lo));
                    // SAFETY: tmp holds 16 words.
                    unsafe { _mm512_storeu_si512(tmp.as_mut_ptr() as *mut _, bh) };
                    for (q, &w) in tmp.iter().enumerate().take((pairs - p0).min(16)) {
                        panel[(p0 + q) * MR + i] = w;
                    }
                }
            }
        } else {
            for p in 0..pairs {
                for i in 0..MR {
                    panel[p * MR + i] = if i < rows {
                        // SAFETY: element (i0 + i, 2p) and (i0 + i, 2p + 1) of the block.
                        let (e, o) = unsafe {
                            let x = a.offset((i0 + i) as isize * rs + 2 * p as isize * cs);
                            (*x, if 2 * p + 1 < kc { *x.offset(cs) } else { 0.0 })
                        };
                        to_bf16_bits(e) as u32 | (to_bf16_bits(o) as u32) << 16
                    } else {
                        0
                    };
                }
            }
        }
    }
}

/// The bits of 32 bf16 values as an integer vector (same size, no
/// conversion).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn bh_bits(x: __m512bh) -> __m512i {
    // SAFETY: both are 512-bit plain vector types; every bit pattern is valid.
    unsafe { std::mem::transmute(x) }
}

/// The permutation of 16-bit lanes that turns `[e0..e15, o0..o15]` into
/// `[e0, o0, e1, o1, …]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn interleave_index() -> __m512i {
    let mut idx = [0u16; 32];
    for j in 0..16 {
        idx[2 * j] = j as u16;
        idx[2 * j + 1] = 16 + j as u16;
    }
    // SAFETY: 64 bytes read from a 32 × u16 array.
    unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) }
}

/// The 12 × 32 micro-kernel: `C[mr × nr] (+)= Ap · Bp` over `pairs` pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    pairs: usize,
    ap: *const u32,
    bp: *const u32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..pairs {
        // SAFETY: the packed panels hold `pairs` rows of NR and MR words.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(p * NR) as *const _));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(bp.add(p * NR + 16) as *const _));
            let arow = ap.add(p * MR);
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*arow.add(i) as i32));
                acc_i[0] = _mm512_dpbf16_ps(acc_i[0], ai, b0);
                acc_i[1] = _mm512_dpbf16_ps(acc_i[1], ai, b1);
            }
        }
    }
    let m0: __mmask16 = if nr >= 16 { 0xffff } else { (1u16 << nr) - 1 };
    let m1: __mmask16 = if nr >= 32 {
        0xffff
    } else if nr > 16 {
        (1u16 << (nr - 16)) - 1
    } else {
        0
    };
    for (i, acc_i) in acc.iter().enumerate().take(mr) {
        // SAFETY: row i of the tile, columns < nr.
        unsafe {
            let row = c.add(i * ldc);
            let (mut v0, mut v1) = (acc_i[0], acc_i[1]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.add(16)));
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            _mm512_mask_storeu_ps(row.add(16), m1, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(i: usize) -> f32 {
        ((i as f64 * 0.618_033_988_7).fract() * 2.0 - 1.0) as f32
    }

    /// The same product in f64 from bf16-rounded inputs.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        rs: usize,
        cs: usize,
        b: &[f32],
        ldb: usize,
    ) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    s += round_to_bf16(a[i * rs + p * cs]) as f64
                        * round_to_bf16(b[p * ldb + j]) as f64;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn rounding_is_nearest_even() {
        assert_eq!(round_to_bf16(1.0), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(round_to_bf16(1.0 + 1.0 / 256.0), 1.0);
        // Just above halfway rounds up.
        assert_eq!(
            round_to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0),
            1.0 + 1.0 / 128.0
        );
        assert!(round_to_bf16(f32::NAN).is_nan());
        assert_eq!(round_to_bf16(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn matches_f64_reference_on_every_layout_and_edge() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        // Shapes with ragged tiles, odd k, several K blocks and N blocks.
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 7, 3),
            (12, 32, 2),
            (13, 33, 385),
            (37, 70, 9),
            (130, 600, 800),
        ] {
            for layout in ["row", "col", "strided"] {
                let (rs, cs, alen) = match layout {
                    "row" => (k, 1, m * k),
                    "col" => (1, m, m * k),
                    _ => (2 * k + 1, 2, m * (2 * k + 1)),
                };
                let a: Vec<f32> = (0..alen).map(pseudo).collect();
                let ldb = n + 3;
                let b: Vec<f32> = (0..k * ldb).map(|i| pseudo(i + 99)).collect();
                let want = reference(m, n, k, &a, rs, cs, &b, ldb);
                for (accumulate, threads) in [(false, 1), (true, 1), (false, 2)] {
                    let ldc = n + 5;
                    let c0: Vec<f32> = (0..m * ldc).map(|i| pseudo(i + 7)).collect();
                    let mut c = c0.clone();
                    let sa = StridedA {
                        ptr: a.as_ptr(),
                        rs: rs as isize,
                        cs: cs as isize,
                    };
                    // SAFETY: available() checked; buffers sized for the shapes.
                    unsafe {
                        gemm_bf16(
                            m,
                            n,
                            k,
                            sa,
                            b.as_ptr(),
                            ldb,
                            c.as_mut_ptr(),
                            ldc,
                            accumulate,
                            threads,
                        )
                    };
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j] as f64;
                            if j >= n {
                                assert_eq!(c[i * ldc + j], c0[i * ldc + j], "padding written");
                                continue;
                            }
                            let base = if accumulate {
                                c0[i * ldc + j] as f64
                            } else {
                                0.0
                            };
                            let w = base + want[i * n + j];
                            let tol = 1e-5 * (k as f64).sqrt() * (1.0 + w.abs());
                            assert!(
                                (got - w).abs() < tol,
                                "{layout} m{m} n{n} k{k} acc {accumulate} t{threads} ({i},{j}): {got} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}
