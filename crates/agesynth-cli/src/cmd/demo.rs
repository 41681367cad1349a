//! `agesynth demo`: a cStyleGAN identity aged through FaceGAN into a
//! labelled strip, with no input at all (see `agesynth_pipeline::demo`).

use std::{path::PathBuf, process::ExitCode};

use agesynth_core::DeviceSpec;
use agesynth_pipeline::demo::{demo_strip, load_cstylegan, DemoOptions};
use agesynth_pipeline::{weights, FaceAger};
use anyhow::Context;
use clap::Args;

/// Options of `agesynth demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the synthetic identity.
    #[arg(long, default_value_t = DemoOptions::default().seed)]
    pub seed: u64,
    /// Target ages in years, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,30,50,70")]
    pub ages: Vec<f32>,
    /// Age whose group the identity is rendered at before ageing.
    #[arg(long, default_value_t = DemoOptions::default().source_age)]
    pub source_age: f32,
    /// Truncation ψ of the cStyleGAN (1: none).
    #[arg(long, default_value_t = DemoOptions::default().truncation)]
    pub truncation: f64,
    /// Output PNG.
    #[arg(long, default_value = "demo_strip.png")]
    pub out: PathBuf,
    /// Weights folder (default: $AGESYNTH_WEIGHTS, else ./weights, else the
    /// repository's weights/).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// FaceGAN generator to use instead of the weights folder's.
    #[arg(long)]
    pub generator: Option<PathBuf>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
}

/// Runs `demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    super::check_out_file(&a.out)?;
    let device = a.device.open()?;
    let dir = weights::resolve_weights_dir(a.weights.as_deref());
    let style = load_cstylegan(&dir.join(weights::CSTYLEGAN_WEIGHTS), &device)?;
    let facegan = a
        .generator
        .clone()
        .unwrap_or_else(|| dir.join(weights::FACEGAN_WEIGHTS));
    let ager = FaceAger::load(&facegan, &device)?;
    let opts = DemoOptions {
        seed: a.seed,
        truncation: a.truncation,
        source_age: a.source_age,
        ages: a.ages.clone(),
        ..DemoOptions::default()
    };
    let demo = demo_strip(&style, &ager, &opts)?;
    agesynth_data::draw::save_png(&a.out, &demo.strip)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let targets: Vec<String> = demo
        .targets
        .iter()
        .map(|t| format!("{} -> {}", t.age_text(), t.label))
        .collect();
    eprintln!(
        "cStyleGAN identity (seed {}) at {}, aged to {}: {}",
        a.seed,
        demo.source_label,
        targets.join(", "),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
