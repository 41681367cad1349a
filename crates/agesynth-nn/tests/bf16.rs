//! The convolutions with their matrix products in bf16 (its own test binary:
//! the precision is process-wide, and the other tests compare f32 results
//! tightly).

use agesynth_nn::kernels::{self, MatmulPrecision};
use agesynth_nn::ops::{self, ConvParams, ConvTransposeParams};
use candle_core::{Device, Tensor, Var};

fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
    let n = b.sqr().unwrap().sum_all().unwrap();
    (d.to_scalar::<f32>().unwrap() / n.to_scalar::<f32>().unwrap()).sqrt()
}

/// A convolution of `(x, w)`.
type Conv<'a> = &'a dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;

/// Output and gradients of x and w for a convolution run by `f`.
fn run(f: Conv<'_>, x: &Var, w: &Var) -> (Tensor, Tensor, Tensor) {
    let y = f(x.as_tensor(), w.as_tensor()).unwrap();
    let t = y.sin().unwrap(); // a non-uniform upstream gradient
    let g = (&y * &t).unwrap().sum_all().unwrap().backward().unwrap();
    (
        y.detach(),
        g.get(x.as_tensor()).unwrap().clone(),
        g.get(w.as_tensor()).unwrap().clone(),
    )
}

#[test]
fn bf16_convolutions_stay_close_to_f32_and_fall_back_cleanly() {
    if !kernels::bf16::available() {
        // The setting is refused with a reason and stays f32.
        let err = kernels::set_matmul_precision(MatmulPrecision::Bf16).unwrap_err();
        assert!(err.contains("AVX-512 BF16"), "{err}");
        assert_eq!(kernels::matmul_precision(), MatmulPrecision::F32);
        return;
    }
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (4, 24, 20, 20), &dev).unwrap()).unwrap();
    let w3 = Var::from_tensor(&Tensor::randn(0f32, 0.1, (40, 24, 3, 3), &dev).unwrap()).unwrap();
    let w4 = Var::from_tensor(&Tensor::randn(0f32, 0.1, (40, 24, 4, 4), &dev).unwrap()).unwrap();
    let wt = Var::from_tensor(&Tensor::randn(0f32, 0.1, (24, 16, 4, 4), &dev).unwrap()).unwrap();
    let conv3 = |x: &Tensor, w: &Tensor| {
        let p = ConvParams {
            padding: 1,
            ..Default::default()
        };
        ops::conv2d(x, w, None, &p)
    };
    let conv4 = |x: &Tensor, w: &Tensor| {
        let p = ConvParams {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        ops::conv2d(x, w, None, &p)
    };
    let convt = |x: &Tensor, w: &Tensor| {
        let p = ConvTransposeParams {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        ops::conv_transpose2d(x, w, None, &p)
    };
    let cases: [(&str, Conv<'_>, &Var); 3] = [
        ("3×3 (Winograd)", &conv3, &w3),
        ("4×4 stride 2 (im2col)", &conv4, &w4),
        ("transposed 4×4 stride 2", &convt, &wt),
    ];
    for (name, f, w) in cases {
        kernels::set_matmul_precision(MatmulPrecision::F32).unwrap();
        let (y32, gx32, gw32) = run(f, &x, w);
        kernels::set_matmul_precision(MatmulPrecision::Bf16).unwrap();
        assert_eq!(kernels::matmul_precision(), MatmulPrecision::Bf16);
        let (y16, gx16, gw16) = run(f, &x, w);
        kernels::set_matmul_precision(MatmulPrecision::F32).unwrap();
        for (what, a, b) in [
            ("output", &y16, &y32),
            ("dx", &gx16, &gx32),
            ("dw", &gw16, &gw32),
        ] {
            let e = rel_err(a, b);
            // bf16 keeps 8 significant bits: about 0.4 % per input.
            assert!(e < 1e-2, "{name} {what}: relative error {e}");
            // ... and it did run in bf16: not bit-identical to f32.
            assert!(e > 1e-6, "{name} {what}: identical to f32 ({e})");
        }
    }
}
