//! # agesynth-core
//!
//! The shared vocabulary of agesynth, the face age progression and regression
//! toolkit. Every other crate of the workspace depends on this one and on no
//! other crate of ours in the other direction: **this crate depends on no other
//! agesynth crate**.
//!
//! It holds
//! - [`AgeBins`] and [`AgeGroup`]: ages, age groups and their one-hot codes
//!   (the paper's six groups 0–9, 10–19, 20–29, 30–39, 40–49, 50+ by default);
//! - [`geometry`]: similarity transforms, warping and the canonical face
//!   template that frames every aligned face like the training chips;
//! - [`FaceBatch`]: a batch of faces as an NCHW tensor in `[-1, 1]` with ages
//!   and groups;
//! - the traits through which models compose: [`AgeGenerator`],
//!   [`ConditionalDiscriminator`], [`FaceEmbedder`], [`AgeEstimator`] and
//!   [`FaceDataset`];
//! - the error type [`Error`];
//! - differentiable image [`filters`] (luma, Gaussian blur);
//! - device selection ([`DeviceSpec`]), with CUDA behind the `cuda` feature;
//! - safetensors save and load with atomic writes and a JSON sidecar
//!   ([`io`]): loaded weights are always finite and of a float type, every
//!   read is bounded, and stale temporary files are found and removed;
//! - reading checkpoints and shipped models ([`checkpoint`]: the newest
//!   intact checkpoint of a run folder, [`checkpoint::load_model`]);
//! - memory budgets checked before allocating ([`budget`]);
//! - printing that survives a closed pipe ([`console`]);
//! - process liveness for stale locks ([`process`]);
//! - reproducible random tensors, which candle's CPU generator cannot give ([`random`]).
#![deny(missing_docs)]

pub mod age;
pub mod batch;
pub mod budget;
pub mod checkpoint;
pub mod console;
pub mod dataset;
pub mod device;
pub mod error;
pub mod filters;
pub mod geometry;
pub mod io;
pub mod process;
pub mod random;
pub mod traits;

pub use age::{AgeBins, AgeGroup};
pub use batch::FaceBatch;
pub use dataset::{FaceDataset, FaceImage, FaceMeta, Gender};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use traits::{
    AgeClassifier, AgeEstimator, AgeGenerator, ConditionalDiscriminator, DiscriminatorOutput,
    FaceEmbedder, GenderClassifier, RealismCritic,
};

/// Re-export of the tensor library every public signature of agesynth uses.
pub use candle_core;
