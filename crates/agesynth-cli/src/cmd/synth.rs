//! `agesynth synth-pairs` and `agesynth sample`: render a trained cStyleGAN.

use std::{path::PathBuf, process::ExitCode};

use agesynth_core::DeviceSpec;
use agesynth_train::cstylegan::{load_generator, sample_grid, synth_pairs, SynthPairsOptions};
use anyhow::Context;
use clap::Args;

/// Options of `agesynth synth-pairs`.
#[derive(Debug, Args)]
pub struct SynthPairsArgs {
    /// Generator weights (with their `.json` config sidecar), a checkpoint
    /// folder or a run folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Synthetic identities to write (each at every age group).
    #[arg(long, value_parser = super::positive)]
    pub count: usize,
    /// Output folder (must not hold a set already).
    #[arg(long)]
    pub out: PathBuf,
    /// Truncation ψ (1: none).
    #[arg(long, default_value_t = 0.7)]
    pub truncation: f64,
    /// Seed of the latents and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Identities per shard file.
    #[arg(long, default_value_t = 512, value_parser = super::positive)]
    pub shard_size: usize,
    /// Identities rendered per forward pass.
    #[arg(long, default_value_t = 16, value_parser = super::positive)]
    pub batch: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Options of `agesynth sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Generator weights (with their `.json` config sidecar), a checkpoint
    /// folder or a run folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Rows (latents); the columns are the age groups.
    #[arg(long, default_value_t = 8, value_parser = super::positive)]
    pub rows: usize,
    /// Truncation ψ (1: none).
    #[arg(long, default_value_t = 0.7)]
    pub truncation: f64,
    /// Seed of the latents and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `synth-pairs`.
pub fn run_synth_pairs(a: SynthPairsArgs) -> anyhow::Result<ExitCode> {
    super::check_out_dir(&a.out)?;
    let device = a.device.parse::<DeviceSpec>()?.open()?;
    let (g, _) = load_generator(&a.model, &device)
        .with_context(|| format!("loading the generator {}", a.model.display()))?;
    let opts = SynthPairsOptions {
        count: a.count,
        truncation: a.truncation,
        seed: a.seed,
        batch: a.batch,
        shard_size: a.shard_size,
    };
    let bar = indicatif::ProgressBar::new(a.count as u64);
    let t0 = std::time::Instant::now();
    let source = serde_json::json!({
        "model": a.model.display().to_string(),
        "preset": g.config().preset,
        "truncation": a.truncation,
        "seed": a.seed,
    });
    let index = synth_pairs(&g, &a.out, &opts, source, |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    eprintln!(
        "{} identities x {} age groups at {}px in {} shards: {} ({:.1} s)",
        index.count,
        index.age_bins.len(),
        index.image_size,
        index.shards.len(),
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `sample`.
pub fn run_sample(a: SampleArgs) -> anyhow::Result<ExitCode> {
    super::check_out_file(&a.out)?;
    let device = a.device.parse::<DeviceSpec>()?.open()?;
    let (g, _) = load_generator(&a.model, &device)
        .with_context(|| format!("loading the generator {}", a.model.display()))?;
    let grid = sample_grid(&g, a.rows, a.truncation, a.seed)?;
    agesynth_train::grid::save_png(&a.out, &grid)?;
    eprintln!(
        "{} rows x {} age groups: {}",
        a.rows,
        g.config().num_groups(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
