//! # agesynth-train
//!
//! Training infrastructure shared by agesynth's trainers, and the cStyleGAN
//! trainer built on it.
//!
//! - [`optim::Adam`]: Adam / AdamW over candle `Var`s with parameter groups
//!   (own learning rate each) and a state that is saved with checkpoints.
//! - [`checkpoint::RunDir`]: a run folder with `config.json`, a JSON-lines
//!   log, sample grids and atomic checkpoints (`checkpoints/step-NNNNNN/`,
//!   a `latest` pointer, keep-last-N, NaN weights refused), one writer
//!   holding its lock, readers that never change it, and a fallback to the
//!   previous intact checkpoint when the newest is damaged.
//! - [`trainer::Trainer`] driving any [`trainer::TrainTask`]: logs, progress
//!   bar, sample grids, checkpoints, exact resume, SIGINT/SIGTERM
//!   ([`stop::StopFlag`]) and a NaN/divergence guard.
//! - [`budget`]: memory estimates of training steps and sampling, checked
//!   before allocating.
//! - [`rng`]: seeded randomness keyed by step, so resume repeats a run.
//! - [`data`]: a resumable data order and in-memory faces at the training
//!   resolution.
//! - [`params`]: weight snapshots, restore and the EMA update.
//! - [`gan`]: the state both GAN tasks share (variables, optimisers, their
//!   checkpoint and restore).
//! - [`phase`]: regularisation phases with an interval (lazy R1).
//! - [`facegan`]: the semi-supervised FaceGAN task (synthetic pairs and real
//!   faces), on the same [`trainer::Trainer`].
#![deny(missing_docs)]

pub mod budget;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod gan;
pub mod log;
pub mod objective;
pub mod optim;
pub mod params;
pub mod phase;
pub mod rng;
pub mod stop;
pub mod trainer;

pub use checkpoint::{
    BrokenCheckpoint, Checkpoint, CheckpointContents, CheckpointRestore, LatestReport, OpenReport,
    RunDir,
};
pub use data::{DataOrder, RealFaces};
pub use error::{Result, TrainError};
pub use objective::{Objective, Operand, Rows, Term};
pub use optim::{Adam, AdamConfig, ParamGroup};
pub use stop::StopFlag;
pub use trainer::{Outcome, RunSummary, StepReport, TrainMeta, TrainTask, Trainer, TrainerOptions};
pub mod critic;
pub mod cstylegan;
pub mod facegan;
pub mod pairs;

pub use critic::{CriticTask, CriticTrainConfig};
pub use cstylegan::{CStyleGanTask, CStyleGanTrainConfig};
pub use facegan::{
    FaceGanCritics, FaceGanDiscriminator, FaceGanLossWeights, FaceGanTask, FaceGanTrainConfig,
};
pub use pairs::{PairsWriter, SynthPairs};
