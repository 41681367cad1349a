//! Winograd F(2×2, 3×3) convolutions: 3×3, stride 1, undilated, ungrouped.
//!
//! A 2×2 output tile of a 3×3 correlation is `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`
//! with `d` the 4×4 input tile under it; summed over input channels, the
//! 16 positions `ξ` of the 4×4 transformed tiles become 16 independent
//! GEMMs `M_ξ (cout × tiles) = U_ξ (cout × cin) · V_ξ (cin × tiles)`, which do
//! 16·cout·cin multiply-adds per tile where the direct convolution does
//! 36 (2.25× fewer). The two gradients are the exact adjoints of the same
//! bilinear form, so they use the same transforms:
//! - input gradient: `dM = A dY Aᵀ`, `dV_ξ = U_ξᵀ · dM_ξ`, `dd = B dV Bᵀ`
//!   scatter-added over the overlapping input tiles;
//! - weight gradient: `dU_ξ = Σ_tiles dM_ξ · V_ξᵀ`, `dg = Gᵀ dU G`.
//!
//! Tiles are processed in blocks of whole tile rows per sample, so that the
//! transformed tiles of a block stay in cache between the transform, the
//! GEMMs and the inverse transform. The transforms run along a tile row with
//! the input rows split into even and odd columns, so that every step is a
//! contiguous, vectorisable loop.

use super::conv::{epilogue, matmul, sum_partials, ConvGeom, Mat, SendPtr};
use super::{num_threads, output_vec, Float};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the Winograd path on or off for the whole process (on by default);
/// off, 3×3 layers use im2col + GEMM like every other shape. For
/// benchmarks and tests that compare the two.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the Winograd path is on (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether a convolution runs on this path: 3×3, stride 1, dilation 1, one
/// group, at least 2×2 outputs and 16 channels each way (with fewer, the
/// 16 GEMMs are too thin to beat im2col).
pub fn applies(g: &ConvGeom) -> bool {
    enabled()
        && g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.dil == 1
        && g.groups == 1
        && g.ho >= 2
        && g.wo >= 2
        && g.cin >= 16
        && g.cout >= 16
}

/// Tile grid and block size of one convolution.
#[derive(Clone, Copy)]
struct Tiles {
    /// Tile rows and columns.
    th: usize,
    tw: usize,
    /// Tile rows per block.
    rows: usize,
}

impl Tiles {
    fn new(g: &ConvGeom) -> Self {
        let th = g.ho.div_ceil(2);
        let tw = g.wo.div_ceil(2);
        // ~1.5 MB of transformed tiles (input and output side) per block,
        // at least one tile row.
        let per_tile = 16 * (g.cin + g.cout) * 4;
        let target = ((3 << 19) / per_tile).max(32);
        Self {
            th,
            tw,
            rows: (target / tw).clamp(1, th),
        }
    }
    /// Tiles in a full block.
    fn block(&self) -> usize {
        self.rows * self.tw
    }
}

/// `U_ξ[co][ci] = (G g Gᵀ)_ξ` for every filter, laid out `(16, cout, cin)`.
fn transform_weights<T: Float>(w: &[T], g: &ConvGeom) -> Vec<T> {
    let (cout, cin) = (g.cout, g.cin);
    let half = T::from_f64(0.5);
    let mut u = output_vec::<T>(16 * cout * cin);
    for co in 0..cout {
        for ci in 0..cin {
            let f = &w[(co * cin + ci) * 9..][..9];
            // h = G g (4×3), then U = h Gᵀ (4×4).
            let mut h = [[T::ZERO; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (f[c], f[3 + c], f[6 + c]);
                h[0][c] = g0;
                h[1][c] = (g0 + g1 + g2) * half;
                h[2][c] = (g0 - g1 + g2) * half;
                h[3][c] = g2;
            }
            for (i, hr) in h.iter().enumerate() {
                let (g0, g1, g2) = (hr[0], hr[1], hr[2]);
                let row = [g0, (g0 + g1 + g2) * half, (g0 - g1 + g2) * half, g2];
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * cout + co) * cin + ci] = v;
                }
            }
        }
    }
    u
}

/// `dg = Gᵀ dU G` (4×4 → 3×3) for every filter, from `dUᵀ` laid out
/// `(16, cin, cout)`; returns the weight gradient `(cout, cin, 3, 3)`.
fn weight_grad_from_tiles<T: Float>(dut: &[T], g: &ConvGeom) -> Vec<T> {
    let (cout, cin) = (g.cout, g.cin);
    let half = T::from_f64(0.5);
    let mut dw = output_vec::<T>(cout * cin * 9);
    // Gᵀ applied along one axis: 4 → 3.
    let gt = |v: [T; 4]| -> [T; 3] {
        [
            v[0] + (v[1] + v[2]) * half,
            (v[1] - v[2]) * half,
            (v[1] + v[2]) * half + v[3],
        ]
    };
    for co in 0..cout {
        for ci in 0..cin {
            let du = |xi: usize| dut[(xi * cin + ci) * cout + co];
            // e = Gᵀ dU (3×4), then dg = e G (3×3).
            let mut e = [[T::ZERO; 4]; 3];
            for j in 0..4 {
                let col = gt([du(j), du(4 + j), du(8 + j), du(12 + j)]);
                for (ek, ck) in e.iter_mut().zip(col) {
                    ek[j] = ck;
                }
            }
            let out = &mut dw[(co * cin + ci) * 9..][..9];
            for (k, ek) in e.into_iter().enumerate() {
                out[k * 3..k * 3 + 3].copy_from_slice(&gt(ek));
            }
        }
    }
    dw
}

/// Tiles per vector block in the transforms.
const L: usize = 16;

/// `lanes[..src.len()] = src`, the rest zero (full blocks as fixed-size
/// copies, which compile to vector moves instead of `memcpy` calls).
#[inline(always)]
fn lanes_from<T: Float>(lanes: &mut [T; L], src: &[T]) {
    if let Ok(full) = <&[T; L]>::try_from(src) {
        *lanes = *full;
    } else {
        lanes[..src.len()].copy_from_slice(src);
        lanes[src.len()..].fill(T::ZERO);
    }
}

/// `dst[..len] = lanes[..len]` with `len = dst.len() ≤ L`.
#[inline(always)]
fn lanes_to<T: Float>(dst: &mut [T], lanes: &[T; L]) {
    if let Ok(full) = <&mut [T; L]>::try_from(&mut *dst) {
        *full = *lanes;
    } else {
        let len = dst.len();
        dst.copy_from_slice(&lanes[..len]);
    }
}

/// 16 read streams `s[ξ·stride ..][..len]`.
#[inline(always)]
fn streams<T>(s: &[T], stride: usize, len: usize) -> [&[T]; 16] {
    std::array::from_fn(|xi| &s[xi * stride..xi * stride + len])
}

/// 16 disjoint write streams `s[ξ·stride ..][..len]` (`len ≤ stride`).
#[inline(always)]
fn streams_mut<T>(s: &mut [T], stride: usize, len: usize) -> [&mut [T]; 16] {
    assert!(len <= stride && s.len() >= 15 * stride + len);
    let p = s.as_mut_ptr();
    // SAFETY: the 16 ranges are inside `s` (asserted) and disjoint
    // (`len ≤ stride`).
    std::array::from_fn(|xi| unsafe { std::slice::from_raw_parts_mut(p.add(xi * stride), len) })
}

/// Input row `iy` of plane `xc` (zero outside the image) as padded columns
/// `j = 0 .. 2·n` (image column `j − pad`), split into even (`e[k]`, column
/// `2k − pad`) and odd (`o[k]`, column `2k + 1 − pad`) halves of `n` entries.
#[inline(always)]
fn split_row<T: Float>(xc: &[T], g: &ConvGeom, iy: isize, e: &mut [T], o: &mut [T]) {
    let n = e.len();
    if iy < 0 || iy >= g.h as isize {
        e.fill(T::ZERO);
        o.fill(T::ZERO);
        return;
    }
    let row = &xc[iy as usize * g.w..(iy as usize + 1) * g.w];
    let col = |j: usize| -> T {
        if j >= g.pad && j - g.pad < g.w {
            row[j - g.pad]
        } else {
            T::ZERO
        }
    };
    // Pairs k whose both columns are inside the image: 2k ≥ pad and
    // 2k + 1 − pad < w.
    let k0 = g.pad.div_ceil(2).min(n);
    let k1 = if g.w + g.pad >= 2 {
        ((g.w + g.pad - 2) / 2 + 1).clamp(k0, n)
    } else {
        k0
    };
    for k in (0..k0).chain(k1..n) {
        e[k] = col(2 * k);
        o[k] = col(2 * k + 1);
    }
    let src = &row[2 * k0 - g.pad..2 * k1 - g.pad];
    for ((e, o), pair) in e[k0..k1]
        .iter_mut()
        .zip(o[k0..k1].iter_mut())
        .zip(src.chunks_exact(2))
    {
        *e = pair[0];
        *o = pair[1];
    }
}

multiversion_generic! {
    /// `V = Bᵀ d B` for the `tw` tiles of tile row `ty` of one input plane,
    /// written to `v[ξ·vs + t]` for `t < tw`.
    fn input_transform_row<T: Float>(
        xc: &[T],
        g: &ConvGeom,
        ty: usize,
        tw: usize,
        bufs: &mut [T],
        v: &mut [T],
        vs: usize,
    ) {
        let n = tw + 1;
        let rows = &mut bufs[..8 * n];
        for r in 0..4 {
            let iy = (2 * ty + r) as isize - g.pad as isize;
            let (e, o) = rows[2 * r * n..(2 * r + 2) * n].split_at_mut(n);
            split_row(xc, g, iy, e, o);
        }
        let rows = &bufs[..8 * n];
        let er: [&[T]; 4] = std::array::from_fn(|r| &rows[2 * r * n..(2 * r + 1) * n]);
        let or: [&[T]; 4] = std::array::from_fn(|r| &rows[(2 * r + 1) * n..(2 * r + 2) * n]);
        let mut out = streams_mut(v, vs, tw);
        // Blocks of L tiles computed in local arrays (which the compiler
        // keeps in vector registers), then stored stream by stream.
        for t0 in (0..tw).step_by(L) {
            let len = L.min(tw - t0);
            let mut d = [[[T::ZERO; L]; 4]; 4];
            for r in 0..4 {
                lanes_from(&mut d[r][0], &er[r][t0..t0 + len]);
                lanes_from(&mut d[r][1], &or[r][t0..t0 + len]);
                lanes_from(&mut d[r][2], &er[r][t0 + 1..t0 + 1 + len]);
                lanes_from(&mut d[r][3], &or[r][t0 + 1..t0 + 1 + len]);
            }
            let mut vb = [[T::ZERO; L]; 16];
            for l in 0..L {
                // t_r = d_r B: columns (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
                let tr: [[T; 4]; 4] = std::array::from_fn(|r| {
                    let (d0, d1, d2, d3) = (d[r][0][l], d[r][1][l], d[r][2][l], d[r][3][l]);
                    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
                });
                for c in 0..4 {
                    let (a, b, cc, dd) = (tr[0][c], tr[1][c], tr[2][c], tr[3][c]);
                    vb[c][l] = a - cc;
                    vb[4 + c][l] = b + cc;
                    vb[8 + c][l] = cc - b;
                    vb[12 + c][l] = b - dd;
                }
            }
            for (o, lanes) in out.iter_mut().zip(&vb) {
                lanes_to(&mut o[t0..t0 + len], lanes);
            }
        }
    }
}

multiversion_generic! {
    /// `Y = Aᵀ M A` for the `tw` tiles of tile row `ty` of one output plane,
    /// from `m[ξ·ms + t]`, written into `yc (ho, wo)` (tiles past the edge
    /// clipped).
    fn output_transform_row<T: Float>(
        m: &[T],
        ms: usize,
        g: &ConvGeom,
        ty: usize,
        tw: usize,
        bufs: &mut [T],
        yc: &mut [T],
    ) {
        let ins = streams(m, ms, tw);
        let (top, bottom) = bufs[..4 * tw].split_at_mut(2 * tw);
        for t0 in (0..tw).step_by(L) {
            let len = L.min(tw - t0);
            let mut mb = [[T::ZERO; L]; 16];
            for (lanes, src) in mb.iter_mut().zip(&ins) {
                lanes_from(lanes, &src[t0..t0 + len]);
            }
            // Output pixels (a, b) of each tile, interleaved per row.
            let mut yb = [[T::ZERO; 2 * L]; 2];
            for l in 0..L {
                // s = Aᵀ M (2×4): rows (M0 + M1 + M2, M1 − M2 − M3).
                let mut sm = [[T::ZERO; 4]; 2];
                for j in 0..4 {
                    let (a, b, c, d) = (mb[j][l], mb[4 + j][l], mb[8 + j][l], mb[12 + j][l]);
                    sm[0][j] = a + b + c;
                    sm[1][j] = b - c - d;
                }
                for a in 0..2 {
                    yb[a][2 * l] = sm[a][0] + sm[a][1] + sm[a][2];
                    yb[a][2 * l + 1] = sm[a][1] - sm[a][2] - sm[a][3];
                }
            }
            if len == L {
                let (a, b) = (&mut top[2 * t0..2 * t0 + 2 * L], &mut bottom[2 * t0..2 * t0 + 2 * L]);
                <&mut [T; 2 * L]>::try_from(a).unwrap().copy_from_slice(&yb[0]);
                <&mut [T; 2 * L]>::try_from(b).unwrap().copy_from_slice(&yb[1]);
            } else {
                top[2 * t0..2 * (t0 + len)].copy_from_slice(&yb[0][..2 * len]);
                bottom[2 * t0..2 * (t0 + len)].copy_from_slice(&yb[1][..2 * len]);
            }
        }
        for (a, src) in [(0, &*top), (1, &*bottom)] {
            let oy = 2 * ty + a;
            if oy < g.ho {
                yc[oy * g.wo..(oy + 1) * g.wo].copy_from_slice(&src[..g.wo]);
            }
        }
    }
}

multiversion_generic! {
    /// `dM = A dY Aᵀ` for the `tw` tiles of tile row `ty` of one
    /// output-gradient plane `dyc (ho, wo)` (zero past the edge), written to
    /// `dm[ξ·ms + t]`.
    fn output_adjoint_row<T: Float>(
        dyc: &[T],
        g: &ConvGeom,
        ty: usize,
        tw: usize,
        bufs: &mut [T],
        dm: &mut [T],
        ms: usize,
    ) {
        // Rows 2ty and 2ty + 1 as even / odd columns (zero past the edge).
        let b = &mut bufs[..4 * tw];
        for a in 0..2 {
            let oy = 2 * ty + a;
            let (e, o) = b[2 * a * tw..(2 * a + 2) * tw].split_at_mut(tw);
            if oy >= g.ho {
                e.fill(T::ZERO);
                o.fill(T::ZERO);
                continue;
            }
            let row = &dyc[oy * g.wo..(oy + 1) * g.wo];
            let full = g.wo / 2;
            for ((e, o), pair) in e.iter_mut().zip(o.iter_mut()).zip(row.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
            if full < tw {
                e[full] = row[2 * full];
                o[full] = T::ZERO;
            }
        }
        let b = &bufs[..4 * tw];
        let (e0, o0, e1, o1) = (&b[..tw], &b[tw..2 * tw], &b[2 * tw..3 * tw], &b[3 * tw..4 * tw]);
        let mut out = streams_mut(dm, ms, tw);
        for t0 in (0..tw).step_by(L) {
            let len = L.min(tw - t0);
            let mut yb = [[T::ZERO; L]; 4];
            for (lanes, src) in yb.iter_mut().zip([e0, o0, e1, o1]) {
                lanes_from(lanes, &src[t0..t0 + len]);
            }
            let mut db = [[T::ZERO; L]; 16];
            for l in 0..L {
                let (y00, y01, y10, y11) = (yb[0][l], yb[1][l], yb[2][l], yb[3][l]);
                // q = A dY (4×2): rows (y0, y0 + y1, y0 − y1, −y1) per column.
                let q = [
                    [y00, y01],
                    [y00 + y10, y01 + y11],
                    [y00 - y10, y01 - y11],
                    [T::ZERO - y10, T::ZERO - y11],
                ];
                for (i, qi) in q.iter().enumerate() {
                    let (a, b) = (qi[0], qi[1]);
                    db[4 * i][l] = a;
                    db[4 * i + 1][l] = a + b;
                    db[4 * i + 2][l] = a - b;
                    db[4 * i + 3][l] = T::ZERO - b;
                }
            }
            for (o, lanes) in out.iter_mut().zip(&db) {
                lanes_to(&mut o[t0..t0 + len], lanes);
            }
        }
    }
}

multiversion_generic! {
    /// `dd = B dV Bᵀ` for the `tw` tiles of tile row `ty`, from
    /// `dv[ξ·vs + t]`, scatter-added into the input-gradient plane
    /// `dxc (h, w)`.
    fn input_adjoint_row<T: Float>(
        dv: &[T],
        vs: usize,
        g: &ConvGeom,
        ty: usize,
        tw: usize,
        bufs: &mut [T],
        dxc: &mut [T],
    ) {
        let n = tw + 1;
        let ins = streams(dv, vs, tw);
        // Per input row r: even / odd column sums (n each), and the two
        // terms each tile adds one column pair further right (tw each).
        let (acc, rest) = bufs.split_at_mut(8 * n);
        let (carry, line) = rest.split_at_mut(8 * tw);
        {
            let mut ea: [&mut [T]; 4] = [&mut [], &mut [], &mut [], &mut []];
            let mut oa: [&mut [T]; 4] = [&mut [], &mut [], &mut [], &mut []];
            for (r, chunk) in acc.chunks_exact_mut(2 * n).enumerate() {
                let (e, o) = chunk.split_at_mut(n);
                ea[r] = &mut e[..tw];
                oa[r] = &mut o[..tw];
            }
            let mut ca: [&mut [T]; 8] = Default::default();
            for (k, chunk) in carry.chunks_exact_mut(tw).enumerate() {
                ca[k] = chunk;
            }
            for t0 in (0..tw).step_by(L) {
                let len = L.min(tw - t0);
                let mut vb = [[T::ZERO; L]; 16];
                for (lanes, src) in vb.iter_mut().zip(&ins) {
                    lanes_from(lanes, &src[t0..t0 + len]);
                }
                // Per row r: (e[t], o[t], e[t+1], o[t+1]) terms.
                let mut ob = [[[T::ZERO; L]; 4]; 4];
                for l in 0..L {
                    // w = B dV (rows r): (dV0, dV1 − dV2 + dV3, −dV0 + dV1 + dV2, −dV3).
                    let mut w = [[T::ZERO; 4]; 4];
                    for j in 0..4 {
                        let (d0, d1, d2, d3) = (vb[j][l], vb[4 + j][l], vb[8 + j][l], vb[12 + j][l]);
                        w[0][j] = d0;
                        w[1][j] = d1 - d2 + d3;
                        w[2][j] = d1 + d2 - d0;
                        w[3][j] = T::ZERO - d3;
                    }
                    for r in 0..4 {
                        let (w0, w1, w2, w3) = (w[r][0], w[r][1], w[r][2], w[r][3]);
                        // dd_r = w_r Bᵀ; tile t covers padded columns 2t .. 2t + 3.
                        ob[r][0][l] = w0;
                        ob[r][1][l] = w1 - w2 + w3;
                        ob[r][2][l] = w1 + w2 - w0;
                        ob[r][3][l] = T::ZERO - w3;
                    }
                }
                for r in 0..4 {
                    lanes_to(&mut ea[r][t0..t0 + len], &ob[r][0]);
                    lanes_to(&mut oa[r][t0..t0 + len], &ob[r][1]);
                    lanes_to(&mut ca[2 * r][t0..t0 + len], &ob[r][2]);
                    lanes_to(&mut ca[2 * r + 1][t0..t0 + len], &ob[r][3]);
                }
            }
        }
        for r in 0..4 {
            let (e, o) = acc[2 * r * n..(2 * r + 2) * n].split_at_mut(n);
            e[tw] = T::ZERO;
            o[tw] = T::ZERO;
            let (ce, co) = (&carry[2 * r * tw..(2 * r + 1) * tw], &carry[(2 * r + 1) * tw..(2 * r + 2) * tw]);
            for ((e, o), (&a, &b)) in e[1..].iter_mut().zip(o[1..].iter_mut()).zip(ce.iter().zip(co)) {
                *e += a;
                *o += b;
            }
        }
        let line = &mut line[..2 * n];
        for r in 0..4 {
            let iy = (2 * ty + r) as isize - g.pad as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            let (e, o) = acc[2 * r * n..(2 * r + 2) * n].split_at(n);
            for (pair, (&ev, &ov)) in line.chunks_exact_mut(2).zip(e.iter().zip(o)) {
                pair[0] = ev;
                pair[1] = ov;
            }
            // Padded column j is image column j − pad.
            let row = &mut dxc[iy as usize * g.w..(iy as usize + 1) * g.w];
            let hi = (2 * n).min(g.pad + g.w);
            if hi > g.pad {
                for (d, &s) in row[..hi - g.pad].iter_mut().zip(&line[g.pad..hi]) {
                    *d += s;
                }
            }
        }
    }
}

/// Scratch elements per thread: transformed input and output tiles of a
/// block, the transposed output-side tiles of the weight gradient, row
/// buffers.
fn scratch_len(g: &ConvGeom, tl: &Tiles) -> usize {
    let b = tl.block();
    16 * g.cin * b + 2 * 16 * g.cout * b + 20 * (tl.tw + 1) + 16 * g.cin * g.cout
}

/// Per-sample channel scales of a modulated convolution: `s (n, cin)`
/// multiplies the input channels, `d (n, cout)` the output channels.
#[derive(Clone, Copy)]
pub struct Scales<'a, T> {
    /// Input-channel scales, `(n, cin)` row-major.
    pub s: &'a [T],
    /// Output-channel scales, `(n, cout)` row-major.
    pub d: &'a [T],
}

/// The transformed weights sample `n` uses: `U` itself, or
/// `U_ξ[co][ci]·d[n, co]·s[n, ci]` written into `buf`.
fn sample_weights<'a, T: Float>(
    u: &'a [T],
    scales: Option<Scales<'_, T>>,
    n: usize,
    g: &ConvGeom,
    buf: &'a mut [T],
) -> &'a [T] {
    let Some(sc) = scales else { return u };
    let (s, d) = (
        &sc.s[n * g.cin..(n + 1) * g.cin],
        &sc.d[n * g.cout..(n + 1) * g.cout],
    );
    let buf = &mut buf[..u.len()];
    for (brow, (urow, &dco)) in buf
        .chunks_exact_mut(g.cin)
        .zip(u.chunks_exact(g.cin).zip(d.iter().cycle()))
    {
        for ((b, &uv), &sci) in brow.iter_mut().zip(urow).zip(s) {
            *b = uv * dco * sci;
        }
    }
    buf
}

/// Calls `f` with samples in parallel (one single-threaded GEMM stream per
/// sample) or, with fewer samples than threads, one after another with
/// parallel GEMMs.
fn for_samples(n: usize, f: impl Fn(usize, Parallelism) + Sync + Send) {
    let nt = num_threads();
    if nt > 1 && n >= nt {
        (0..n)
            .into_par_iter()
            .with_max_len(1)
            .for_each(|i| f(i, Parallelism::None));
    } else {
        let par = if nt > 1 {
            Parallelism::Rayon(nt)
        } else {
            Parallelism::None
        };
        (0..n).for_each(|i| f(i, par));
    }
}

/// Splits the scratch of one block: V (16·cin·nb), M (16·cout·nb),
/// Mᵀ (16·cout·nb), row buffers (the per-sample weights come first, split
/// off by the caller).
fn split_scratch<'a, T>(
    s: &'a mut [T],
    g: &ConvGeom,
    nb: usize,
) -> (&'a mut [T], &'a mut [T], &'a mut [T], &'a mut [T]) {
    let (v, rest) = s.split_at_mut(16 * g.cin * nb);
    let (m, rest) = rest.split_at_mut(16 * g.cout * nb);
    let (mt, bufs) = rest.split_at_mut(16 * g.cout * nb);
    (v, m, mt, bufs)
}

/// Forward: `act(conv(x, w) + bias)`, shape `(n, cout, ho, wo)`.
pub fn conv2d_fwd<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    conv2d_fwd_scaled(x, w, None, bias, slope, g)
}

/// [`conv2d_fwd`] of a modulated convolution: `y = d ⊙ conv(s ⊙ x, w)`
/// (then bias and activation), with the scales folded into each sample's
/// transformed weights, so that no pass over the activations is added.
pub fn conv2d_fwd_scaled<T: Float>(
    x: &[T],
    w: &[T],
    scales: Option<Scales<'_, T>>,
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    let tl = Tiles::new(g);
    let u = transform_weights(w, g);
    let mut y = output_vec::<T>(g.y_len());
    let yp = SendPtr::new(y.as_mut_ptr());
    let (x_len, y_len) = (g.cin * g.hw(), g.cout * g.p());
    for_samples(g.n, |n, par| {
        let x_n = &x[n * x_len..(n + 1) * x_len];
        // SAFETY: sample n writes only its own slice of y.
        let y_n = unsafe { std::slice::from_raw_parts_mut(yp.get().add(n * y_len), y_len) };
        T::with_scratch(scratch_len(g, &tl), |s| {
            let (ubuf, s) = s.split_at_mut(16 * g.cin * g.cout);
            let u = sample_weights(&u, scales, n, g, ubuf);
            for ty0 in (0..tl.th).step_by(tl.rows) {
                let ty1 = (ty0 + tl.rows).min(tl.th);
                let nb = (ty1 - ty0) * tl.tw;
                let (v, m, _, bufs) = split_scratch(s, g, nb);
                for ci in 0..g.cin {
                    let xc = &x_n[ci * g.hw()..(ci + 1) * g.hw()];
                    for ty in ty0..ty1 {
                        let off = ci * nb + (ty - ty0) * tl.tw;
                        input_transform_row(xc, g, ty, tl.tw, bufs, &mut v[off..], g.cin * nb);
                    }
                }
                for xi in 0..16 {
                    // SAFETY: U_ξ (cout × cin), V_ξ (cin × nb), M_ξ (cout × nb),
                    // all row-major inside their buffers.
                    unsafe {
                        matmul(
                            g.cout,
                            nb,
                            g.cin,
                            m.as_mut_ptr().add(xi * g.cout * nb),
                            nb,
                            false,
                            Mat {
                                ptr: u.as_ptr().add(xi * g.cout * g.cin),
                                rs: g.cin as isize,
                                cs: 1,
                            },
                            Mat {
                                ptr: v.as_ptr().add(xi * g.cin * nb),
                                rs: nb as isize,
                                cs: 1,
                            },
                            par,
                        )
                    };
                }
                for co in 0..g.cout {
                    let yc = &mut y_n[co * g.p()..(co + 1) * g.p()];
                    for ty in ty0..ty1 {
                        let off = co * nb + (ty - ty0) * tl.tw;
                        output_transform_row(&m[off..], g.cout * nb, g, ty, tl.tw, bufs, yc);
                    }
                }
            }
        });
        epilogue(y_n, g.cout, g.p(), bias, slope);
    });
    y
}

/// Input gradient (the transposed convolution): `act(dx + bias)` with
/// `dx (n, cin, h, w)` from `dy (n, cout, ho, wo)`.
pub fn conv2d_bwd_input<T: Float>(
    dy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    conv2d_bwd_input_scaled(dy, w, None, bias, slope, g)
}

/// [`conv2d_bwd_input`] of a modulated convolution:
/// `dx = s ⊙ conv_bwd_input(d ⊙ dy, w)`, scales folded into the weights.
pub fn conv2d_bwd_input_scaled<T: Float>(
    dy: &[T],
    w: &[T],
    scales: Option<Scales<'_, T>>,
    bias: Option<&[T]>,
    slope: Option<T>,
    g: &ConvGeom,
) -> Vec<T> {
    let tl = Tiles::new(g);
    let u = transform_weights(w, g);
    let mut dx = vec![T::ZERO; g.x_len()];
    let dxp = SendPtr::new(dx.as_mut_ptr());
    let (x_len, y_len) = (g.cin * g.hw(), g.cout * g.p());
    for_samples(g.n, |n, par| {
        let dy_n = &dy[n * y_len..(n + 1) * y_len];
        // SAFETY: sample n writes only its own slice of dx.
        let dx_n = unsafe { std::slice::from_raw_parts_mut(dxp.get().add(n * x_len), x_len) };
        T::with_scratch(scratch_len(g, &tl), |s| {
            let (ubuf, s) = s.split_at_mut(16 * g.cin * g.cout);
            let u = sample_weights(&u, scales, n, g, ubuf);
            for ty0 in (0..tl.th).step_by(tl.rows) {
                let ty1 = (ty0 + tl.rows).min(tl.th);
                let nb = (ty1 - ty0) * tl.tw;
                let (dv, dm, _, bufs) = split_scratch(s, g, nb);
                for co in 0..g.cout {
                    let dyc = &dy_n[co * g.p()..(co + 1) * g.p()];
                    for ty in ty0..ty1 {
                        let off = co * nb + (ty - ty0) * tl.tw;
                        output_adjoint_row(dyc, g, ty, tl.tw, bufs, &mut dm[off..], g.cout * nb);
                    }
                }
                for xi in 0..16 {
                    // SAFETY: U_ξᵀ (cin × cout) read with strides (1, cin) from
                    // U_ξ (cout × cin); dM_ξ (cout × nb); dV_ξ (cin × nb).
                    unsafe {
                        matmul(
                            g.cin,
                            nb,
                            g.cout,
                            dv.as_mut_ptr().add(xi * g.cin * nb),
                            nb,
                            false,
                            Mat {
                                ptr: u.as_ptr().add(xi * g.cout * g.cin),
                                rs: 1,
                                cs: g.cin as isize,
                            },
                            Mat {
                                ptr: dm.as_ptr().add(xi * g.cout * nb),
                                rs: nb as isize,
                                cs: 1,
                            },
                            par,
                        )
                    };
                }
                for ci in 0..g.cin {
                    let dxc = &mut dx_n[ci * g.hw()..(ci + 1) * g.hw()];
                    for ty in ty0..ty1 {
                        let off = ci * nb + (ty - ty0) * tl.tw;
                        input_adjoint_row(&dv[off..], g.cin * nb, g, ty, tl.tw, bufs, dxc);
                    }
                }
            }
        });
        epilogue(dx_n, g.cin, g.hw(), bias, slope);
    });
    dx
}

/// Weight gradient `dw (cout, cin, 3, 3) = Σₙ corr(xₙ, dyₙ)`.
pub fn conv2d_bwd_weight<T: Float>(x: &[T], dy: &[T], g: &ConvGeom) -> Vec<T> {
    conv2d_bwd_weight_scaled(x, dy, w_none(), None, g).0
}

fn w_none<'a, T>() -> &'a [T] {
    &[]
}

/// Gradients of the scales of a modulated convolution: `(ds (n, cin), dd (n, cout))`.
pub type ScaleGrads<T> = (Vec<T>, Vec<T>);

/// Gradients of a modulated convolution `y = d ⊙ conv(s ⊙ x, w)` with
/// respect to `w`, `s` and `d`, given `dy`: returns `dw (cout, cin, 3, 3)`
/// and, with scales, `(ds (n, cin), dd (n, cout))`. `w` is only read when
/// scales are given.
///
/// Per sample, `dU = dM·Vᵀ` (the gradient of that sample's transformed
/// weights `U_ξ[co][ci]·d[co]·s[ci]`) is computed once; `dw` gets
/// `d[co]·s[ci]·dU`, `ds[ci] = Σ dU·U·d[co]` and `dd[co] = Σ dU·U·s[ci]`.
pub fn conv2d_bwd_weight_scaled<T: Float>(
    x: &[T],
    dy: &[T],
    w: &[T],
    scales: Option<Scales<'_, T>>,
    g: &ConvGeom,
) -> (Vec<T>, Option<ScaleGrads<T>>) {
    let tl = Tiles::new(g);
    let (x_len, y_len) = (g.cin * g.hw(), g.cout * g.p());
    let nt = num_threads();
    let chunks = g.n.clamp(1, nt);
    let per = g.n.div_ceil(chunks);
    let par = if g.n < nt && nt > 1 {
        Parallelism::Rayon(nt)
    } else {
        Parallelism::None
    };
    let u = scales.map(|_| transform_weights(w, g));
    let mut ds = vec![T::ZERO; if scales.is_some() { g.n * g.cin } else { 0 }];
    let mut dd = vec![T::ZERO; if scales.is_some() { g.n * g.cout } else { 0 }];
    let (dsp, ddp) = (SendPtr::new(ds.as_mut_ptr()), SendPtr::new(dd.as_mut_ptr()));
    let uu = 16 * g.cin * g.cout;
    // Partial dUᵀ (16, cin, cout) over the samples of chunk c.
    let partial = |c: usize| -> Vec<T> {
        let mut dut = vec![T::ZERO; uu];
        let mut dun = if scales.is_some() {
            vec![T::ZERO; uu]
        } else {
            vec![]
        };
        T::with_scratch(scratch_len(g, &tl), |s| {
            let s = &mut s[uu..];
            for n in c * per..((c + 1) * per).min(g.n) {
                let x_n = &x[n * x_len..(n + 1) * x_len];
                let dy_n = &dy[n * y_len..(n + 1) * y_len];
                // Unscaled: accumulate into dUᵀ directly; scaled: into this
                // sample's dUᵀ first.
                let target = if scales.is_some() { &mut dun } else { &mut dut };
                let mut first = scales.is_some();
                for ty0 in (0..tl.th).step_by(tl.rows) {
                    let ty1 = (ty0 + tl.rows).min(tl.th);
                    let nb = (ty1 - ty0) * tl.tw;
                    let (v, dm, dmt, bufs) = split_scratch(s, g, nb);
                    for ci in 0..g.cin {
                        let xc = &x_n[ci * g.hw()..(ci + 1) * g.hw()];
                        for ty in ty0..ty1 {
                            let off = ci * nb + (ty - ty0) * tl.tw;
                            input_transform_row(xc, g, ty, tl.tw, bufs, &mut v[off..], g.cin * nb);
                        }
                    }
                    for co in 0..g.cout {
                        let dyc = &dy_n[co * g.p()..(co + 1) * g.p()];
                        for ty in ty0..ty1 {
                            let off = co * nb + (ty - ty0) * tl.tw;
                            output_adjoint_row(
                                dyc,
                                g,
                                ty,
                                tl.tw,
                                bufs,
                                &mut dm[off..],
                                g.cout * nb,
                            );
                        }
                    }
                    for xi in 0..16 {
                        let sz = g.cout * nb;
                        T::transpose(
                            &dm[xi * sz..(xi + 1) * sz],
                            g.cout,
                            nb,
                            &mut dmt[xi * sz..(xi + 1) * sz],
                        );
                        // SAFETY: V_ξ (cin × nb), dM_ξᵀ (nb × cout), dUᵀ_ξ
                        // (cin × cout), all row-major.
                        unsafe {
                            matmul(
                                g.cin,
                                g.cout,
                                nb,
                                target.as_mut_ptr().add(xi * g.cin * g.cout),
                                g.cout,
                                !first,
                                Mat {
                                    ptr: v.as_ptr().add(xi * g.cin * nb),
                                    rs: nb as isize,
                                    cs: 1,
                                },
                                Mat {
                                    ptr: dmt.as_ptr().add(xi * sz),
                                    rs: g.cout as isize,
                                    cs: 1,
                                },
                                par,
                            )
                        };
                    }
                    first = false;
                }
                if let (Some(sc), Some(u)) = (scales, u.as_deref()) {
                    let s_n = &sc.s[n * g.cin..(n + 1) * g.cin];
                    let d_n = &sc.d[n * g.cout..(n + 1) * g.cout];
                    // SAFETY: sample n writes only its own rows of ds and dd.
                    let ds_n =
                        unsafe { std::slice::from_raw_parts_mut(dsp.get().add(n * g.cin), g.cin) };
                    let dd_n = unsafe {
                        std::slice::from_raw_parts_mut(ddp.get().add(n * g.cout), g.cout)
                    };
                    for xi in 0..16 {
                        let dn = &dun[xi * g.cin * g.cout..(xi + 1) * g.cin * g.cout];
                        let dt = &mut dut[xi * g.cin * g.cout..(xi + 1) * g.cin * g.cout];
                        let ux = &u[xi * g.cout * g.cin..(xi + 1) * g.cout * g.cin];
                        for ci in 0..g.cin {
                            let sci = s_n[ci];
                            let mut acc_s = T::ZERO;
                            let row = &dn[ci * g.cout..(ci + 1) * g.cout];
                            let trow = &mut dt[ci * g.cout..(ci + 1) * g.cout];
                            for co in 0..g.cout {
                                let gu = row[co];
                                let uv = ux[co * g.cin + ci];
                                trow[co] += gu * d_n[co] * sci;
                                acc_s += gu * uv * d_n[co];
                                dd_n[co] += gu * uv * sci;
                            }
                            ds_n[ci] += acc_s;
                        }
                    }
                }
            }
        });
        dut
    };
    let dut = sum_partials(chunks, chunks > 1 && g.n >= nt, partial);
    let dw = weight_grad_from_tiles(&dut, g);
    (dw, scales.map(|_| (ds, dd)))
}

#[cfg(test)]
mod tests {
    use super::super::conv;
    use super::*;

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        d / b.iter().map(|y| y.abs()).fold(1e-30, f64::max)
    }

    /// Forward, input gradient and weight gradient equal the im2col path in
    /// f64 on odd sizes, several paddings and batch sizes.
    #[test]
    fn matches_im2col_path() {
        for (n, cin, cout, h, w, pad) in [
            (1, 16, 16, 5, 7, 1),
            (3, 16, 24, 9, 8, 1),
            (2, 20, 16, 6, 6, 0),
            (2, 16, 17, 7, 10, 2),
            (5, 32, 16, 3, 4, 1),
        ] {
            let g = ConvGeom::new(n, cin, h, w, cout, 3, 3, 1, pad, 1, 1).unwrap();
            assert!(applies(&g));
            let val = |i: usize| ((i * 7919 + 17) % 101) as f64 / 101.0 - 0.5;
            let x: Vec<f64> = (0..g.x_len()).map(val).collect();
            let wt: Vec<f64> = (0..g.w_len()).map(|i| val(i + 13)).collect();
            let dy: Vec<f64> = (0..g.y_len()).map(|i| val(i + 29)).collect();
            let b: Vec<f64> = (0..cout.max(cin)).map(|i| val(i + 3)).collect();
            let e = max_rel(
                &conv2d_fwd(&x, &wt, Some(&b[..cout]), Some(0.2), &g),
                &conv::im2col_conv2d_fwd(&x, &wt, Some(&b[..cout]), Some(0.2), &g),
            );
            assert!(e < 1e-12, "forward {g:?}: {e}");
            let e = max_rel(
                &conv2d_bwd_input(&dy, &wt, Some(&b[..cin]), None, &g),
                &conv::im2col_conv2d_bwd_input(&dy, &wt, Some(&b[..cin]), None, &g),
            );
            assert!(e < 1e-12, "input gradient {g:?}: {e}");
            let e = max_rel(
                &conv2d_bwd_weight(&x, &dy, &g),
                &conv::im2col_conv2d_bwd_weight(&x, &dy, &g),
            );
            assert!(e < 1e-12, "weight gradient {g:?}: {e}");
        }
    }

    /// In f32 the transforms stay within the project's 1e-5 tolerance.
    #[test]
    fn f32_error_is_small() {
        let g = ConvGeom::new(2, 64, 17, 16, 32, 3, 3, 1, 1, 1, 1).unwrap();
        let val = |i: usize| ((i * 7919 + 5) % 97) as f64 / 97.0 - 0.5;
        let x: Vec<f64> = (0..g.x_len()).map(val).collect();
        let wt: Vec<f64> = (0..g.w_len()).map(|i| val(i + 11)).collect();
        let dy: Vec<f64> = (0..g.y_len()).map(|i| val(i + 7)).collect();
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let up = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        let (xf, wf, dyf) = (f(&x), f(&wt), f(&dy));
        let e = max_rel(
            &up(conv2d_fwd(&xf, &wf, None, None, &g)),
            &conv::im2col_conv2d_fwd(&x, &wt, None, None, &g),
        );
        assert!(e < 1e-5, "forward: {e}");
        let e = max_rel(
            &up(conv2d_bwd_input(&dyf, &wf, None, None, &g)),
            &conv::im2col_conv2d_bwd_input(&dy, &wt, None, None, &g),
        );
        assert!(e < 1e-5, "input gradient: {e}");
        let e = max_rel(
            &up(conv2d_bwd_weight(&xf, &dyf, &g)),
            &conv::im2col_conv2d_bwd_weight(&x, &dy, &g),
        );
        assert!(e < 1e-5, "weight gradient: {e}");
    }

    /// The modulated (scaled) forward, input gradient, weight gradient and
    /// scale gradients equal the unscaled kernels applied to explicitly
    /// scaled tensors, in f64.
    #[test]
    fn scaled_matches_explicit_scaling() {
        let g = ConvGeom::new(3, 16, 7, 6, 24, 3, 3, 1, 1, 1, 1).unwrap();
        let val = |i: usize| ((i * 7919 + 3) % 89) as f64 / 89.0 - 0.5;
        let x: Vec<f64> = (0..g.x_len()).map(val).collect();
        let wt: Vec<f64> = (0..g.w_len()).map(|i| val(i + 5)).collect();
        let dy: Vec<f64> = (0..g.y_len()).map(|i| val(i + 9)).collect();
        let s: Vec<f64> = (0..g.n * g.cin).map(|i| 0.5 + val(i + 1)).collect();
        let d: Vec<f64> = (0..g.n * g.cout).map(|i| 0.7 + val(i + 2)).collect();
        let sc = Some(Scales { s: &s, d: &d });
        let scale = |v: &[f64], f: &[f64], c: usize, plane: usize| -> Vec<f64> {
            v.iter()
                .enumerate()
                .map(|(i, &a)| a * f[(i / (c * plane)) * c + (i / plane) % c])
                .collect()
        };
        let xs = scale(&x, &s, g.cin, g.hw());
        let dyd = scale(&dy, &d, g.cout, g.p());
        let y = conv2d_fwd_scaled(&x, &wt, sc, None, None, &g);
        let yr = conv2d_fwd(&xs, &wt, None, None, &g);
        assert!(max_rel(&y, &scale(&yr, &d, g.cout, g.p())) < 1e-12);
        let dx = conv2d_bwd_input_scaled(&dy, &wt, sc, None, None, &g);
        let dxr = conv2d_bwd_input(&dyd, &wt, None, None, &g);
        assert!(max_rel(&dx, &scale(&dxr, &s, g.cin, g.hw())) < 1e-12);
        let (dw, sd) = conv2d_bwd_weight_scaled(&x, &dy, &wt, sc, &g);
        assert!(max_rel(&dw, &conv2d_bwd_weight(&xs, &dyd, &g)) < 1e-12);
        let (ds, dd) = sd.unwrap();
        let dot = |a: &[f64], b: &[f64], c: usize, plane: usize| -> Vec<f64> {
            (0..a.len() / plane)
                .map(|k| {
                    (0..plane)
                        .map(|i| a[k * plane + i] * b[k * plane + i])
                        .sum()
                })
                .take(g.n * c)
                .collect()
        };
        assert!(max_rel(&ds, &dot(&x, &dxr, g.cin, g.hw())) < 1e-12);
        assert!(max_rel(&dd, &dot(&dy, &yr, g.cout, g.p())) < 1e-12);
    }
}
