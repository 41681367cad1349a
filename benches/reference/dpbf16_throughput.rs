//! Peak rate of AVX-512 BF16's `vdpbf16ps` against f32 FMA on one core:
//! 16 independent accumulators each, so that only throughput limits.
//!
//!     rustc -O -C target-cpu=native benches/reference/dpbf16_throughput.rs -o /tmp/dpbf16 && /tmp/dpbf16
//!
//! On the project's machine (Zen 5, 2 vCPUs) it prints about 0.60 ns per
//! `vdpbf16ps` (107 GFLOP/s) against 0.15 ns per FMA (215 GFLOP/s): see
//! BENCHMARKS.md, "bf16".
use std::arch::x86_64::*;
use std::time::Instant;
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dp(n: usize) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 16];
    let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3f803f80));
    let b: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3c003c00));
    for _ in 0..n {
        for x in acc.iter_mut() { *x = _mm512_dpbf16_ps(*x, a, b); }
    }
    let mut s = _mm512_setzero_ps();
    for x in acc { s = _mm512_add_ps(s, x); }
    _mm512_reduce_add_ps(s)
}
#[target_feature(enable = "avx512f,fma")]
unsafe fn fma(n: usize) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 16];
    let a = _mm512_set1_ps(1.0001);
    let b = _mm512_set1_ps(0.0001);
    for _ in 0..n {
        for x in acc.iter_mut() { *x = _mm512_fmadd_ps(*x, a, b); }
    }
    let mut s = _mm512_setzero_ps();
    for x in acc { s = _mm512_add_ps(s, x); }
    _mm512_reduce_add_ps(s)
}
fn main() {
    assert!(is_x86_feature_detected!("avx512bf16"), "this CPU has no AVX-512 BF16");
    let n = 20_000_000;
    for _ in 0..2 {
    let t = Instant::now(); let r = unsafe { dp(n) }; let d = t.elapsed().as_secs_f64();
    println!("dpbf16: {:.3} ns/instr, {:.1} GFLOP/s ({r})", d*1e9/(n as f64*16.0), n as f64*16.0*64.0/d/1e9);
    let t = Instant::now(); let r = unsafe { fma(n) }; let d = t.elapsed().as_secs_f64();
    println!("fma:    {:.3} ns/instr, {:.1} GFLOP/s ({r})", d*1e9/(n as f64*16.0), n as f64*16.0*32.0/d/1e9);
    }
}
