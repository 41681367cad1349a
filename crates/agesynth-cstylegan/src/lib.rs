//! # agesynth-cstylegan
//!
//! The age-conditioned StyleGAN of agesynth (stage 1 of SS-FaceGAN): it
//! renders one latent at every age group, which gives the synthetic paired
//! data FaceGAN learns from.
//!
//! It follows StyleGAN2 rather than the paper's StyleGAN v1 (which stays
//! available as [`BlockKind::AdaIn`]):
//!
//! - [`Generator`]: a [`MappingNetwork`] from the pixel-normalised latent `z`
//!   concatenated with a learned embedding of the age group to `w` (MLP with
//!   leaky ReLUs, equalised learning rate, multiplier 0.01), a running mean of
//!   `w` per age group for the truncation trick, style mixing, and a
//!   [`SynthesisNetwork`] of modulated/demodulated convolutions from a learned
//!   4×4 constant with noise inputs, bilinear upsampling and skip-to-RGB
//!   outputs;
//! - [`Discriminator`]: residual, minibatch standard deviation, projection
//!   conditioning on the age group, raw logits;
//! - [`CStyleGanConfig`]: serde config with presets `tiny`, `cpu64`,
//!   `paper128` and `gpu256`;
//! - [`vars`]: seeded initialisation, parameter listing (what the optimiser
//!   gets), parameter counts and the EMA of the generator.
//!
//! The models do no I/O: build them from a `VarBuilder` over a `VarMap`, and
//! save or load the map with `agesynth_core::io::{save_varmap, load_varmap}`
//! (the config goes in the sidecar). Weight names follow the field names.
//!
//! ```no_run
//! use agesynth_core::AgeGroup;
//! use agesynth_cstylegan::{CStyleGanConfig, Generator, Discriminator, GenerateOptions, seeded_latents, seeded_var_builder};
//! use candle_core::{DType, Device};
//! use candle_nn::VarMap;
//! # fn main() -> agesynth_core::Result<()> {
//! let cfg = CStyleGanConfig::cpu64();
//! let dev = Device::Cpu;
//! let (gmap, dmap) = (VarMap::new(), VarMap::new());
//! let g = Generator::new(&cfg, seeded_var_builder(&gmap, 1, DType::F32, &dev))?;
//! let d = Discriminator::new(&cfg, seeded_var_builder(&dmap, 2, DType::F32, &dev))?;
//! let z = seeded_latents(4, cfg.z_dim, 7, &dev)?;
//! let groups = vec![AgeGroup(0), AgeGroup(2), AgeGroup(3), AgeGroup(5)];
//! let images = g.forward(&z, &groups, &GenerateOptions::default())?;
//! let logits = d.forward(&images, &groups)?; // (4,)
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod discriminator;
pub mod generator;
pub mod layers;
pub mod load;
pub mod vars;

pub use config::{BlockKind, CStyleGanConfig, Upsample};
pub use discriminator::{Discriminator, GivenGenders};
pub use generator::{
    gender_index, seeded_latents, set_latent_gender, GenerateOptions, Generator, MappingNetwork,
    Noise, StyleMix, SynthesisNetwork, GENERATOR_BUFFERS,
};
pub use load::{load_discriminator, load_generator, render_all_groups, render_all_groups_split};
pub use vars::{
    copy_vars, ema_decay, ema_update, is_buffer, param_count, seeded_var_builder, sorted_vars,
    trainable_vars,
};
