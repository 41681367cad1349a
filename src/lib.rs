//! # agesynth
//!
//! Face age progression and regression with GANs, on candle.
//!
//! This crate re-exports the agesynth libraries under one name for programs
//! that want all of them; each is also a crate of its own, to depend on alone:
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`core`] | `agesynth-core` | age groups, face batches, the model traits, errors, devices, geometry, atomic I/O |
//! | [`data`] | `agesynth-data` | dataset readers, decoding, splits, sampling, the batch loader, the decoded cache |
//! | [`nn`] | `agesynth-nn` | fast CPU kernels as candle custom ops, and the layers built on them |
//! | [`face`] | `agesynth-face` | face detection (MTCNN), alignment, identity embedder, age estimator, weight import |
//! | [`losses`] | `agesynth-losses` | adversarial, R1, reconstruction, identity, age and total-variation losses |
//! | [`cstylegan`] | `agesynth-cstylegan` | the age-conditioned StyleGAN2 (stage 1) |
//! | [`facegan`] | `agesynth-facegan` | the age-conditioned U-Net generator and PatchGAN discriminator (stage 2) |
//! | [`train`] | `agesynth-train` | optimisers with saved state, run folders, checkpoints, the GAN trainers |
//! | [`pipeline`] | `agesynth-pipeline` | ageing the faces in photos: detect, align, age, paste back, strips |
//! | [`eval`] | `agesynth-eval` | metrics of generators, baselines, reports and plots |
//!
//! ```no_run
//! use agesynth::core::{candle_core::Device, AgeBins};
//! use agesynth::data::{DataOrder, RealFaces, UtkFace};
//!
//! let faces = UtkFace::open("../shared/data/utkface")?;
//! let faces = RealFaces::load(&faces, 64, &AgeBins::default(), None)?;
//! let mut order = DataOrder::new(faces.len(), 0);
//! for step in 0..2 {
//!     let batch = faces.next_batch(&mut order, 16, true, step, &Device::Cpu)?;
//!     println!("{:?} ages {:?}", batch.images.dims(), &batch.ages[..4]);
//! }
//! # Ok::<(), agesynth::core::Error>(())
//! ```
#![deny(missing_docs)]

pub use agesynth_core as core;
pub use agesynth_cstylegan as cstylegan;
pub use agesynth_data as data;
pub use agesynth_eval as eval;
pub use agesynth_face as face;
pub use agesynth_facegan as facegan;
pub use agesynth_losses as losses;
pub use agesynth_nn as nn;
pub use agesynth_pipeline as pipeline;
pub use agesynth_train as train;
