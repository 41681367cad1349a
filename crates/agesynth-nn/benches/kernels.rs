//! Side-by-side benchmarks of candle 0.11's CPU ops and agesynth-nn's
//! kernels on the shapes of issue 3: batch 8, fp32, forward + backward.
//!
//! Run with `cargo bench -p agesynth-nn --bench kernels [-- FILTER]`.
//! Both columns run in the same process, set up as the `agesynth` binary
//! sets itself up for training: mimalloc as the global allocator, keeping
//! freed memory mapped (so neither column pays page faults for recycled
//! tensors; `MIMALLOC_PURGE_DELAY=10` in the environment restores
//! mimalloc's default), candle's pool told not to spin
//! (`agesynth_nn::runtime::tune_process`), everything running on a
//! worker of a rayon pool with the default thread count
//! (`agesynth_nn::runtime::run_on_pool`). Every "fwd+bwd" case computes the output, sums it
//! and back-propagates to every input (candle's autograd, identical for both).
#![allow(missing_docs)]

use agesynth_nn::kernels;
use agesynth_nn::ops::{self, ConvParams, ConvTransposeParams};
use candle_core::{DType, Device, Result, Tensor, Var};
use criterion::{criterion_group, Criterion};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: agesynth_nn::runtime::MiMalloc = agesynth_nn::runtime::MiMalloc;

fn var(shape: &[usize], scale: f64) -> Var {
    let t = (Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap() * scale).unwrap();
    Var::from_tensor(&t).unwrap()
}

fn fwd_bwd(y: Result<Tensor>) {
    let g = y.unwrap().sum_all().unwrap().backward().unwrap();
    black_box(g);
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1500))
        .measurement_time(Duration::from_secs(5));
    g
}

/// The row `ours_bf16`: `f` with the convolutions' matrix products in bf16
/// (skipped on CPUs without AVX-512 BF16).
fn bf16_row(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, f: impl Fn()) {
    if kernels::set_matmul_precision(kernels::MatmulPrecision::Bf16).is_err() {
        return;
    }
    g.bench_function("ours_bf16", |b| b.iter(&f));
    kernels::set_matmul_precision(kernels::MatmulPrecision::F32).expect("f32");
}

/// The three convolution rows and the transposed convolution row.
fn convs(c: &mut Criterion) {
    // (name, cin, cout, hw, k, stride, pad)
    for (name, cin, cout, hw, k, stride, pad) in [
        ("conv3x3_64to64_64x64", 64, 64, 64, 3, 1, 1),
        ("conv3x3_128to128_32x32", 128, 128, 32, 3, 1, 1),
        ("conv4x4s2_64to128_64x64", 64, 128, 64, 4, 2, 1),
    ] {
        let x = var(&[8, cin, hw, hw], 1.0);
        let w = var(&[cout, cin, k, k], 0.05);
        let p = ConvParams {
            padding: pad,
            stride,
            ..Default::default()
        };
        let mut g = group(c, name);
        g.bench_function("candle", |b| {
            b.iter(|| fwd_bwd(x.as_tensor().conv2d(&w, pad, stride, 1, 1)))
        });
        g.bench_function("ours", |b| {
            b.iter(|| fwd_bwd(ops::conv2d(&x, &w, None, &p)))
        });
        bf16_row(&mut g, || fwd_bwd(ops::conv2d(&x, &w, None, &p)));
        g.finish();
    }
    let x = var(&[8, 128, 32, 32], 1.0);
    let w = var(&[128, 64, 4, 4], 0.05);
    let p = ConvTransposeParams {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let mut g = group(c, "convT4x4s2_128to64_32x32");
    g.bench_function("candle", |b| {
        b.iter(|| fwd_bwd(x.as_tensor().conv_transpose2d(&w, 1, 0, 2, 1)))
    });
    g.bench_function("ours", |b| {
        b.iter(|| fwd_bwd(ops::conv_transpose2d(&x, &w, None, &p)))
    });
    bf16_row(&mut g, || fwd_bwd(ops::conv_transpose2d(&x, &w, None, &p)));
    g.finish();
}

/// A small U-Net: 4 stride-2 4×4 convolutions down (32→64→128→256→256
/// channels, 128² → 8²), 4 stride-2 4×4 transposed convolutions up with
/// additive skips, 3×3 convolutions in and out, leaky ReLU 0.2, tanh output,
/// mean-squared error to a target. Every layer has a bias.
struct UNet {
    layers: Vec<(Var, Var)>,
}

impl UNet {
    fn new() -> Self {
        let mut layers = vec![];
        let mut add = |w: &[usize], cout: usize| {
            let fan_in: usize = w[1..].iter().product();
            layers.push((var(w, (2.0 / fan_in as f64).sqrt()), var(&[cout], 0.01)));
        };
        add(&[32, 3, 3, 3], 32);
        for (i, o) in [(32, 64), (64, 128), (128, 256), (256, 256)] {
            add(&[o, i, 4, 4], o);
        }
        for (i, o) in [(256, 256), (256, 128), (128, 64), (64, 32)] {
            add(&[i, o, 4, 4], o); // transposed: (in, out, k, k)
        }
        add(&[3, 32, 3, 3], 3);
        Self { layers }
    }

    fn forward(&self, x: &Tensor, ours: bool) -> Result<Tensor> {
        let conv = |x: &Tensor, i: usize, stride: usize, pad: usize, act: bool| -> Result<Tensor> {
            let (w, b) = (&self.layers[i].0, &self.layers[i].1);
            if ours {
                let p = ConvParams {
                    padding: pad,
                    stride,
                    ..Default::default()
                };
                ops::conv2d_act(x, w, Some(b), &p, act.then_some(0.2))
            } else {
                let y =
                    x.conv2d(w, pad, stride, 1, 1)?
                        .broadcast_add(&b.reshape((1, (), 1, 1))?)?;
                if act {
                    candle_nn::ops::leaky_relu(&y, 0.2)
                } else {
                    Ok(y)
                }
            }
        };
        let up = |x: &Tensor, i: usize| -> Result<Tensor> {
            let (w, b) = (&self.layers[i].0, &self.layers[i].1);
            if ours {
                let p = ConvTransposeParams {
                    padding: 1,
                    stride: 2,
                    ..Default::default()
                };
                ops::conv_transpose2d_act(x, w, Some(b), &p, Some(0.2))
            } else {
                let y = x
                    .conv_transpose2d(w, 1, 0, 2, 1)?
                    .broadcast_add(&b.reshape((1, (), 1, 1))?)?;
                candle_nn::ops::leaky_relu(&y, 0.2)
            }
        };
        let e0 = conv(x, 0, 1, 1, true)?;
        let e1 = conv(&e0, 1, 2, 1, true)?;
        let e2 = conv(&e1, 2, 2, 1, true)?;
        let e3 = conv(&e2, 3, 2, 1, true)?;
        let e4 = conv(&e3, 4, 2, 1, true)?;
        let d3 = (up(&e4, 5)? + e3)?;
        let d2 = (up(&d3, 6)? + e2)?;
        let d1 = (up(&d2, 7)? + e1)?;
        let d0 = (up(&d1, 8)? + e0)?;
        let out = conv(&d0, 9, 1, 1, false)?;
        if ours {
            ops::tanh(&out)
        } else {
            out.tanh()
        }
    }
}

fn unet(c: &mut Criterion) {
    let net = UNet::new();
    let x = Tensor::randn(0f32, 1f32, (8, 3, 128, 128), &Device::Cpu).unwrap();
    let target = Tensor::randn(0f32, 0.5f32, (8, 3, 128, 128), &Device::Cpu).unwrap();
    let step = |ours: bool| {
        let y = net.forward(&x, ours).unwrap();
        let loss = (y - &target).unwrap().sqr().unwrap().mean_all().unwrap();
        black_box(loss.backward().unwrap());
    };
    let mut g = group(c, "unet_4down4up_32ch_128x128");
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("candle", |b| b.iter(|| step(false)));
    g.bench_function("ours", |b| b.iter(|| step(true)));
    bf16_row(&mut g, || step(true));
    g.finish();
}

/// StyleGAN2 modulated 3×3 convolution, 64→64 channels at 64×64, with
/// demodulation: candle's grouped form, ours grouped, ours input-scaling.
fn modconv(c: &mut Criterion) {
    let x = var(&[8, 64, 64, 64], 1.0);
    let w = var(&[64, 64, 3, 3], 0.05);
    let s = var(&[8, 64], 1.0);
    let p = ConvParams {
        padding: 1,
        ..Default::default()
    };
    let candle_grouped = || -> Result<Tensor> {
        let (n, cin, cout) = (8, 64, 64);
        let wm = w
            .unsqueeze(0)?
            .broadcast_mul(&s.reshape((n, 1, cin, 1, 1))?)?;
        let d = (wm.sqr()?.sum((2, 3, 4))? + 1e-8)?.sqrt()?.recip()?;
        let wm = wm.broadcast_mul(&d.reshape((n, cout, 1, 1, 1))?)?;
        let y = x.reshape((1, n * cin, 64, 64))?.conv2d(
            &wm.reshape((n * cout, cin, 3, 3))?,
            1,
            1,
            1,
            n,
        )?;
        y.reshape((n, cout, 64, 64))
    };
    let mut g = group(c, "modconv3x3_64to64_64x64");
    g.bench_function("candle_grouped", |b| b.iter(|| fwd_bwd(candle_grouped())));
    g.bench_function("ours_grouped", |b| {
        b.iter(|| fwd_bwd(ops::modulated_conv2d_grouped(&x, &w, &s, true, &p)))
    });
    g.bench_function("ours_input_scaling", |b| {
        b.iter(|| fwd_bwd(ops::modulated_conv2d(&x, &w, &s, true, &p)))
    });
    bf16_row(&mut g, || {
        fwd_bwd(ops::modulated_conv2d(&x, &w, &s, true, &p))
    });
    g.finish();
}

fn eltwise(c: &mut Criterion) {
    let x = var(&[8, 64, 64, 64], 2.0);
    let mut g = group(c, "leaky_relu_8x64x64x64");
    g.bench_function("candle", |b| {
        b.iter(|| fwd_bwd(candle_nn::ops::leaky_relu(&x, 0.2)))
    });
    g.bench_function("ours", |b| b.iter(|| fwd_bwd(ops::leaky_relu(&x, 0.2))));
    g.bench_function("candle_fwd", |b| {
        b.iter(|| black_box(candle_nn::ops::leaky_relu(&x, 0.2).unwrap()))
    });
    g.bench_function("ours_fwd", |b| {
        b.iter(|| black_box(ops::leaky_relu(&x, 0.2).unwrap()))
    });
    g.finish();
    let mut g = group(c, "tanh_8x64x64x64");
    g.bench_function("candle", |b| b.iter(|| fwd_bwd(x.tanh())));
    g.bench_function("ours", |b| b.iter(|| fwd_bwd(ops::tanh(&x))));
    g.bench_function("candle_fwd", |b| b.iter(|| black_box(x.tanh().unwrap())));
    g.bench_function("ours_fwd", |b| b.iter(|| black_box(ops::tanh(&x).unwrap())));
    g.finish();
    // The cost shared by every fwd+bwd row above: sum_all + candle's
    // backward bookkeeping (ones, broadcast, accumulate).
    let mut g = group(c, "autograd_overhead_8x64x64x64");
    g.bench_function("sum_backward_only", |b| {
        b.iter(|| fwd_bwd(Ok(x.as_tensor().clone())))
    });
    g.finish();
}

fn sgemm(c: &mut Criterion) {
    let n = 2048;
    let a = Tensor::randn(0f32, 1f32, (n, n), &Device::Cpu).unwrap();
    let bm = Tensor::randn(0f32, 1f32, (n, n), &Device::Cpu).unwrap();
    let mut g = group(c, "sgemm_2048");
    g.bench_function("candle", |b| b.iter(|| black_box(a.matmul(&bm).unwrap())));
    let av = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let bv = bm.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut dst = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    g.bench_function("ours_gemm_x86v4", |b| {
        b.iter(|| {
            // SAFETY: all three buffers are n×n row-major.
            unsafe {
                gemm::gemm(
                    n,
                    n,
                    n,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    av.as_ptr(),
                    1,
                    n as isize,
                    bv.as_ptr(),
                    1,
                    n as isize,
                    0f32,
                    1f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                )
            };
            black_box(&dst);
        })
    });
    if kernels::bf16::available() {
        g.bench_function("ours_bf16", |b| {
            b.iter(|| {
                // SAFETY: available() checked; all three buffers are n×n row-major.
                unsafe {
                    kernels::bf16::gemm_bf16(
                        n,
                        n,
                        n,
                        kernels::bf16::StridedA {
                            ptr: av.as_ptr(),
                            rs: n as isize,
                            cs: 1,
                        },
                        bv.as_ptr(),
                        n,
                        dst.as_mut_ptr(),
                        n,
                        false,
                        threads,
                    )
                };
                black_box(&dst);
            })
        });
    }
    g.finish();
    let _ = DType::F32;
}

criterion_group!(benches, convs, unet, modconv, eltwise, sgemm);

fn main() {
    agesynth_nn::runtime::tune_process();
    let run = || {
        benches();
        Criterion::default().configure_from_args().final_summary();
    };
    agesynth_nn::runtime::run_on_pool(run);
}
