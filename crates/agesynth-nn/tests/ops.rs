//! Correctness of the CPU kernels: forward and both gradients in f32 against
//! candle's own ops in f64 (relative error ≤ 1e-5), and our f64 gradients
//! against central finite differences.

use agesynth_nn::ops::{self, ConvParams, ConvTransposeParams};
use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random values in ±[0.05, 1]·scale (never zero).
fn rand_t(rng: &mut ChaCha8Rng, shape: &[usize], scale: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let m: f64 = rng.random_range(0.05..1.0);
            let s = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            (m * s * scale) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `max |a − b| / max |b|`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = b
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(1e-30);
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output");
    diff / scale
}

const TOL: f64 = 1e-5;

/// Runs `f` on f32 variables (ours) and `reference` on f64 copies (candle),
/// and compares outputs and the gradients of `Σ y·r` for every input.
fn check(
    what: &str,
    inputs: &[Tensor],
    ours: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    rng: &mut ChaCha8Rng,
) {
    let v32: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let v64: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_dtype(DType::F64).unwrap()).unwrap())
        .collect();
    let t32: Vec<Tensor> = v32.iter().map(|v| v.as_tensor().clone()).collect();
    let t64: Vec<Tensor> = v64.iter().map(|v| v.as_tensor().clone()).collect();
    let y = ours(&t32).unwrap_or_else(|e| panic!("{what}: ours failed: {e}"));
    let yr = reference(&t64).unwrap_or_else(|e| panic!("{what}: reference failed: {e}"));
    let e = rel_err(&y, &yr);
    assert!(e <= TOL, "{what}: forward rel err {e:e}");
    let r = rand_t(rng, y.dims(), 1.0);
    let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (yr * r.to_dtype(DType::F64).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (i, (a, b)) in t32.iter().zip(&t64).enumerate() {
        let ga = g
            .get(a)
            .unwrap_or_else(|| panic!("{what}: no gradient for input {i}"));
        let gb = gr
            .get(b)
            .unwrap_or_else(|| panic!("{what}: no reference gradient for input {i}"));
        let e = rel_err(ga, gb);
        assert!(e <= TOL, "{what}: gradient {i} rel err {e:e}");
    }
}

/// (n, cin, cout, h, w, k, stride, pad, dil, groups)
/// (n, cin, cout, h, w, k, stride, pad, out_pad, dil, groups)
type TransposeCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// (n, cin, cout, h, w, k, stride, pad, dil, groups)
type ConvCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const CONV_CASES: &[ConvCase] = &[
    (2, 3, 4, 7, 5, 3, 1, 1, 1, 1),
    (1, 4, 6, 9, 9, 3, 2, 1, 1, 2),
    (3, 8, 16, 17, 19, 3, 1, 1, 1, 1), // big enough for the parallel paths
    (1, 8, 16, 17, 19, 3, 1, 1, 1, 1), // batch < threads: parallel GEMMs
    // candle's own conv2d backward assumes the same output padding on both
    // axes, so the reference needs h and w with the same remainder.
    (2, 6, 6, 11, 9, 4, 2, 1, 1, 3),
    (2, 5, 7, 6, 6, 1, 1, 0, 1, 1), // pointwise
    (2, 4, 4, 5, 7, 1, 2, 0, 1, 2), // strided 1×1
    (2, 3, 5, 13, 10, 3, 3, 2, 2, 1),
    (2, 4, 2, 8, 8, 5, 1, 2, 1, 2),
    (4, 16, 8, 12, 12, 4, 2, 1, 1, 1),
    (2, 6, 40, 9, 8, 3, 1, 1, 1, 1), // ≥ 32 output channels: untransposed forward GEMM
    (2, 64, 64, 6, 6, 3, 2, 1, 1, 1), // batched weight gradient with wide channels
    // 3×3 stride 1 with ≥ 16 channels: the Winograd path (odd sizes, pads 0–2).
    (2, 16, 24, 9, 11, 3, 1, 1, 1, 1),
    (1, 16, 16, 6, 7, 3, 1, 0, 1, 1),
    (3, 32, 16, 5, 5, 3, 1, 2, 1, 1),
    // Depthwise (groups = cin = cout), as face-api's separable layers: with
    // padding, stride 2, dilation, no padding and a size for the parallel path.
    (2, 8, 8, 9, 7, 3, 1, 1, 1, 8),
    (2, 6, 6, 11, 9, 3, 2, 1, 1, 6),
    (1, 4, 4, 9, 8, 3, 1, 0, 2, 4),
    (2, 5, 5, 7, 7, 3, 2, 2, 1, 5),
    (3, 16, 16, 14, 14, 3, 1, 1, 1, 16),
];

fn candle_conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: &ConvParams) -> Result<Tensor> {
    let y = x.conv2d(w, p.padding, p.stride, p.dilation, p.groups)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

#[test]
fn conv2d_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(n, cin, cout, h, w, k, stride, padding, dilation, groups) in CONV_CASES {
        let p = ConvParams {
            padding,
            stride,
            dilation,
            groups,
        };
        let x = rand_t(&mut rng, &[n, cin, h, w], 1.0);
        let wt = rand_t(&mut rng, &[cout, cin / groups, k, k], 0.5);
        let b = rand_t(&mut rng, &[cout], 0.5);
        let what = format!(
            "conv2d {:?}",
            (n, cin, cout, h, w, k, stride, padding, dilation, groups)
        );
        check(
            &what,
            &[x.clone(), wt.clone()],
            |t| ops::conv2d(&t[0], &t[1], None, &p),
            |t| candle_conv(&t[0], &t[1], None, &p),
            &mut rng,
        );
        check(
            &format!("{what} + bias + leaky_relu"),
            &[x, wt, b],
            |t| ops::conv2d_act(&t[0], &t[1], Some(&t[2]), &p, Some(0.2)),
            |t| candle_nn::ops::leaky_relu(&candle_conv(&t[0], &t[1], Some(&t[2]), &p)?, 0.2),
            &mut rng,
        );
    }
}

fn candle_conv_t(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &ConvTransposeParams,
) -> Result<Tensor> {
    let xs = x.chunk(p.groups, 1)?;
    let ws = w.chunk(p.groups, 0)?;
    let ys = xs
        .iter()
        .zip(&ws)
        .map(|(x, w)| x.conv_transpose2d(w, p.padding, p.output_padding, p.stride, p.dilation))
        .collect::<Result<Vec<_>>>()?;
    let y = Tensor::cat(&ys, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

#[test]
fn conv_transpose2d_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // (n, cin, cout, h, w, k, stride, pad, out_pad, dil, groups)
    let cases: &[TransposeCase] = &[
        (2, 4, 3, 5, 7, 4, 2, 1, 0, 1, 1),
        (3, 16, 8, 9, 9, 4, 2, 1, 0, 1, 1),
        (1, 16, 8, 9, 9, 4, 2, 1, 0, 1, 1),
        (2, 6, 4, 6, 5, 3, 2, 1, 1, 1, 2),
        (2, 3, 5, 7, 7, 3, 1, 1, 0, 1, 1),
        (2, 5, 3, 4, 6, 1, 1, 0, 0, 1, 1),
        (2, 4, 4, 5, 5, 3, 3, 0, 2, 1, 1),
        (2, 4, 6, 6, 4, 3, 1, 2, 0, 2, 2),
        // > 256 input pixels: both gradients from one fused pass.
        (2, 8, 6, 17, 18, 4, 2, 1, 0, 1, 1),
        (1, 6, 4, 17, 16, 4, 2, 1, 0, 1, 1),
        (3, 8, 6, 16, 17, 3, 1, 1, 0, 1, 2),
    ];
    for &(n, cin, cout, h, w, k, stride, padding, output_padding, dilation, groups) in cases {
        let p = ConvTransposeParams {
            padding,
            output_padding,
            stride,
            dilation,
            groups,
        };
        let x = rand_t(&mut rng, &[n, cin, h, w], 1.0);
        let wt = rand_t(&mut rng, &[cin, cout / groups, k, k], 0.5);
        let b = rand_t(&mut rng, &[cout], 0.5);
        let what = format!(
            "conv_transpose2d {:?}",
            (
                n,
                cin,
                cout,
                h,
                w,
                k,
                stride,
                padding,
                output_padding,
                dilation,
                groups
            )
        );
        check(
            &what,
            &[x.clone(), wt.clone()],
            |t| ops::conv_transpose2d(&t[0], &t[1], None, &p),
            |t| candle_conv_t(&t[0], &t[1], None, &p),
            &mut rng,
        );
        check(
            &format!("{what} + bias + relu"),
            &[x, wt, b],
            |t| ops::conv_transpose2d_act(&t[0], &t[1], Some(&t[2]), &p, Some(0.0)),
            |t| candle_conv_t(&t[0], &t[1], Some(&t[2]), &p)?.relu(),
            &mut rng,
        );
    }
}

#[test]
fn activations_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // One shape below and one above the parallel threshold, odd sizes.
    for shape in [&[3usize, 5, 7, 9][..], &[2, 3, 111, 197][..]] {
        for scale in [0.3, 4.0, 30.0] {
            let x = rand_t(&mut rng, shape, scale);
            let what = |f: &str| format!("{f} {shape:?} scale {scale}");
            check(
                &what("leaky_relu"),
                std::slice::from_ref(&x),
                |t| ops::leaky_relu(&t[0], 0.2),
                |t| candle_nn::ops::leaky_relu(&t[0], 0.2),
                &mut rng,
            );
            check(
                &what("tanh"),
                std::slice::from_ref(&x),
                |t| ops::tanh(&t[0]),
                |t| t[0].tanh(),
                &mut rng,
            );
            check(
                &what("sigmoid"),
                std::slice::from_ref(&x),
                |t| ops::sigmoid(&t[0]),
                |t| candle_nn::ops::sigmoid(&t[0]),
                &mut rng,
            );
            check(
                &what("softplus"),
                std::slice::from_ref(&x),
                |t| ops::softplus(&t[0]),
                |t| t[0].relu()? + (t[0].abs()?.neg()?.exp()? + 1.0)?.log()?,
                &mut rng,
            );
        }
    }
}

#[test]
fn activations_are_accurate_pointwise() {
    // Relative error of each value (not just of the tensor) on a dense grid.
    let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.01).collect();
    let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
    let get = |t: Tensor| t.to_vec1::<f32>().unwrap();
    let (th, sg, sp) = (
        get(ops::tanh(&x).unwrap()),
        get(ops::sigmoid(&x).unwrap()),
        get(ops::softplus(&x).unwrap()),
    );
    for (i, &v) in xs.iter().enumerate() {
        let v = v as f64;
        let rt = v.tanh();
        let rs = 1.0 / (1.0 + (-v).exp());
        let rp = v.max(0.0) + (-v.abs()).exp().ln_1p();
        for (name, got, want) in [
            ("tanh", th[i], rt),
            ("sigmoid", sg[i], rs),
            ("softplus", sp[i], rp),
        ] {
            let e = (got as f64 - want).abs() / want.abs().max(1e-30);
            assert!(e < 2e-6, "{name}({v}) = {got}, want {want} (rel err {e:e})");
        }
    }
}

#[test]
fn channel_ops_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for shape in [&[2usize, 3, 5, 7][..], &[3, 16, 40, 41][..], &[5, 6][..]] {
        let c = shape[1];
        let mut bshape = vec![1; shape.len()];
        bshape[1] = c;
        let x = rand_t(&mut rng, shape, 2.0);
        let s = rand_t(&mut rng, &[c], 1.0);
        let b = rand_t(&mut rng, &[c], 1.0);
        let bs = bshape.clone();
        check(
            &format!("scale_bias {shape:?}"),
            &[x.clone(), s.clone(), b.clone()],
            |t| ops::scale_bias(&t[0], &t[1], &t[2]),
            |t| {
                t[0].broadcast_mul(&t[1].reshape(bs.as_slice())?)?
                    .broadcast_add(&t[2].reshape(bs.as_slice())?)
            },
            &mut rng,
        );
        let bs = bshape.clone();
        check(
            &format!("bias_leaky_relu {shape:?}"),
            &[x.clone(), b.clone()],
            |t| ops::bias_leaky_relu(&t[0], &t[1], 0.2),
            |t| {
                candle_nn::ops::leaky_relu(&t[0].broadcast_add(&t[1].reshape(bs.as_slice())?)?, 0.2)
            },
            &mut rng,
        );
        let dims: Vec<usize> = (0..shape.len()).filter(|&d| d != 1).collect();
        let d2 = dims.clone();
        check(
            &format!("channel_sum {shape:?}"),
            std::slice::from_ref(&x),
            |t| ops::channel_sum(&t[0]),
            |t| t[0].sum(d2.as_slice()),
            &mut rng,
        );
        let y = rand_t(&mut rng, shape, 1.0);
        check(
            &format!("channel_dot {shape:?}"),
            &[x, y],
            |t| ops::channel_dot(&t[0], &t[1]),
            |t| t[0].mul(&t[1])?.sum(dims.as_slice()),
            &mut rng,
        );
    }
}

/// Central finite differences of `Σ f(inputs)·r` in f64 against our analytic
/// gradients, on every coordinate of small inputs.
fn fd_check(
    what: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    rng: &mut ChaCha8Rng,
) {
    let inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F64).unwrap())
        .collect();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts).unwrap();
    let r = rand_t(rng, y.dims(), 1.0).to_dtype(DType::F64).unwrap();
    let loss = |ins: &[Tensor]| -> f64 {
        (f(ins).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let h = 1e-6;
    for (i, t) in ts.iter().enumerate() {
        let analytic = grads
            .get(t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = inputs[i].flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let scale = analytic.iter().map(|v| v.abs()).fold(1e-3, f64::max);
        for j in 0..base.len() {
            let mut ins = inputs.clone();
            let mut v = base.clone();
            v[j] += h;
            ins[i] = Tensor::from_vec(v.clone(), inputs[i].shape(), &Device::Cpu).unwrap();
            let lp = loss(&ins);
            v[j] -= 2.0 * h;
            ins[i] = Tensor::from_vec(v, inputs[i].shape(), &Device::Cpu).unwrap();
            let lm = loss(&ins);
            let fd = (lp - lm) / (2.0 * h);
            let e = (fd - analytic[j]).abs() / scale;
            assert!(
                e < 1e-6,
                "{what}: input {i}[{j}] analytic {} vs finite difference {fd}",
                analytic[j]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = rand_t(&mut rng, &[2, 4, 5, 6], 1.0);
    let w = rand_t(&mut rng, &[4, 2, 3, 3], 0.5);
    let b = rand_t(&mut rng, &[4], 0.5);
    let p = ConvParams {
        padding: 1,
        stride: 2,
        dilation: 1,
        groups: 2,
    };
    fd_check(
        "conv2d",
        &[x.clone(), w.clone(), b.clone()],
        |t| ops::conv2d_act(&t[0], &t[1], Some(&t[2]), &p, Some(0.2)),
        &mut rng,
    );
    let pt = ConvTransposeParams {
        padding: 1,
        output_padding: 1,
        stride: 2,
        dilation: 1,
        groups: 2,
    };
    let wt = rand_t(&mut rng, &[4, 3, 3, 3], 0.5);
    let bt = rand_t(&mut rng, &[6], 0.5);
    fd_check(
        "conv_transpose2d",
        &[x.clone(), wt, bt],
        |t| ops::conv_transpose2d(&t[0], &t[1], Some(&t[2]), &pt),
        &mut rng,
    );
    let xs = rand_t(&mut rng, &[2, 3, 4], 3.0);
    fd_check(
        "tanh",
        std::slice::from_ref(&xs),
        |t| ops::tanh(&t[0]),
        &mut rng,
    );
    fd_check(
        "sigmoid",
        std::slice::from_ref(&xs),
        |t| ops::sigmoid(&t[0]),
        &mut rng,
    );
    fd_check(
        "softplus",
        std::slice::from_ref(&xs),
        |t| ops::softplus(&t[0]),
        &mut rng,
    );
    fd_check(
        "leaky_relu",
        std::slice::from_ref(&xs),
        |t| ops::leaky_relu(&t[0], 0.1),
        &mut rng,
    );
    let s = rand_t(&mut rng, &[3], 1.0);
    let c = rand_t(&mut rng, &[3], 1.0);
    fd_check(
        "scale_bias",
        &[xs, s, c],
        |t| ops::channel_affine(&t[0], Some(&t[1]), Some(&t[2]), Some(0.2)),
        &mut rng,
    );
}

/// Finite differences through the paths the shapes above are too small
/// for: Winograd (3×3, stride 1, ≥ 16 channels), the fused modulated
/// convolution, and the fused backward of a transposed convolution with
/// more than 256 input pixels.
#[test]
fn fast_paths_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = rand_t(&mut rng, &[1, 16, 3, 5], 1.0);
    let w = rand_t(&mut rng, &[16, 16, 3, 3], 0.3);
    let b = rand_t(&mut rng, &[16], 0.5);
    let p = ConvParams {
        padding: 1,
        ..Default::default()
    };
    fd_check(
        "winograd conv2d",
        &[x.clone(), w.clone(), b],
        |t| ops::conv2d_act(&t[0], &t[1], Some(&t[2]), &p, Some(0.2)),
        &mut rng,
    );
    let s = rand_t(&mut rng, &[1, 16], 1.0);
    fd_check(
        "fused modulated conv",
        &[x, w, s],
        |t| ops::modulated_conv2d(&t[0], &t[1], &t[2], true, &p),
        &mut rng,
    );
    let pt = ConvTransposeParams {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let xt = rand_t(&mut rng, &[1, 2, 17, 16], 1.0);
    let wt = rand_t(&mut rng, &[2, 3, 4, 4], 0.5);
    fd_check(
        "conv_transpose2d, fused backward",
        &[xt, wt],
        |t| ops::conv_transpose2d(&t[0], &t[1], None, &pt),
        &mut rng,
    );
}

#[test]
fn bad_shapes_are_errors() {
    let x = Tensor::ones((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::ones((4, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(
        ops::conv2d(&x, &w, None, &ConvParams::default()).is_err(),
        "channel mismatch"
    );
    let w = Tensor::ones((4, 3, 9, 9), DType::F32, &Device::Cpu).unwrap();
    assert!(
        ops::conv2d(&x, &w, None, &ConvParams::default()).is_err(),
        "kernel larger than input"
    );
    let w = Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::ones(5, DType::F32, &Device::Cpu).unwrap();
    assert!(
        ops::conv2d(&x, &w, Some(&b), &ConvParams::default()).is_err(),
        "bias size"
    );
    let wt = Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(
        ops::conv_transpose2d(&x, &wt, None, &ConvTransposeParams::default()).is_err(),
        "transpose channel mismatch"
    );
    let p = ConvTransposeParams {
        output_padding: 2,
        stride: 2,
        ..Default::default()
    };
    let wt = Tensor::ones((3, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(
        ops::conv_transpose2d(&x, &wt, None, &p).is_err(),
        "output padding ≥ stride"
    );
    let x64 = x.to_dtype(DType::F64).unwrap();
    assert!(
        ops::conv2d(&x64, &w, None, &ConvParams::default()).is_err(),
        "mixed dtypes"
    );
}

#[test]
fn non_contiguous_inputs_and_half_precision_fall_back() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = rand_t(&mut rng, &[2, 6, 5, 3], 1.0)
        .transpose(2, 3)
        .unwrap();
    let w = rand_t(&mut rng, &[4, 6, 3, 3], 0.5);
    let p = ConvParams {
        padding: 1,
        ..Default::default()
    };
    let ours = ops::conv2d(&x, &w, None, &p).unwrap();
    let theirs = candle_conv(&x.contiguous().unwrap(), &w, None, &p).unwrap();
    assert!(rel_err(&ours, &theirs) < TOL);
    // bf16 runs candle's ops (which have no bf16 CPU matmul, so only the
    // activations are checked here) and still gives the right answer.
    let xb = x.to_dtype(DType::BF16).unwrap();
    let t = ops::tanh(&xb).unwrap();
    assert_eq!(t.dtype(), DType::BF16);
    assert!(rel_err(&t, &x.tanh().unwrap()) < 1e-2);
}

#[test]
fn modulated_conv_matches_grouped_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // The last two take the fused Winograd path (3×3, stride 1, ≥ 16 channels).
    for (n, cin, cout, hw, k, pad, stride) in [
        (3, 4, 5, 9, 3, 1, 1),
        (2, 6, 3, 8, 4, 1, 2),
        (2, 16, 20, 9, 3, 1, 1),
        (3, 24, 16, 6, 3, 0, 1),
    ] {
        let x = rand_t(&mut rng, &[n, cin, hw, hw], 1.0);
        let w = rand_t(&mut rng, &[cout, cin, k, k], 0.5);
        let s = rand_t(&mut rng, &[n, cin], 1.0);
        let p = ConvParams {
            padding: pad,
            stride,
            ..Default::default()
        };
        for demod in [true, false] {
            // Reference: the grouped form with candle's convolution, in f64.
            let reference = |t: &[Tensor]| -> Result<Tensor> {
                let (x, w, s) = (&t[0], &t[1], &t[2]);
                let mut wm = w
                    .unsqueeze(0)?
                    .broadcast_mul(&s.reshape((n, 1, cin, 1, 1))?)?;
                if demod {
                    let d = (wm.sqr()?.sum((2, 3, 4))? + 1e-8)?.sqrt()?.recip()?;
                    wm = wm.broadcast_mul(&d.reshape((n, cout, 1, 1, 1))?)?;
                }
                let y = x.reshape((1, n * cin, hw, hw))?.conv2d(
                    &wm.reshape((n * cout, cin, k, k))?,
                    pad,
                    stride,
                    1,
                    n,
                )?;
                let (_, _, ho, wo) = y.dims4()?;
                y.reshape((n, cout, ho, wo))
            };
            let inputs = [x.clone(), w.clone(), s.clone()];
            check(
                &format!("modulated conv demod={demod}"),
                &inputs,
                |t| ops::modulated_conv2d(&t[0], &t[1], &t[2], demod, &p),
                reference,
                &mut rng,
            );
            check(
                &format!("unfused modulated conv demod={demod}"),
                &inputs,
                |t| ops::modulated_conv2d_unfused(&t[0], &t[1], &t[2], demod, &p),
                reference,
                &mut rng,
            );
            check(
                &format!("grouped modulated conv demod={demod}"),
                &inputs,
                |t| ops::modulated_conv2d_grouped(&t[0], &t[1], &t[2], demod, &p),
                reference,
                &mut rng,
            );
        }
    }
}

#[test]
fn broadcast_gradients_are_handled() {
    // The gradient of a sum is a broadcast scalar; it must give the same
    // result as an explicit ones tensor.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = Var::from_tensor(&rand_t(&mut rng, &[2, 3, 4, 5], 1.0)).unwrap();
    let w = Var::from_tensor(&rand_t(&mut rng, &[4, 3, 3, 3], 0.5)).unwrap();
    let p = ConvParams {
        padding: 1,
        ..Default::default()
    };
    let y = ops::conv2d_act(&x, &w, None, &p, Some(0.2)).unwrap();
    let g_sum = ops::tanh(&y)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let ones = Tensor::ones(y.dims(), DType::F32, &Device::Cpu).unwrap();
    let g_ones = (ops::tanh(&y).unwrap() * ones)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in [&x, &w] {
        let a = g_sum.get(v).unwrap();
        let b = g_ones.get(v).unwrap();
        assert!(rel_err(a, b) < 1e-6);
    }
    // Every activation's gradient from a mean (a broadcast 1/n, taken
    // without materialising it) equals the one from an explicit tensor.
    type Act = fn(&Tensor) -> Result<Tensor>;
    let acts: [(&str, Act); 4] = [
        ("leaky_relu", |t| ops::leaky_relu(t, 0.2)),
        ("tanh", ops::tanh),
        ("sigmoid", ops::sigmoid),
        ("softplus", ops::softplus),
    ];
    let n = x.elem_count() as f64;
    for (name, act) in acts {
        let g_mean = act(&x).unwrap().mean_all().unwrap().backward().unwrap();
        let scale = (Tensor::ones(x.dims(), DType::F32, &Device::Cpu).unwrap() / n).unwrap();
        let g_expl = (act(&x).unwrap() * scale)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let e = rel_err(g_mean.get(&x).unwrap(), g_expl.get(&x).unwrap());
        assert!(e < 1e-6, "{name}: {e:e}");
    }
}

/// The vendored candle autograd patch keeps a sum's broadcast gradient as a
/// view only for our own ops: candle's rules that need contiguous
/// gradients (matmul, index-add, ...) still get them, and every gradient
/// equals the one from an explicit ones tensor.
#[test]
fn sum_gradients_reach_every_kind_of_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = Var::from_tensor(&rand_t(&mut rng, &[6, 5], 1.0)).unwrap();
    let w = Var::from_tensor(&rand_t(&mut rng, &[5, 4], 1.0)).unwrap();
    let ids = Tensor::new(&[4u32, 0, 2, 2], &Device::Cpu).unwrap();
    type Build = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let cases: [(&str, Build); 4] = [
        ("matmul", |x, w, _| x.matmul(w)),
        ("index_select", |x, _, ids| x.index_select(ids, 0)),
        ("leaky_relu", |x, _, _| ops::leaky_relu(x, 0.2)),
        ("tanh of matmul", |x, w, _| ops::tanh(&x.matmul(w)?)),
    ];
    for (name, build) in cases {
        let y = build(&x, &w, &ids).unwrap();
        let g_sum = y.sum_all().unwrap().backward().unwrap();
        let ones = Tensor::ones(y.dims(), DType::F32, &Device::Cpu).unwrap();
        let g_ones = (build(&x, &w, &ids).unwrap() * ones)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let e = rel_err(g_sum.get(&x).unwrap(), g_ones.get(&x).unwrap());
        assert!(e < 1e-6, "{name}: {e:e}");
    }
}
