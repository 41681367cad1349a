//! Shapes, parameter counts, conditioning, truncation, style mixing,
//! checkpoints, EMA and gradient flow of the cStyleGAN.

use agesynth_core::io::{load_json, load_varmap, save_varmap, sidecar_path};
use agesynth_core::{AgeGenerator, AgeGroup, ConditionalDiscriminator};
use agesynth_cstylegan::*;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

fn build(cfg: &CStyleGanConfig, seed: u64) -> (VarMap, Generator, VarMap, Discriminator) {
    let dev = Device::Cpu;
    let (gm, dm) = (VarMap::new(), VarMap::new());
    let g = Generator::new(cfg, seeded_var_builder(&gm, seed, DType::F32, &dev)).unwrap();
    let d =
        Discriminator::new(cfg, seeded_var_builder(&dm, seed + 1000, DType::F32, &dev)).unwrap();
    (gm, g, dm, d)
}

fn groups(ids: &[usize]) -> Vec<AgeGroup> {
    ids.iter().map(|&i| AgeGroup(i)).collect()
}

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

/// [`max_abs_diff`] of f64 tensors, in f64.
fn max_abs_diff64(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Asserts that `jvp`, a forward-mode derivative of `logits` at `x` along
/// `tangent` (f64), matches central differences to 1e-6 of its scale.
fn assert_jvp_matches_central_differences(
    logits: impl Fn(&Tensor) -> Tensor,
    x: &Tensor,
    tangent: &Tensor,
    jvp: &Tensor,
) {
    let h = 1e-6;
    let plus = logits(&(x + (tangent * h).unwrap()).unwrap());
    let minus = logits(&(x - (tangent * h).unwrap()).unwrap());
    let fd = ((plus - minus).unwrap() / (2.0 * h)).unwrap();
    let scale = fd
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let err = max_abs_diff64(&fd, jvp);
    assert!(
        scale > 1e-4 && err < 1e-6 * scale,
        "jvp {err} off (scale {scale})"
    );
}

fn quiet() -> GenerateOptions {
    GenerateOptions {
        noise: Noise::Off,
        ..Default::default()
    }
}

/// Parameter counts of every preset (trainable scalars, buffers excluded),
/// printed for the record and pinned so that architecture changes are
/// deliberate. Forward shapes are checked for the presets cheap enough to run.
#[test]
fn shapes_and_parameter_counts_per_preset() {
    let expected: [(&str, usize, usize); 4] = [
        ("tiny", 9_622, 11_521),
        ("cpu64", 801_992, 879_761),
        ("paper128", 19_773_853, 19_215_233),
        ("gpu256", 25_032_674, 24_004_161),
    ];
    let dev = Device::Cpu;
    let mut counts: Vec<(&str, usize, usize, usize, usize)> = Vec::new();
    for (name, g_params, d_params) in expected {
        let cfg = CStyleGanConfig::preset(name).unwrap();
        // candle's own (unseeded) init is the fastest way to allocate the big presets.
        let (gm, dm) = (VarMap::new(), VarMap::new());
        let g = Generator::new(
            &cfg,
            candle_nn::VarBuilder::from_varmap(&gm, DType::F32, &dev),
        )
        .unwrap();
        let d = Discriminator::new(
            &cfg,
            candle_nn::VarBuilder::from_varmap(&dm, DType::F32, &dev),
        )
        .unwrap();
        let (gp, dp) = (param_count(&gm).unwrap(), param_count(&dm).unwrap());
        println!(
            "{name}: G {gp} parameters, D {dp} parameters, {} ws",
            cfg.num_ws()
        );
        counts.push((name, gp, dp, g_params, d_params));
        if cfg.image_size <= 64 {
            let z = Tensor::randn(0f32, 1f32, (2, cfg.z_dim), &dev).unwrap();
            let gr = groups(&[1, 4]);
            let img = g.forward(&z, &gr, &GenerateOptions::default()).unwrap();
            let s = cfg.image_size;
            assert_eq!(img.dims(), &[2, 3, s, s], "{name}");
            assert_eq!(g.mapping(&z, &gr).unwrap().dims(), &[2, cfg.w_dim]);
            assert_eq!(d.forward(&img, &gr).unwrap().dims(), &[2], "{name}");
        }
    }
    for (name, gp, dp, g_params, d_params) in counts {
        assert_eq!((gp, dp), (g_params, d_params), "{name}");
    }
}

#[test]
fn configs_round_trip_through_json_and_bad_configs_are_rejected() {
    for name in CStyleGanConfig::PRESETS {
        let cfg = CStyleGanConfig::preset(name).unwrap();
        cfg.validate().unwrap();
        let back: CStyleGanConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }
    assert!(CStyleGanConfig::preset("huge").is_err());
    let mut bad = CStyleGanConfig::tiny();
    bad.image_size = 24;
    assert!(bad.validate().is_err());
    let mut bad = CStyleGanConfig::tiny();
    bad.g_channels.pop();
    assert!(Generator::new(
        &bad,
        candle_nn::VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu)
    )
    .is_err());
}

#[test]
fn changing_only_the_age_changes_the_image() {
    let cfg = CStyleGanConfig::tiny();
    let (_, g, _, d) = build(&cfg, 1);
    let z = seeded_latents(2, cfg.z_dim, 5, &Device::Cpu).unwrap();
    let a = g.forward(&z, &groups(&[0, 0]), &quiet()).unwrap();
    let a2 = g.forward(&z, &groups(&[0, 0]), &quiet()).unwrap();
    let b = g.forward(&z, &groups(&[5, 5]), &quiet()).unwrap();
    assert_eq!(max_abs_diff(&a, &a2), 0.0, "same inputs, same image");
    assert!(
        max_abs_diff(&a, &b) > 1e-3,
        "the age group must change the image"
    );
    // The same holds for the discriminator's conditioning.
    let la = d.forward(&a, &groups(&[0, 0])).unwrap();
    let lb = d.forward(&a, &groups(&[5, 5])).unwrap();
    assert!(max_abs_diff(&la, &lb) > 1e-4);
    // Through the trait: clamped to [-1, 1].
    let t = g.generate(&z, &groups(&[2, 3])).unwrap();
    let m = t
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(m <= 1.0);
    assert_eq!(g.image_size(), 16);
    assert_eq!(ConditionalDiscriminator::age_bins(&d).len(), 6);
}

#[test]
fn truncation_psi_zero_gives_the_group_mean_image_whatever_z() {
    let cfg = CStyleGanConfig::tiny();
    let (_, g, _, _) = build(&cfg, 2);
    g.compute_w_avg(64, 9).unwrap();
    let dev = Device::Cpu;
    let z1 = seeded_latents(3, cfg.z_dim, 1, &dev).unwrap();
    let z2 = seeded_latents(3, cfg.z_dim, 2, &dev).unwrap();
    let gr = groups(&[1, 1, 4]);
    let opts = GenerateOptions {
        truncation: 0.0,
        ..quiet()
    };
    let a = g.forward(&z1, &gr, &opts).unwrap();
    let b = g.forward(&z2, &gr, &opts).unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-5, "psi = 0 ignores z");
    // The rendered image is the synthesis of the group's mean w.
    let w_mean = g
        .w_avg()
        .index_select(&Tensor::new(&[1u32, 1, 4], &dev).unwrap(), 0)
        .unwrap();
    let direct = g
        .synthesis(&g.broadcast_ws(&w_mean).unwrap(), Noise::Off)
        .unwrap();
    assert!(max_abs_diff(&a, &direct) < 1e-5);
    // Different groups have different mean faces, and psi = 1 keeps z.
    assert!(max_abs_diff(&a.narrow(0, 0, 1).unwrap(), &a.narrow(0, 2, 1).unwrap()) > 1e-4);
    let c = g.forward(&z1, &gr, &quiet()).unwrap();
    let e = g.forward(&z2, &gr, &quiet()).unwrap();
    assert!(max_abs_diff(&c, &e) > 1e-3);
}

#[test]
fn running_mean_of_w_moves_per_group() {
    let cfg = CStyleGanConfig::tiny();
    let (_, g, _, _) = build(&cfg, 3);
    let w = Tensor::new(&[[1f32; 16], [3f32; 16]], &Device::Cpu).unwrap();
    g.update_w_avg_with(&w, &groups(&[2, 2]), 0.5).unwrap();
    let avg = g.w_avg().to_vec2::<f32>().unwrap();
    assert!((avg[2][0] - 1.0).abs() < 1e-6, "0.5·0 + 0.5·mean(1, 3)");
    assert_eq!(avg[0][0], 0.0, "absent groups keep their mean");

    // Built over plain tensors (not a VarMap), the running mean cannot be
    // updated: an error, not an update silently lost.
    let (vars, _, _, _) = build(&cfg, 4);
    let tensors: std::collections::HashMap<String, Tensor> = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap()))
        .collect();
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let frozen = Generator::new(&cfg, vb).unwrap();
    assert!(frozen.update_w_avg_with(&w, &groups(&[2, 2]), 0.5).is_err());
    assert!(frozen.compute_w_avg(4, 1).is_err());
}

#[test]
fn style_mixing_takes_layers_from_both_latents() {
    let cfg = CStyleGanConfig::tiny();
    let (_, g, _, _) = build(&cfg, 4);
    let dev = Device::Cpu;
    let k = g.num_ws();
    assert_eq!(k, 6);
    let w1 = Tensor::ones((2, cfg.w_dim), DType::F32, &dev).unwrap();
    let w2 = Tensor::zeros((2, cfg.w_dim), DType::F32, &dev).unwrap();
    let ws = g.mix_ws(&w1, &w2, 2).unwrap();
    assert_eq!(ws.dims(), &[2, k, cfg.w_dim]);
    let per_layer = ws.mean((0, 2)).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(per_layer, vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    assert!(g.mix_ws(&w1, &w2, 0).is_err());
    assert!(g.mix_ws(&w1, &w2, k).is_err());

    let z1 = seeded_latents(2, cfg.z_dim, 1, &dev).unwrap();
    let z2 = seeded_latents(2, cfg.z_dim, 2, &dev).unwrap();
    let gr = groups(&[0, 3]);
    let mixed = g
        .forward(
            &z1,
            &gr,
            &GenerateOptions {
                mixing: Some(StyleMix {
                    z: z2.clone(),
                    crossover: 3,
                }),
                ..quiet()
            },
        )
        .unwrap();
    assert_eq!(mixed.dims(), &[2, 3, 16, 16]);
    let plain1 = g.forward(&z1, &gr, &quiet()).unwrap();
    let plain2 = g.forward(&z2, &gr, &quiet()).unwrap();
    assert!(max_abs_diff(&mixed, &plain1) > 1e-4);
    assert!(max_abs_diff(&mixed, &plain2) > 1e-4);
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let cfg = CStyleGanConfig::tiny();
    let (gm, g, dm, d) = build(&cfg, 5);
    g.compute_w_avg(16, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gp = dir.path().join("g.safetensors");
    let dp = dir.path().join("d.safetensors");
    save_varmap(&gm, &gp, &cfg).unwrap();
    save_varmap(&dm, &dp, &cfg).unwrap();

    let back: CStyleGanConfig = load_json(sidecar_path(&gp)).unwrap();
    assert_eq!(back, cfg);
    let (gm2, g2, dm2, d2) = build(&back, 77);
    let z = seeded_latents(3, cfg.z_dim, 8, &Device::Cpu).unwrap();
    let gr = groups(&[0, 2, 5]);
    let opts = GenerateOptions {
        truncation: 0.7,
        noise: Noise::Seeded(11),
        age_free_layers: 0,
        mixing: None,
    };
    let before = g2.forward(&z, &gr, &opts).unwrap();
    load_varmap(&gm2, &gp).unwrap();
    load_varmap(&dm2, &dp).unwrap();
    let a = g.forward(&z, &gr, &opts).unwrap();
    let b = g2.forward(&z, &gr, &opts).unwrap();
    assert!(
        max_abs_diff(&a, &before) > 1e-3,
        "a differently seeded model differs"
    );
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert_eq!(
        max_abs_diff(&d.forward(&a, &gr).unwrap(), &d2.forward(&a, &gr).unwrap()),
        0.0
    );

    // Weights of another architecture are a typed error, not a panic.
    let other = CStyleGanConfig {
        g_channels: vec![8, 8, 8],
        ..cfg.clone()
    };
    let (gm3, _, _, _) = build(&other, 1);
    let err = load_varmap(&gm3, &gp).unwrap_err().to_string();
    assert!(err.contains("g.safetensors"), "{err}");
}

#[test]
fn seeded_init_is_reproducible_and_ema_interpolates() {
    let cfg = CStyleGanConfig::tiny();
    let (gm1, g1, _, _) = build(&cfg, 9);
    let (gm2, _, _, _) = build(&cfg, 9);
    let (gm3, g3, _, _) = build(&cfg, 10);
    let v1 = sorted_vars(&gm1).unwrap();
    let v2 = sorted_vars(&gm2).unwrap();
    assert!(v1
        .iter()
        .zip(&v2)
        .all(|(a, b)| a.0 == b.0 && max_abs_diff(a.1.as_tensor(), b.1.as_tensor()) == 0.0));
    let names: Vec<&str> = v1.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "mapping.age_embed",
        "mapping.layers.0.weight",
        "synthesis.const_input",
        "synthesis.blocks.1.conv0.conv.weight",
        "synthesis.blocks.1.conv0.conv.modulation.weight",
        "synthesis.blocks.2.to_rgb.bias",
        "w_avg",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    assert!(trainable_vars(&gm1)
        .unwrap()
        .iter()
        .all(|(n, _)| n != "w_avg"));

    // EMA with decay 0.5 lands halfway; buffers are copied.
    let w = Tensor::ones((1, cfg.w_dim), DType::F32, &Device::Cpu).unwrap();
    g3.update_w_avg_with(&w, &groups(&[1]), 0.0).unwrap();
    let ema = VarMap::new();
    let _ = Generator::new(&cfg, seeded_var_builder(&ema, 9, DType::F32, &Device::Cpu)).unwrap();
    ema_update(&ema, &gm3, 0.5).unwrap();
    let e = sorted_vars(&ema).unwrap();
    let l = sorted_vars(&gm3).unwrap();
    for ((name, ev), ((_, av), (_, bv))) in e.iter().zip(v1.iter().zip(&l)) {
        let want = if is_buffer(name) {
            bv.as_tensor().clone()
        } else {
            ((av.as_tensor() + bv.as_tensor()).unwrap() * 0.5).unwrap()
        };
        assert!(max_abs_diff(ev.as_tensor(), &want) < 1e-6, "{name}");
    }
    copy_vars(&ema, &gm3).unwrap();
    assert_eq!(
        max_abs_diff(
            sorted_vars(&ema).unwrap()[0].1.as_tensor(),
            l[0].1.as_tensor()
        ),
        0.0
    );
    assert!(ema_update(&ema, &gm3, 1.5).is_err());
    let _ = g1;
    assert!((ema_decay(32, 10_000.0) - 0.5f64.powf(0.0032)).abs() < 1e-12);
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    for block in [BlockKind::Modulated, BlockKind::AdaIn] {
        let cfg = CStyleGanConfig {
            block,
            ..CStyleGanConfig::tiny()
        };
        let (gm, g, dm, d) = build(&cfg, 6);
        let z = seeded_latents(4, cfg.z_dim, 8, &Device::Cpu).unwrap();
        let gr = groups(&[0, 1, 2, 3]);
        let img = g.forward(&z, &gr, &GenerateOptions::default()).unwrap();
        let loss = d
            .forward(&img, &gr)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, v) in trainable_vars(&gm)
            .unwrap()
            .iter()
            .chain(&trainable_vars(&dm).unwrap())
        {
            let gr = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{block:?}: no gradient for {name}"));
            let s = gr
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                s.is_finite() && s > 0.0,
                "{block:?}: zero or non-finite gradient for {name}"
            );
        }
    }
}

#[test]
fn adain_block_option_builds_and_runs() {
    let cfg = CStyleGanConfig {
        block: BlockKind::AdaIn,
        upsample: Upsample::Nearest,
        ..CStyleGanConfig::tiny()
    };
    let (gm, g, _, _) = build(&cfg, 7);
    let z = seeded_latents(2, cfg.z_dim, 8, &Device::Cpu).unwrap();
    let a = g.forward(&z, &groups(&[0, 0]), &quiet()).unwrap();
    let b = g.forward(&z, &groups(&[4, 4]), &quiet()).unwrap();
    assert_eq!(a.dims(), &[2, 3, 16, 16]);
    assert!(max_abs_diff(&a, &b) > 1e-3);
    assert!(sorted_vars(&gm)
        .unwrap()
        .iter()
        .any(|(n, _)| n == "synthesis.blocks.1.conv0.style_scale.weight"));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let cfg = CStyleGanConfig::tiny();
    let (_, g, _, d) = build(&cfg, 8);
    let dev = Device::Cpu;
    let z = seeded_latents(2, cfg.z_dim, 8, &dev).unwrap();
    assert!(
        g.forward(&z, &groups(&[0]), &quiet()).is_err(),
        "group count"
    );
    assert!(
        g.forward(&z, &groups(&[0, 6]), &quiet()).is_err(),
        "group out of range"
    );
    let bad_z = Tensor::zeros((2, cfg.z_dim + 1), DType::F32, &dev).unwrap();
    assert!(g.forward(&bad_z, &groups(&[0, 1]), &quiet()).is_err());
    let bad_img = Tensor::zeros((2, 3, 8, 8), DType::F32, &dev).unwrap();
    assert!(d.forward(&bad_img, &groups(&[0, 1])).is_err());
    let ws = Tensor::zeros((2, 3, cfg.w_dim), DType::F32, &dev).unwrap();
    assert!(g.synthesis(&ws, Noise::Off).is_err());
}

/// With `age_free_layers = k` the first `k` synthesis layers read the mean
/// of the latent's `w` over all groups, the rest the group's own `w`.
#[test]
fn age_free_layers_share_the_coarse_styles_across_groups() {
    let cfg = CStyleGanConfig::tiny();
    let (_gm, g, _dm, _d) = build(&cfg, 11);
    let dev = Device::Cpu;
    let z = seeded_latents(2, cfg.z_dim, 5, &dev).unwrap();
    let n_ws = g.num_ws();
    let k = 2;
    // The age-free w is the mean over the groups' w.
    let ws: Vec<Tensor> = (0..cfg.num_groups())
        .map(|t| g.mapping(&z, &groups(&[t, t])).unwrap())
        .collect();
    let mean = (Tensor::stack(&ws, 0).unwrap().sum(0).unwrap() / cfg.num_groups() as f64).unwrap();
    assert!(max_abs_diff(&g.age_free_w(&z, 1.0).unwrap(), &mean) < 1e-5);
    // The forward pass is the synthesis of [free × k, own × (n − k)].
    let opts = GenerateOptions {
        age_free_layers: k,
        ..quiet()
    };
    let t = groups(&[5, 5]);
    let got = g.forward(&z, &t, &opts).unwrap();
    let free = g.broadcast_ws(&mean).unwrap().narrow(1, 0, k).unwrap();
    let own = g
        .broadcast_ws(&ws[5])
        .unwrap()
        .narrow(1, k, n_ws - k)
        .unwrap();
    let want = g
        .synthesis(&Tensor::cat(&[free, own], 1).unwrap(), Noise::Off)
        .unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-5);
    // It changes the picture, and 0 is the plain forward pass.
    let plain = g.forward(&z, &t, &quiet()).unwrap();
    assert!(max_abs_diff(&got, &plain) > 1e-4);
    // Truncation pulls the free w towards the mean of the groups' w̄.
    g.compute_w_avg(64, 1).unwrap();
    let avg = g.w_avg().mean_keepdim(0).unwrap();
    let half = g.age_free_w(&z, 0.5).unwrap();
    let want_half = (avg.broadcast_add(
        &((&mean - avg.broadcast_as(mean.shape()).unwrap()).unwrap() * 0.5).unwrap(),
    ))
    .unwrap();
    assert!(max_abs_diff(&half, &want_half) < 1e-5);
    // All layers age-free is refused (the age would reach nothing).
    let all = GenerateOptions {
        age_free_layers: n_ws,
        ..quiet()
    };
    assert!(g.forward(&z, &t, &all).is_err());
}

/// With `age_free_from_group = f` the rows of groups below `f` keep their
/// own `w` in the age-free layers too (a child's head shape is a coarse
/// style), while older rows in the same batch read the age-free `w`.
#[test]
fn age_free_from_group_keeps_the_young_groups_coarse_styles() {
    let k = 2;
    let cfg = CStyleGanConfig {
        age_free_layers: k,
        age_free_from_group: 1,
        ..CStyleGanConfig::tiny()
    };
    cfg.validate().unwrap();
    let (_gm, g, _dm, _d) = build(&cfg, 11);
    let dev = Device::Cpu;
    let z = seeded_latents(2, cfg.z_dim, 5, &dev).unwrap();
    let n_ws = g.num_ws();
    let mean = g.age_free_w(&z, 1.0).unwrap();
    // Row 0 at 0–9, row 1 at 50+: one batch, two kinds of coarse styles.
    let t = groups(&[0, 5]);
    let got = g.forward(&z, &t, &quiet()).unwrap();
    let own = g.broadcast_ws(&g.mapping(&z, &t).unwrap()).unwrap();
    let free = g.broadcast_ws(&mean).unwrap();
    let young = g.synthesis(&own, Noise::Off).unwrap();
    let old_ws = Tensor::cat(
        &[
            free.narrow(1, 0, k).unwrap(),
            own.narrow(1, k, n_ws - k).unwrap(),
        ],
        1,
    )
    .unwrap();
    let old = g.synthesis(&old_ws, Noise::Off).unwrap();
    let row = |x: &Tensor, i: usize| x.narrow(0, i, 1).unwrap();
    assert!(max_abs_diff(&row(&got, 0), &row(&young, 0)) < 1e-5);
    assert!(max_abs_diff(&row(&got, 1), &row(&old, 1)) < 1e-5);
    // The two forms differ, so the assertions above could fail.
    assert!(max_abs_diff(&row(&young, 0), &row(&old, 0)) > 1e-4);
    // The option needs age-free layers, and a group that exists.
    let mut bad = CStyleGanConfig {
        age_free_from_group: 1,
        ..CStyleGanConfig::tiny()
    };
    assert!(bad.validate().is_err());
    bad.age_free_layers = k;
    bad.age_free_from_group = bad.num_groups();
    assert!(bad.validate().is_err());
}

/// As a realism critic the discriminator gives its own logits where the
/// gender is known, their mean over the two genders where it is not, and
/// ignores genders when it has none; a discriminator saved with its config
/// loads back as one.
#[test]
fn the_discriminator_as_a_realism_critic() {
    use agesynth_core::{Gender, RealismCritic};
    let cfg = gendered_tiny();
    let (_gm, _g, dm, d) = build(&cfg, 4);
    let dev = Device::Cpu;
    let s = cfg.image_size;
    // Seeded images (candle's own generator cannot be seeded; the
    // tolerances below depend on the values).
    let x = seeded_latents(4, 3 * s * s, 31, &dev)
        .unwrap()
        .reshape((4, 3, s, s))
        .unwrap();
    let t = groups(&[0, 1, 2, 5]);
    let known = [Gender::Female, Gender::Male, Gender::Male, Gender::Female];
    let asked: Vec<Option<Gender>> = known.iter().map(|&g| Some(g)).collect();
    let got = d.realism_logits(&x, &t, &asked).unwrap();
    let want = d.forward_given(&x, &t, Some(&known)).unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-5);
    // Unknown: the mean of the two genders' logits.
    let unknown = d.realism_logits(&x, &t, &[None; 4]).unwrap();
    let m = d.forward_given(&x, &t, Some(&[Gender::Male; 4])).unwrap();
    let f = d.forward_given(&x, &t, Some(&[Gender::Female; 4])).unwrap();
    let mean = ((&m + &f).unwrap() * 0.5).unwrap();
    assert!(max_abs_diff(&unknown, &mean) < 1e-5);
    assert!(
        max_abs_diff(&m, &f) > 1e-6,
        "the genders must differ for the test to mean anything"
    );
    assert!(d.realism_logits(&x, &t, &asked[..2]).is_err());
    // Without gender: the plain forward pass, genders ignored.
    let (_gm, _g, _dm, plain) = build(&CStyleGanConfig::tiny(), 4);
    let got = plain.realism_logits(&x, &t, &asked).unwrap();
    assert!(max_abs_diff(&got, &plain.forward(&x, &t).unwrap()) < 1e-6);
    // Saved with its config as the sidecar, it loads as the same critic.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("critic.safetensors");
    save_varmap(&dm, &p, &cfg).unwrap();
    assert!(sidecar_path(&p).is_file());
    let (back, _) = load_discriminator(&p, &dev).unwrap();
    let again = back.realism_logits(&x, &t, &asked).unwrap();
    assert!(max_abs_diff(&again, &want) < 1e-5);
}

/// Behind `ConditionalDiscriminator` (no genders) a gender-conditioned
/// discriminator judges every image with its gender unknown: the mean of
/// the two genders' logits, with a forward-mode derivative (what R1 uses)
/// that matches central differences in f64.
#[test]
fn a_gendered_discriminator_over_groups_alone_judges_gender_unknown() {
    use agesynth_core::{Gender, RealismCritic};
    let cfg = gendered_tiny();
    let dev = Device::Cpu;
    let d = Discriminator::new(
        &cfg,
        seeded_var_builder(&VarMap::new(), 6, DType::F64, &dev),
    )
    .unwrap();
    let s = cfg.image_size;
    // Seeded point and tangent (candle's own generator cannot be seeded;
    // the central differences below depend on the values).
    let draw = |seed| {
        seeded_latents(4, 3 * s * s, seed, &dev)
            .unwrap()
            .reshape((4, 3, s, s))
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
    };
    let (x, tangent) = (draw(32), draw(33));
    let t = groups(&[0, 5, 3, 1]);
    let got = ConditionalDiscriminator::logits(&d, &x, &t).unwrap();
    let m = d.forward_given(&x, &t, Some(&[Gender::Male; 4])).unwrap();
    let f = d.forward_given(&x, &t, Some(&[Gender::Female; 4])).unwrap();
    let mean = ((&m + &f).unwrap() * 0.5).unwrap();
    let diff = max_abs_diff64;
    assert!(diff(&got, &mean) < 1e-12);
    assert!(
        diff(&m, &f) > 1e-9,
        "the genders must differ for this to mean anything"
    );
    assert!(diff(&got, &d.realism_logits(&x, &t, &[None; 4]).unwrap()) < 1e-12);
    let (l, jvp) = d.logits_jvp(&x, &tangent, &t).unwrap();
    assert!(diff(&l, &mean) < 1e-12);
    assert_jvp_matches_central_differences(
        |y| ConditionalDiscriminator::logits(&d, y, &t).unwrap(),
        &x,
        &tangent,
        &jvp,
    );
    let bad = Tensor::zeros((4, 3, s, s + 1), DType::F64, &dev).unwrap();
    assert!(d.logits_jvp(&x, &bad, &t).is_err());
}

fn gendered_tiny() -> CStyleGanConfig {
    CStyleGanConfig {
        gender_conditioned: true,
        ..CStyleGanConfig::tiny()
    }
}

/// A gender-conditioned model reads each latent's gender from the sign of
/// its first coordinate, keeps running means per (gender, group) and has a
/// discriminator that needs the genders.
#[test]
fn a_gender_conditioned_model_reads_the_latents_gender() {
    use agesynth_core::Gender;
    let cfg = gendered_tiny();
    assert_eq!(cfg.num_conditions(), 12);
    let (_gm, g, _dm, d) = build(&cfg, 21);
    let dev = Device::Cpu;
    let z = seeded_latents(3, cfg.z_dim, 2, &dev).unwrap();
    let female = set_latent_gender(&z, Gender::Female).unwrap();
    let male = set_latent_gender(&z, Gender::Male).unwrap();
    assert_eq!(
        g.latent_genders(&female).unwrap(),
        Some(vec![Gender::Female; 3])
    );
    assert_eq!(
        g.latent_genders(&male).unwrap(),
        Some(vec![Gender::Male; 3])
    );
    // Only the first coordinate's sign changes.
    let rest = |t: &Tensor| t.narrow(1, 1, cfg.z_dim - 1).unwrap();
    assert_eq!(max_abs_diff(&rest(&female), &rest(&male)), 0.0);
    // Rows of the running means: gender · groups + group.
    let t = groups(&[0, 5, 3]);
    assert_eq!(g.conditions(&female, &t).unwrap(), vec![6, 11, 9]);
    assert_eq!(g.conditions(&male, &t).unwrap(), vec![0, 5, 3]);
    assert_eq!(g.w_avg().dims(), &[12, cfg.w_dim]);
    g.compute_w_avg(32, 4).unwrap();
    // The renders differ by gender, and the discriminator needs genders.
    let a = g.forward(&female, &t, &quiet()).unwrap();
    let b = g.forward(&male, &t, &quiet()).unwrap();
    assert!(max_abs_diff(&a, &b) > 1e-4);
    assert!(d.forward(&a, &t).is_err());
    let fs = vec![Gender::Female; 3];
    let ms = vec![Gender::Male; 3];
    let lf = d.forward_given(&a, &t, Some(&fs)).unwrap();
    let lm = d.forward_given(&a, &t, Some(&ms)).unwrap();
    assert_eq!(lf.dims(), &[3]);
    assert!(max_abs_diff(&lf, &lm) > 1e-6);
    assert!(d.forward_given(&a, &t, Some(&fs[..2])).is_err());
    // Its forward-mode derivative (what R1 uses) matches central
    // differences, in f64.
    let d64 = Discriminator::new(
        &cfg,
        seeded_var_builder(&VarMap::new(), 5, DType::F64, &dev),
    )
    .unwrap();
    let t4 = groups(&[0, 5, 3, 1]);
    let g4 = [Gender::Female, Gender::Male, Gender::Female, Gender::Male];
    let view = d64.given_genders(&g4);
    let z4 = seeded_latents(4, cfg.z_dim, 8, &dev).unwrap();
    let x = g
        .forward(&z4, &t4, &quiet())
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let tangent = (x.flip(&[0]).unwrap() * 0.5).unwrap();
    let (l, jvp) = view.logits_jvp(&x, &tangent, &t4).unwrap();
    let direct = d64.forward_given(&x, &t4, Some(&g4)).unwrap();
    assert!(max_abs_diff64(&l, &direct) < 1e-12);
    assert_jvp_matches_central_differences(|y| view.logits(y, &t4).unwrap(), &x, &tangent, &jvp);
    // A model without gender refuses genders.
    let (_gm, _g, _dm, plain) = build(&CStyleGanConfig::tiny(), 3);
    assert!(plain.forward_given(&a, &t, Some(&fs)).is_err());
    // Configs written before these fields read as no gender, no split.
    let mut old = serde_json::to_value(CStyleGanConfig::cpu64()).unwrap();
    old.as_object_mut().unwrap().remove("gender_conditioned");
    old.as_object_mut().unwrap().remove("age_free_layers");
    old.as_object_mut().unwrap().remove("age_free_from_group");
    let back: CStyleGanConfig = serde_json::from_value(old).unwrap();
    assert_eq!(back, CStyleGanConfig::cpu64());
    let mut bad = CStyleGanConfig::tiny();
    bad.age_free_layers = bad.num_ws();
    assert!(bad.validate().is_err());
}
