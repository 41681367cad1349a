//! # agesynth-facegan
//!
//! FaceGAN, stages 2 and 3 of SS-FaceGAN: the networks that age a real face
//! while keeping who it is.
//!
//! - [`Generator`]: a U-Net (encoder–decoder with skip connections) taking a
//!   face `(N, 3, S, S)` in `[-1, 1]` and a target age group; the age enters
//!   at the input (one-hot planes) and at the bottleneck (FiLM modulation or
//!   concatenation, [`BottleneckAge`]); optionally a residual output (the
//!   network predicts a bounded change of the input). Implements
//!   [`agesynth_core::AgeGenerator`].
//! - [`Discriminator`]: a PatchGAN conditioned on the age group by projection,
//!   with an optional auxiliary age-classification head. Implements
//!   [`agesynth_core::ConditionalDiscriminator`].
//! - [`FaceGanConfig`]: presets `tiny` (tests), `cpu64`, `paper128`,
//!   `gpu256`, saved as JSON beside checkpoints.
//! - [`testing::RandomEmbedder`]: a small randomly initialised convolutional
//!   network implementing [`agesynth_core::FaceEmbedder`], a test double for
//!   gradient flow through the identity loss (it knows nothing of faces).
//!
//! [`seeded_var_builder`] makes initial weights reproducible from a seed.
//!
//! Models follow candle's `new(&cfg, vb)` with weight names following the
//! fields; they do no I/O.
#![deny(missing_docs)]

pub mod config;
pub mod discriminator;
pub mod generator;
pub mod init;
pub mod load;
pub mod testing;

pub use config::{BottleneckAge, FaceGanConfig, ResidualSpace};
pub use discriminator::{Discriminator, DiscriminatorOutput};
pub use generator::Generator;
pub use init::seeded_var_builder;
pub use load::load_generator;
