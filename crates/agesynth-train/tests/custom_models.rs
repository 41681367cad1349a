//! The FaceGAN task trains any generator and discriminator behind the core
//! traits: this test defines its own (a per-pixel mixing generator and a
//! one-layer projection discriminator with its own forward-mode derivative)
//! and trains them, R1 included, through `FaceGanTask::with_models`.

use std::sync::Arc;

use agesynth_core::{AgeBins, AgeGenerator, AgeGroup, ConditionalDiscriminator, FaceImage, Result};
use agesynth_facegan::FaceGanConfig;
use agesynth_train::{
    facegan::FaceGanModels, FaceGanTask, FaceGanTrainConfig, RealFaces, TrainTask,
};
use candle_core::{Device, Tensor, D};
use candle_nn::VarBuilder;

const S: usize = 16;

/// `tanh(x + W x + b_group)` per pixel: the simplest age-conditioned
/// image-to-image generator.
struct MixGenerator {
    w: Tensor,
    b: Tensor,
    bins: AgeBins,
}

impl MixGenerator {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(MixGenerator {
            w: vb.get_with_hints((3, 3, 1, 1), "mix", candle_nn::Init::Const(0.0))?,
            b: vb.get_with_hints(
                (6, 3),
                "age",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.1,
                },
            )?,
            bins: AgeBins::default(),
        })
    }
}

impl AgeGenerator for MixGenerator {
    fn generate(&self, input: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        let idx = self.bins.index_tensor(targets, input.device())?;
        let b = self.b.index_select(&idx, 0)?.unsqueeze(2)?.unsqueeze(3)?;
        let mixed = input.conv2d(&self.w, 0, 1, 1, 1)?;
        Ok((input + mixed)?.broadcast_add(&b)?.tanh()?)
    }
    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }
    fn image_size(&self) -> usize {
        S
    }
}

/// `mean(leaky(conv(x))) · (v + e_group)`: one stride-2 layer and a
/// projection on the claimed group, with its JVP written out.
struct ProjDiscriminator {
    conv: Tensor,
    bias: Tensor,
    v: Tensor,
    embed: Tensor,
    bins: AgeBins,
    with_jvp: bool,
}

impl ProjDiscriminator {
    fn new(vb: VarBuilder, with_jvp: bool) -> Result<Self> {
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.3,
        };
        Ok(ProjDiscriminator {
            conv: vb.get_with_hints((8, 3, 3, 3), "conv", init)?,
            bias: vb.get_with_hints(8, "bias", candle_nn::Init::Const(0.0))?,
            v: vb.get_with_hints(8, "out", init)?,
            embed: vb.get_with_hints((6, 8), "embed", init)?,
            bins: AgeBins::default(),
            with_jvp,
        })
    }

    /// Features before the activation, and the projection vector per row.
    fn pre(&self, x: &Tensor, groups: &[AgeGroup]) -> Result<(Tensor, Tensor)> {
        let h = x
            .conv2d(&self.conv, 1, 2, 1, 1)?
            .broadcast_add(&self.bias.reshape((1, 8, 1, 1))?)?;
        let idx = self.bins.index_tensor(groups, x.device())?;
        let p = self.embed.index_select(&idx, 0)?.broadcast_add(&self.v)?;
        Ok((h, p))
    }
}

fn leaky_slope(h: &Tensor) -> Result<Tensor> {
    let pos = h.ge(0f64)?.to_dtype(h.dtype())?;
    Ok(((pos * 0.8)? + 0.2)?)
}

impl ConditionalDiscriminator for ProjDiscriminator {
    fn logits(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        let (h, p) = self.pre(images, groups)?;
        let a = (&h * leaky_slope(&h)?)?;
        Ok((a.mean((2, 3))? * p)?.sum(D::Minus1)?)
    }
    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }
    fn logits_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        if !self.with_jvp {
            return Err(agesynth_core::Error::InvalidInput(
                "no logits_jvp here".into(),
            ));
        }
        let (h, p) = self.pre(images, groups)?;
        let slope = leaky_slope(&h)?;
        let th = tangent.conv2d(&self.conv, 1, 2, 1, 1)?;
        let logits = ((&h * &slope)?.mean((2, 3))? * &p)?.sum(D::Minus1)?;
        let tl = ((th * slope)?.mean((2, 3))? * p)?.sum(D::Minus1)?;
        Ok((logits, tl))
    }
}

fn faces(n: usize) -> Arc<RealFaces> {
    let images: Vec<FaceImage> = (0..n)
        .map(|i| {
            let px: Vec<u8> = (0..S * S * 3)
                .map(|k| ((k * 7 + i * 31) % 251) as u8)
                .collect();
            FaceImage::new(S as u32, S as u32, px).unwrap()
        })
        .collect();
    let ages: Vec<f32> = (0..n).map(|i| (i * 11 % 70) as f32 + 1.0).collect();
    Arc::new(RealFaces::from_images(&images, &ages, &AgeBins::default()).unwrap())
}

fn config() -> FaceGanTrainConfig {
    let mut model = FaceGanConfig::tiny();
    model.d_aux_classifier = false;
    let mut c = FaceGanTrainConfig::new(model, 4, 7);
    c.synthetic_fraction = 0.0;
    c.weights.identity = 0.0;
    c.weights.age = 0.0;
    c.r1_every = 1;
    c.r1_gamma = 1.0;
    c
}

fn models(with_jvp: bool) -> FaceGanModels {
    FaceGanModels::build(
        &|vb| Ok(Box::new(MixGenerator::new(vb)?) as Box<dyn AgeGenerator>),
        &|vb| {
            Ok(Box::new(ProjDiscriminator::new(vb, with_jvp)?)
                as Box<dyn ConditionalDiscriminator>)
        },
        7,
        &Device::Cpu,
    )
    .unwrap()
}

fn flat(vars: &candle_nn::VarMap, name: &str) -> Vec<f32> {
    vars.data().lock().unwrap()[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_task_trains_a_generator_and_discriminator_it_did_not_build() {
    let m = models(true);
    let (g_vars, d_vars) = (m.generator_vars.clone(), m.discriminator_vars.clone());
    let (w0, conv0) = (flat(&g_vars, "mix"), flat(&d_vars, "conv"));
    let mut task =
        FaceGanTask::with_models(config(), m, Some(faces(12)), None, None, &Device::Cpu).unwrap();
    let mut names = Vec::new();
    for step in 1..=3 {
        let r = task.step(step).unwrap();
        for (name, v) in &r.losses {
            assert!(v.is_finite(), "step {step}: {name} = {v}");
        }
        names = r.losses.iter().map(|(n, _)| n.clone()).collect();
    }
    // R1 ran through the test's own forward-mode derivative.
    assert!(names.iter().any(|n| n == "r1"), "{names:?}");
    assert!(names.iter().any(|n| n == "g_adv"), "{names:?}");
    assert_ne!(flat(&g_vars, "mix"), w0, "the generator learned nothing");
    assert_ne!(
        flat(&d_vars, "conv"),
        conv0,
        "the discriminator learned nothing"
    );
    // The sample grid and the checkpoint go through the traits too.
    let grid = task.sample_grid().unwrap().unwrap();
    assert!(grid.width() as usize > 6 * S);
    assert!(task.checkpoint().is_ok());
}

#[test]
fn r1_without_a_forward_mode_derivative_is_a_clear_error() {
    let mut task = FaceGanTask::with_models(
        config(),
        models(false),
        Some(faces(8)),
        None,
        None,
        &Device::Cpu,
    )
    .unwrap();
    let err = task.step(1).unwrap_err().to_string();
    assert!(err.contains("logits_jvp"), "{err}");
    // With R1 off the same models train.
    let mut cfg = config();
    cfg.r1_gamma = 0.0;
    let mut task =
        FaceGanTask::with_models(cfg, models(false), Some(faces(8)), None, None, &Device::Cpu)
            .unwrap();
    assert!(task.step(1).is_ok());
}

#[test]
fn models_of_another_size_are_refused() {
    let mut cfg = config();
    cfg.model = FaceGanConfig::cpu64();
    cfg.model.d_aux_classifier = false;
    let err = FaceGanTask::with_models(cfg, models(true), None, None, None, &Device::Cpu)
        .err()
        .expect("a 16-px generator in a 64-px run");
    let err = err.to_string();
    assert!(err.contains("16x16") && err.contains("64x64"), "{err}");
}
