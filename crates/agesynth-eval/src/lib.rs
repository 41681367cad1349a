//! # agesynth-eval
//!
//! Measuring age generators the same way whatever they are: any
//! [`AgeGenerator`](agesynth_core::AgeGenerator) is run on real faces at
//! every target age group and its outputs are measured with the face
//! networks behind the core traits
//! ([`FaceEmbedder`](agesynth_core::FaceEmbedder),
//! [`AgeEstimator`](agesynth_core::AgeEstimator)), MTCNN and, when its
//! weights are there, a second age judge that also reads gender
//! ([`features::AgeGenderJudge`]: face-api's age-gender network):
//!
//! - [`metrics`]: pure functions — face-detection rate, identity L2 and
//!   verification rate, age-group accuracy and MAE to the group centre,
//!   nearest-age photo, and the identity-feature Fréchet distance (Fréchet
//!   distance of Gaussians fitted to the embedder's features; *not*
//!   Inception FID) on a Jacobi eigensolver ([`linalg`]);
//! - [`features`]: the networks run in batches over images (MTCNN on chips
//!   upsampled to [`features::DETECT_SIZE`]), with per-network timings;
//! - [`mod@evaluate`]: every input at every group by each [`evaluate::Method`]:
//!   the generator and the baselines "copy input" and "random real face of
//!   the target group" (and, where the data names people, "same person,
//!   real photo": what real ageing gives), through one code path (the
//!   baselines' features are computed once per face and cached);
//! - [`data`]: FG-NET aligned from its landmarks, UTKFace's held-out test
//!   split, a reference pool per group;
//! - [`report`] and [`plot`]: `report.md`, `metrics.json`, bar charts and
//!   the sample sheet;
//! - [`run`]: a whole FaceGAN evaluation as `agesynth eval` runs it (sets,
//!   generators, baselines, reference faces, a report per set);
//! - [`cstylegan`]: the cStyleGAN's own measures (conditioned-age accuracy
//!   by both judges, detection rate, Fréchet distance per group, and whether
//!   a latent keeps its gender across groups).
#![deny(missing_docs)]

pub mod cstylegan;
pub mod data;
pub mod evaluate;
pub mod features;
pub mod linalg;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod run;

pub use evaluate::{
    evaluate, evaluate_with_progress, CopyInput, EvalData, EvalFace, EvalOptions, EvalResult,
    GeneratorMethod, Method, RandomReal, Rendered, Row, RowGroup, SamePersonPair, SamePersonReal,
};
pub use features::{AgeGenderJudge, Analyzer, FaceDetector, Features, MtcnnDetector, Timings};
pub use run::{run_facegan_eval, EvalEvent, EvalSet, FaceGanEvalConfig, NamedGenerator, SetReport};
