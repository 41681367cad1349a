//! Loading a shipped or checkpointed cStyleGAN generator (or discriminator),
//! and rendering its latents at every age group: the crate's one place that
//! reads files (the models themselves do no I/O).

use std::path::Path;

use agesynth_core::{checkpoint::load_model, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::{CStyleGanConfig, Discriminator, GenerateOptions, Generator, Noise};

/// Loads a generator for sampling: `path` is a weights file with its config
/// sidecar (`PATH.json`, as the trainer's exports and the checkpoints'
/// `generator_ema` write), a checkpoint folder, or a run folder (its newest
/// intact checkpoint's EMA generator).
pub fn load_generator(path: &Path, device: &Device) -> Result<(Generator, VarMap)> {
    load_model(
        path,
        &["generator_ema"],
        "CStyleGanConfig",
        device,
        |cfg: &CStyleGanConfig, vb| Generator::new(cfg, vb),
    )
}

/// Loads a discriminator (for a frozen realism critic, never to train on):
/// `path` is a weights file with its config sidecar (`PATH.json`, the
/// model's [`CStyleGanConfig`]), a checkpoint folder holding
/// `discriminator.safetensors` and `discriminator.json`, or a run folder
/// (its newest intact checkpoint's).
pub fn load_discriminator(path: &Path, device: &Device) -> Result<(Discriminator, VarMap)> {
    load_model(
        path,
        &["discriminator"],
        "CStyleGanConfig",
        device,
        |cfg: &CStyleGanConfig, vb| Discriminator::new(cfg, vb),
    )
}

/// Renders every latent of `z (n, z_dim)` at every age group with the same
/// noise: `(n, groups, 3, S, S)` clamped to `[-1, 1]`. One person per row.
/// NaN or infinite values (damaged weights) are an error, never a picture.
pub fn render_all_groups(
    generator: &Generator,
    z: &Tensor,
    psi: f64,
    noise_seed: u64,
) -> Result<Tensor> {
    render_all_groups_split(generator, z, psi, noise_seed, 0)
}

/// [`render_all_groups`] with the first `age_free_layers` synthesis layers
/// reading each latent's age-free `w` (see
/// [`GenerateOptions::age_free_layers`]): the coarse styles, and what they
/// carry, stay the same at every age.
pub fn render_all_groups_split(
    generator: &Generator,
    z: &Tensor,
    psi: f64,
    noise_seed: u64,
    age_free_layers: usize,
) -> Result<Tensor> {
    let bins = generator.config().bins()?;
    let n = z.dim(0)?;
    let mut per_group = Vec::with_capacity(bins.len());
    for g in bins.groups() {
        let opts = GenerateOptions {
            truncation: psi,
            mixing: None,
            noise: Noise::Seeded(noise_seed),
            age_free_layers,
        };
        let img = generator.forward(z, &vec![g; n], &opts)?;
        agesynth_core::io::ensure_finite_output(&img, "the cStyleGAN generator")?;
        per_group.push(img.clamp(-1f32, 1f32)?.unsqueeze(1)?);
    }
    Ok(Tensor::cat(&per_group, 1)?)
}
