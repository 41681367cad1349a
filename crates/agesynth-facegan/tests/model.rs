//! Shapes per preset, both bottleneck modes, conditioning and bad input.

use agesynth_core::{AgeGenerator, AgeGroup, ConditionalDiscriminator};
use agesynth_facegan::{BottleneckAge, Discriminator, FaceGanConfig, Generator, ResidualSpace};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn build(cfg: &FaceGanConfig) -> (Generator, Discriminator, VarMap, VarMap) {
    let (gv, dv) = (VarMap::new(), VarMap::new());
    let g = Generator::new(cfg, VarBuilder::from_varmap(&gv, DType::F32, &Device::Cpu)).unwrap();
    let d =
        Discriminator::new(cfg, VarBuilder::from_varmap(&dv, DType::F32, &Device::Cpu)).unwrap();
    (g, d, gv, dv)
}

fn images(n: usize, s: usize) -> Tensor {
    let v: Vec<f32> = (0..n * 3 * s * s)
        .map(|i| ((i as f32) * 0.37).sin() * 0.8)
        .collect();
    Tensor::from_vec(v, (n, 3, s, s), &Device::Cpu).unwrap()
}

/// The largest absolute difference between two tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn shapes_per_preset() {
    for name in FaceGanConfig::PRESETS {
        let cfg = FaceGanConfig::preset(name).unwrap();
        let s = cfg.image_size;
        let (g, d, gv, _) = build(&cfg);
        let x = images(1, s);
        let y = g.generate(&x, &[AgeGroup(3)]).unwrap();
        assert_eq!(y.dims(), &[1, 3, s, s], "{name}");
        let lo = y.min_all().unwrap().to_scalar::<f32>().unwrap();
        let hi = y.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(lo >= -1.0 && hi <= 1.0, "{name}: output in [{lo}, {hi}]");
        let out = d.forward(&y, &[AgeGroup(3)]).unwrap();
        let p = cfg.patch_size();
        assert_eq!(out.logits.dims(), &[1, 1, p, p], "{name}");
        assert_eq!(out.class_logits.unwrap().dims(), &[1, 6], "{name}");
        assert_eq!(g.image_size(), s);
        let params: usize = gv.all_vars().iter().map(|v| v.elem_count()).sum();
        eprintln!("{name}: generator {params} parameters, patches {p}x{p}");
        assert!(params > 0);
    }
}

#[test]
fn both_bottleneck_modes_respond_to_the_target_age() {
    for mode in [BottleneckAge::Modulation, BottleneckAge::Concat] {
        for residual in [true, false] {
            let cfg = FaceGanConfig {
                bottleneck_age: mode,
                residual_output: residual,
                ..FaceGanConfig::tiny()
            };
            let (g, d, gv, _) = build(&cfg);
            let names: Vec<String> = gv.data().lock().unwrap().keys().cloned().collect();
            match mode {
                BottleneckAge::Modulation => {
                    assert!(names.iter().any(|n| n.starts_with("res.0.film")));
                    assert!(!names.iter().any(|n| n.starts_with("age_fuse")));
                }
                BottleneckAge::Concat => {
                    assert!(names.iter().any(|n| n.starts_with("age_fuse")));
                    assert!(!names.iter().any(|n| n.contains("film")));
                }
            }
            let x = images(2, 16);
            let a = g.forward(&x, &[AgeGroup(0), AgeGroup(0)]).unwrap();
            let b = g.forward(&x, &[AgeGroup(0), AgeGroup(5)]).unwrap();
            let diff = |u: &Tensor, v: &Tensor| {
                (u - v)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            // Row 0 has the same target in both calls: identical; row 1 differs.
            assert_eq!(diff(&a.get(0).unwrap(), &b.get(0).unwrap()), 0.0);
            assert!(diff(&a.get(1).unwrap(), &b.get(1).unwrap()) > 1e-4);
            let all = g.all_groups(&x).unwrap();
            assert_eq!(all.dims(), &[2, 6, 3, 16, 16]);
            // The discriminator's logits depend on the claimed group.
            let la = d.logits(&x, &[AgeGroup(0), AgeGroup(0)]).unwrap();
            let lb = d.logits(&x, &[AgeGroup(1), AgeGroup(0)]).unwrap();
            assert!(diff(&la.get(0).unwrap(), &lb.get(0).unwrap()) > 1e-6);
            assert_eq!(diff(&la.get(1).unwrap(), &lb.get(1).unwrap()), 0.0);
        }
    }
}

#[test]
fn residual_output_with_zero_change_is_the_input() {
    let cfg = FaceGanConfig::tiny();
    let (g, _, gv, _) = build(&cfg);
    // Zero the last layer: d = 0, so out = tanh(atanh(x)) = x.
    for (name, var) in gv.data().lock().unwrap().iter() {
        if name.starts_with("to_rgb") {
            var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
        }
    }
    let x = images(2, 16);
    let y = g.forward(&x, &[AgeGroup(1), AgeGroup(4)]).unwrap();
    let err = max_abs_diff(&y, &x);
    assert!(err < 1e-5, "max |out - in| = {err}");
}

#[test]
fn bad_input_is_a_typed_error() {
    let cfg = FaceGanConfig::tiny();
    let (g, d, _, _) = build(&cfg);
    let wrong_size = images(1, 8);
    let err = g
        .forward(&wrong_size, &[AgeGroup(0)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("(N, 3, 16, 16)"), "{err}");
    assert!(g.forward(&images(2, 16), &[AgeGroup(0)]).is_err());
    assert!(g.forward(&images(1, 16), &[AgeGroup(9)]).is_err());
    assert!(d
        .forward(&images(1, 16), &[AgeGroup(0), AgeGroup(1)])
        .is_err());
    let bad = FaceGanConfig {
        image_size: 18,
        ..FaceGanConfig::tiny()
    };
    assert!(Generator::new(
        &bad,
        VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu)
    )
    .is_err());
    assert!(FaceGanConfig::preset("nope").is_err());
}

#[test]
fn config_round_trips_through_json() {
    for name in FaceGanConfig::PRESETS {
        let cfg = FaceGanConfig::preset(name).unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        let back: FaceGanConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(cfg, back);
    }
}

#[test]
fn full_res_skip_zero_drops_the_stems_features_from_the_last_level() {
    let cfg = FaceGanConfig::tiny();
    let (g, _, gv, _) = build(&cfg);
    let vb = || VarBuilder::from_varmap(&gv, DType::F32, &Device::Cpu);
    let half = FaceGanConfig {
        full_res_skip: 0.5,
        ..cfg.clone()
    };
    let none = FaceGanConfig {
        full_res_skip: 0.0,
        ..cfg.clone()
    };
    let (g_half, g_none) = (
        Generator::new(&half, vb()).unwrap(),
        Generator::new(&none, vb()).unwrap(),
    );
    let x = images(2, 16);
    let t = [AgeGroup(1), AgeGroup(4)];
    let (full, y_half, y_none) = (
        g.forward(&x, &t).unwrap(),
        g_half.forward(&x, &t).unwrap(),
        g_none.forward(&x, &t).unwrap(),
    );
    assert!(
        max_abs_diff(&full, &y_none) > 1e-4,
        "the skip changes nothing"
    );
    assert!(max_abs_diff(&full, &y_half) > 1e-4 && max_abs_diff(&y_half, &y_none) > 1e-4);

    // Scaling the skip by s is scaling the skip half of the last level's
    // fuse weights by s: check both scales against the full network.
    let c0 = cfg.g_channels[0];
    let fuse = gv
        .data()
        .lock()
        .unwrap()
        .get("up.0.fuse.weight")
        .expect("the full-resolution fuse conv")
        .clone();
    let w = fuse.as_tensor().copy().unwrap();
    assert_eq!(w.dims(), &[c0, 2 * c0, 3, 3]);
    for (scale, expected) in [(0.5, &y_half), (0.0, &y_none)] {
        let scaled = Tensor::cat(
            &[
                w.narrow(1, 0, c0).unwrap(),
                (w.narrow(1, c0, c0).unwrap() * scale).unwrap(),
            ],
            1,
        )
        .unwrap();
        fuse.set(&scaled).unwrap();
        let y = g.forward(&x, &t).unwrap();
        assert!(max_abs_diff(&y, expected) < 1e-5, "scale {scale}");
    }
    fuse.set(&w).unwrap();
}

#[test]
fn full_res_skip_is_validated_and_old_configs_read_as_one() {
    let mut json = serde_json::to_value(FaceGanConfig::cpu64()).unwrap();
    json.as_object_mut().unwrap().remove("full_res_skip");
    let old: FaceGanConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.full_res_skip, 1.0);
    assert_eq!(old, FaceGanConfig::cpu64());
    for bad in [1.5, -0.1, f64::NAN] {
        let cfg = FaceGanConfig {
            full_res_skip: bad,
            ..FaceGanConfig::tiny()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("full_res_skip"), "{bad}: {err}");
    }
}

/// A tiny generator in `space` whose change is the same `d` at every pixel
/// and channel (see [`constant_rgb_change`]).
fn constant_change(space: ResidualSpace, d: f32) -> Generator {
    let cfg = FaceGanConfig {
        residual_space: space,
        ..FaceGanConfig::tiny()
    };
    constant_rgb_change(&cfg, [d; 3])
}

/// A generator of `cfg` whose change is `d` at every pixel (the last
/// conv's weights zero, its bias `d`).
fn constant_rgb_change(cfg: &FaceGanConfig, d: [f32; 3]) -> Generator {
    cfg.validate().unwrap();
    let (g, _, gv, _) = build(cfg);
    for (name, var) in gv.data().lock().unwrap().iter() {
        if name.starts_with("to_rgb") {
            let value = if name.ends_with("bias") {
                Tensor::new(&d, &Device::Cpu).unwrap()
            } else {
                var.as_tensor().zeros_like().unwrap()
            };
            var.set(&value).unwrap();
        }
    }
    g
}

/// A 16×16 image whose every pixel is the colour `rgb`.
fn flat(rgb: [f32; 3]) -> Tensor {
    let v: Vec<f32> = rgb.iter().flat_map(|&c| [c; 256]).collect();
    Tensor::from_vec(v, (1, 3, 16, 16), &Device::Cpu).unwrap()
}

/// The first pixel's three channels.
fn pixel(t: &Tensor) -> [f32; 3] {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    [v[0], v[256], v[512]]
}

#[test]
fn luma_space_moves_a_pixels_channels_alike() {
    // A near-black JPEG hair pixel: red at 1, green at 10, blue at 4 of 255.
    let rgb = [1.0f32 / 127.5 - 1.0, 10.0 / 127.5 - 1.0, 4.0 / 127.5 - 1.0];
    let x = flat(rgb);
    let t = [AgeGroup(5)];

    // No change is the input, in either space.
    for space in [ResidualSpace::Channel, ResidualSpace::Luma] {
        let y = constant_change(space, 0.0).forward(&x, &t).unwrap();
        assert!(max_abs_diff(&y, &x) < 1e-5, "{space:?}");
    }

    // A grey change of 1 in luma space: every channel moves by the change
    // of a channel at the pixel's luma, worked by hand.
    let l = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    let step = (l.atanh() + 1.0).tanh() - l;
    let y = pixel(
        &constant_change(ResidualSpace::Luma, 1.0)
            .forward(&x, &t)
            .unwrap(),
    );
    for c in 0..3 {
        let want = (rgb[c] + step).clamp(-1.0, 1.0);
        assert!(
            (y[c] - want).abs() < 1e-5,
            "channel {c}: {} vs {want}",
            y[c]
        );
    }
    let moved: Vec<f32> = (0..3).map(|c| y[c] - rgb[c]).collect();
    let spread = moved.iter().cloned().fold(f32::MIN, f32::max)
        - moved.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread < 1e-5,
        "luma space coloured a grey change: {moved:?}"
    );

    // The same change per channel colours the pixel: the saturated red
    // moves far less than green.
    let y = pixel(
        &constant_change(ResidualSpace::Channel, 1.0)
            .forward(&x, &t)
            .unwrap(),
    );
    let (red, green) = (y[0] - rgb[0], y[1] - rgb[1]);
    assert!(green - red > 0.1, "red moved {red}, green {green}");
}

#[test]
fn luma_space_clamps_to_the_image_range_and_old_configs_read_as_channel() {
    // A bright, saturated pixel pushed up: the output stays in [-1, 1].
    let x = flat([0.999, 0.2, -0.5]);
    let y = constant_change(ResidualSpace::Luma, 3.0)
        .forward(&x, &[AgeGroup(0)])
        .unwrap();
    let hi = y.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(hi <= 1.0, "{hi}");
    assert_eq!(pixel(&y)[0], 1.0);

    let mut json = serde_json::to_value(FaceGanConfig::cpu64()).unwrap();
    json.as_object_mut().unwrap().remove("residual_space");
    let old: FaceGanConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.residual_space, ResidualSpace::Channel);
    let luma = FaceGanConfig {
        residual_space: ResidualSpace::Luma,
        ..FaceGanConfig::cpu64()
    };
    let back: FaceGanConfig = serde_json::from_str(&serde_json::to_string(&luma).unwrap()).unwrap();
    assert_eq!(back, luma);
}

#[test]
fn luma_space_gradient_matches_finite_differences() {
    let cfg = FaceGanConfig {
        residual_space: ResidualSpace::Luma,
        ..FaceGanConfig::tiny()
    };
    let (g, _, gv, _) = build(&cfg);
    // The change is the last conv's bias alone (its weights zero), so the
    // test does not depend on the random initialisation.
    let bias = gv
        .data()
        .lock()
        .unwrap()
        .get("to_rgb.bias")
        .expect("the last conv's bias")
        .clone();
    for (name, var) in gv.data().lock().unwrap().iter() {
        if name == "to_rgb.weight" {
            var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
        }
    }
    bias.set(&Tensor::new(&[0.03f32, -0.02, 0.01], &Device::Cpu).unwrap())
        .unwrap();
    // Dark, unevenly saturated pixels and ordinary ones; the outputs stay
    // off the ±1 clamp, where a finite difference would straddle a kink.
    let x = (images(1, 16) * 1.2).unwrap().clamp(-0.995, 0.995).unwrap();
    let t = [AgeGroup(4)];
    let top = g.forward(&x, &t).unwrap().abs().unwrap().max_all().unwrap();
    assert!(top.to_scalar::<f32>().unwrap() < 0.99);
    let loss = |g: &Generator| g.forward(&x, &t).unwrap().sqr().unwrap().sum_all().unwrap();
    let grads = loss(&g).backward().unwrap();
    let analytic = grads.get(&bias).unwrap().to_vec1::<f32>().unwrap();
    let b0 = bias.as_tensor().to_vec1::<f32>().unwrap();
    let eps = 2e-3f32;
    for c in 0..3 {
        let at = |delta: f32| {
            let mut b = b0.clone();
            b[c] += delta;
            bias.set(&Tensor::new(b.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            loss(&g).to_scalar::<f32>().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        bias.set(&Tensor::new(b0.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
        let tol = 0.02 * numeric.abs().max(1.0);
        assert!(
            (analytic[c] - numeric).abs() < tol,
            "channel {c}: analytic {} numeric {numeric}",
            analytic[c]
        );
        assert!(analytic[c].abs() > 1e-3, "channel {c}: no gradient");
    }
}

#[test]
fn change_chroma_scales_the_colour_part_of_the_change() {
    let with = |space, chroma| {
        let cfg = FaceGanConfig {
            residual_space: space,
            change_chroma: chroma,
            ..FaceGanConfig::tiny()
        };
        // A change of (0.6, 0, -0.3) everywhere: grey part 0.1, colour
        // part (0.5, -0.1, -0.4).
        constant_rgb_change(&cfg, [0.6, 0.0, -0.3])
    };
    let x = flat([0.2, -0.1, 0.4]);
    let t = [AgeGroup(2)];
    let atanh = |v: f32| v.atanh();
    for (chroma, d) in [
        (1.0, [0.6f32, 0.0, -0.3]),
        (0.5, [0.35, 0.05, -0.1]),
        (0.0, [0.1, 0.1, 0.1]),
    ] {
        // Per channel: tanh(atanh(x) + d).
        let y = pixel(
            &with(ResidualSpace::Channel, chroma)
                .forward(&x, &t)
                .unwrap(),
        );
        let rgb = [0.2f32, -0.1, 0.4];
        for c in 0..3 {
            let want = (atanh(rgb[c]) + d[c]).tanh();
            assert!((y[c] - want).abs() < 1e-5, "{chroma} channel {c}");
        }
        // At the luma: with no colour part every channel moves alike.
        let y = pixel(&with(ResidualSpace::Luma, chroma).forward(&x, &t).unwrap());
        let l = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
        for c in 0..3 {
            let want = rgb[c] + (atanh(l) + d[c]).tanh() - l;
            assert!((y[c] - want).abs() < 1e-5, "{chroma} luma channel {c}");
        }
    }
    for bad in [-0.5, 1.5, f64::NAN] {
        let c = FaceGanConfig {
            change_chroma: bad,
            ..FaceGanConfig::tiny()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("change_chroma"), "{bad}: {err}");
    }
    let mut json = serde_json::to_value(FaceGanConfig::cpu64()).unwrap();
    json.as_object_mut().unwrap().remove("change_chroma");
    let old: FaceGanConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.change_chroma, 1.0);
}
