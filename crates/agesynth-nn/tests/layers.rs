//! The layers: candle_nn-compatible weight names and shapes, and the same
//! outputs as candle's layers built from the same weights.

use agesynth_core::random::seeded_normal;
use agesynth_nn::init::seeded_var_builder;
use agesynth_nn::{Activation, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let s = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    d / s.max(1e-30)
}

#[test]
fn conv2d_layer_names_shapes_and_output() {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let cfg = Conv2dConfig {
        padding: 1,
        stride: 2,
        groups: 2,
        activation: Activation::LeakyRelu(0.2),
        ..Conv2dConfig::new(4, 6, 3)
    };
    let layer = Conv2d::new(&cfg, vb.pp("enc")).unwrap();
    let data = map.data().lock().unwrap();
    assert_eq!(data["enc.weight"].dims(), &[6, 2, 3, 3]);
    assert_eq!(data["enc.bias"].dims(), &[6]);
    drop(data);
    let x = Tensor::randn(0f32, 1., (2, 4, 9, 7), &Device::Cpu).unwrap();
    let y = layer.forward(&x).unwrap();
    let reference = candle_nn::Conv2d::new(
        layer.weight().clone(),
        layer.bias().cloned(),
        candle_nn::Conv2dConfig {
            padding: 1,
            stride: 2,
            groups: 2,
            ..Default::default()
        },
    );
    let r = candle_nn::ops::leaky_relu(&reference.forward(&x).unwrap(), 0.2).unwrap();
    assert_eq!(y.dims(), &[2, 6, 5, 4]);
    assert!(rel_err(&y, &r) < 1e-5);
    // A tanh activation is applied after the convolution.
    let t = Conv2d::from_tensors(
        layer.weight().clone(),
        None,
        &Conv2dConfig {
            activation: Activation::Tanh,
            ..cfg
        },
    )
    .unwrap();
    let rt = reference
        .forward(&x)
        .unwrap()
        .broadcast_sub(&layer.bias().unwrap().reshape((1, 6, 1, 1)).unwrap())
        .unwrap()
        .tanh()
        .unwrap();
    assert!(rel_err(&t.forward(&x).unwrap(), &rt) < 1e-5);
}

#[test]
fn conv_transpose2d_layer_matches_candle_nn() {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let cfg = ConvTranspose2dConfig {
        padding: 1,
        stride: 2,
        ..ConvTranspose2dConfig::new(8, 4, 4)
    };
    let layer = ConvTranspose2d::new(&cfg, vb.pp("up")).unwrap();
    assert_eq!(
        map.data().lock().unwrap()["up.weight"].dims(),
        &[8, 4, 4, 4]
    );
    let x = Tensor::randn(0f32, 1., (3, 8, 5, 6), &Device::Cpu).unwrap();
    let y = layer.forward(&x).unwrap();
    assert_eq!(y.dims(), &[3, 4, 10, 12]);
    let reference = candle_nn::ConvTranspose2d::new(
        layer.weight().clone(),
        layer.bias().cloned(),
        candle_nn::ConvTranspose2dConfig {
            padding: 1,
            stride: 2,
            output_padding: 0,
            dilation: 1,
        },
    );
    assert!(rel_err(&y, &reference.forward(&x).unwrap()) < 1e-5);
}

#[test]
fn bad_layer_configs_are_errors() {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let cfg = Conv2dConfig {
        groups: 3,
        ..Conv2dConfig::new(4, 6, 3)
    };
    assert!(Conv2d::new(&cfg, vb.pp("a")).is_err());
    let cfg = ConvTranspose2dConfig {
        groups: 0,
        ..ConvTranspose2dConfig::new(4, 6, 3)
    };
    assert!(ConvTranspose2d::new(&cfg, vb.pp("b")).is_err());
    let layer = Conv2d::new(&Conv2dConfig::new(4, 6, 3), vb.pp("c")).unwrap();
    let x = Tensor::zeros((1, 5, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(
        layer.forward(&x).is_err(),
        "wrong input channels must be an error"
    );
}

/// `Conv2d::forward_jvp` against a central difference of the forward pass
/// along the tangent, in f64, for every activation (inputs drawn so that no
/// pre-activation sits within the step of a leaky ReLU's kink).
#[test]
fn conv2d_forward_jvp_matches_finite_differences() {
    let dev = Device::Cpu;
    let acts = [
        Activation::Identity,
        Activation::LeakyRelu(0.2),
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
    ];
    for (i, act) in acts.into_iter().enumerate() {
        // Seeded weights, point and tangent (candle's generator cannot be
        // seeded; a central difference across a kink would fail).
        let vb = seeded_var_builder(&VarMap::new(), 50 + i as u64, DType::F64, &dev);
        let cfg = Conv2dConfig {
            padding: 1,
            stride: 2,
            activation: act,
            ..Conv2dConfig::new(3, 5, 4)
        };
        let conv = Conv2d::new(&cfg, vb).unwrap();
        let x = seeded_normal(60 + i as u64, 1.0, (2, 3, 9, 7), DType::F64, &Device::Cpu).unwrap();
        let t = seeded_normal(70 + i as u64, 1.0, (2, 3, 9, 7), DType::F64, &Device::Cpu).unwrap();
        let (y, ty) = conv.forward_jvp(&x, &t).unwrap();
        let y0 = conv.forward(&x).unwrap();
        assert!(rel_err64(&y, &y0) < 1e-12, "{act:?}: forward differs");
        let h = 1e-6;
        let plus = conv.forward(&(&x + (&t * h).unwrap()).unwrap()).unwrap();
        let minus = conv.forward(&(&x - (&t * h).unwrap()).unwrap()).unwrap();
        let fd = ((plus - minus).unwrap() / (2.0 * h)).unwrap();
        let e = rel_err64(&ty, &fd);
        assert!(e < 1e-5, "activation {i} {act:?}: JVP relative error {e}");
        // A tangent of zeros gives a zero derivative.
        let (_, tz) = conv.forward_jvp(&x, &t.zeros_like().unwrap()).unwrap();
        assert_eq!(
            tz.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
            0.0
        );
    }
}

fn rel_err64(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let s = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    d / s.max(1e-30)
}
