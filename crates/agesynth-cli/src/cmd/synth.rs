//! `agesynth synth-pairs` and `agesynth sample`: render a trained cStyleGAN.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use agesynth_core::candle_core::Device;
use agesynth_core::DeviceSpec;
use agesynth_train::{
    cstylegan::{load_generator, sample_grid_of, synth_pairs_filtered, SynthPairsOptions},
    pairs::{GenderCheck, PairFilter},
};
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
    /// Synthesis layers (from the coarsest) that read each latent's age-free
    /// `w`, the mean of its `w` over all age groups: the age condition then
    /// reaches only the finer styles, and pose, face shape and sex stay the
    /// same at every age (0: as the model was trained, every layer reading
    /// the age-conditioned `w` unless its config names age-free layers)
    #[arg(long, default_value_t = 0)]
    pub age_free_layers: usize,
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
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
    /// Which identities to keep (renders until --count pass).
    #[command(flatten)]
    pub filter: PairFilterArgs,
}

/// The pair filter's options (`synth-pairs`, `eval cstylegan`).
#[derive(Debug, Args)]
pub struct PairFilterArgs {
    /// Keep only identities that stay one person across their renders: the
    /// largest distance between the identity critic's embeddings of renders
    /// at neighbouring age groups must not exceed this (see
    /// --identity-critic).
    #[arg(long)]
    pub max_pair_distance: Option<f32>,
    /// The identity critic that --max-pair-distance measures with (a
    /// weights file with its sidecar, or its run folder).
    #[arg(long, default_value = "weights/critic-identity64.safetensors")]
    pub identity_critic: PathBuf,
    /// Keep only identities that this gender critic (`train critic --kind
    /// gender`) reads as one gender at every group from 10-19 up.
    #[arg(long)]
    pub gender_critic: Option<PathBuf>,
}

impl PairFilterArgs {
    /// The filter these options ask for (`None`: keep every identity).
    pub fn build(&self, device: &Device) -> anyhow::Result<Option<PairFilter>> {
        if self.max_pair_distance.is_none() && self.gender_critic.is_none() {
            return Ok(None);
        }
        let max_distance = match self.max_pair_distance {
            None => f32::INFINITY,
            Some(d) if d.is_finite() && d > 0.0 => d,
            Some(d) => anyhow::bail!("--max-pair-distance {d} must be a positive number"),
        };
        let (c, _) = agesynth_train::critic::load_identity_critic(&self.identity_critic, device)
            .with_context(|| {
                format!(
                    "loading the identity critic {}",
                    self.identity_critic.display()
                )
            })?;
        let gender = match &self.gender_critic {
            None => None,
            Some(p) => {
                let (g, _) = agesynth_train::critic::load_gender_critic(p, device)
                    .with_context(|| format!("loading the gender critic {}", p.display()))?;
                Some(GenderCheck {
                    critic: Arc::new(g),
                    from_group: 1,
                })
            }
        };
        Ok(Some(PairFilter {
            embedder: Arc::new(c),
            max_distance,
            gender,
        }))
    }

    /// The filter's settings, for provenance.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "identity_critic": self.identity_critic.display().to_string(),
            "max_distance": self.max_pair_distance,
            "gender_critic": self.gender_critic.as_ref().map(|p| p.display().to_string()),
        })
    }
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
    /// Every row of one gender (a gender-conditioned model: `train cstylegan
    /// --gender-conditioned`).
    #[arg(long, value_enum)]
    pub gender: Option<super::GenderArg>,
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
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
}

/// Runs `synth-pairs`.
pub fn run_synth_pairs(a: SynthPairsArgs) -> anyhow::Result<ExitCode> {
    super::check_out_dir(&a.out)?;
    let device = a.device.open()?;
    let (g, _) = load_generator(&a.model, &device)
        .with_context(|| format!("loading the generator {}", a.model.display()))?;
    let opts = SynthPairsOptions {
        count: a.count,
        truncation: a.truncation,
        seed: a.seed,
        batch: a.batch,
        shard_size: a.shard_size,
        age_free_layers: a.age_free_layers,
    };
    let bar = indicatif::ProgressBar::new(a.count as u64);
    let t0 = std::time::Instant::now();
    let filter = a.filter.build(&device)?;
    let mut source = serde_json::json!({
        "model": a.model.display().to_string(),
        "preset": g.config().preset,
        "truncation": a.truncation,
        "seed": a.seed,
        "age_free_layers": a.age_free_layers,
        "age_free_from_group": g.config().age_free_from_group,
    });
    if filter.is_some() {
        source["pair_filter"] = a.filter.describe();
    }
    let (index, stats) = synth_pairs_filtered(&g, &a.out, &opts, filter.as_ref(), source, |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    if filter.is_some() {
        let q = |p| stats.quantile(p).unwrap_or(f32::NAN);
        eprintln!(
            "pair filter: dropped {} of {} rendered identities ({:.1}%; {} change gender); \
             inconsistency quartiles {:.3} / {:.3} / {:.3}, 90th percentile {:.3}",
            stats.dropped,
            stats.rendered,
            100.0 * stats.dropped as f64 / stats.rendered.max(1) as f64,
            stats.gender_changed,
            q(0.25),
            q(0.5),
            q(0.75),
            q(0.9)
        );
    }
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
    let device = a.device.open()?;
    let (g, _) = load_generator(&a.model, &device)
        .with_context(|| format!("loading the generator {}", a.model.display()))?;
    let gender = a.gender.map(Into::into);
    let grid = sample_grid_of(&g, a.rows, a.truncation, a.seed, gender)?;
    agesynth_data::draw::save_png(&a.out, &grid)?;
    eprintln!(
        "{} rows x {} age groups: {}",
        a.rows,
        g.config().num_groups(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
