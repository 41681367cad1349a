//! # agesynth-data
//!
//! The face-data pipeline of agesynth: from folders of photographs to
//! [`FaceBatch`](agesynth_core::FaceBatch)es.
//!
//! - Datasets, each a [`FaceDataset`](agesynth_core::FaceDataset) that loads
//!   faces framed alike at any square size:
//!   - [`UtkFace`]: the aligned UTKFace chips, labels parsed from names like
//!     `AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`, tolerant of the real set's
//!     malformed names ([`utkface::parse_name`]);
//!   - [`FgNet`]: FG-NET scans `PPPAaa[b].JPG` with their 68-point `.pts`
//!     landmarks, aligned from the landmarks onto the template UTKFace's chips
//!     were cut with ([`align`]);
//!   - [`CsvFolder`]: a folder of already framed face images with a CSV of
//!     `file,age`.
//! - Image operations ([`transform`]): decoding JPEG and PNG with a guard
//!   against decompression bombs, area-filtered downscaling, centre crops,
//!   flips and normalisation to `[-1, 1]`.
//! - Deterministic train/validation/test [`split`]s (FG-NET by subject).
//! - A memory-mapped [`DecodedCache`] of faces at a training resolution.
//! - The trainers' one data path ([`memory`]): [`RealFaces`] held in memory
//!   at the training size (decoded in parallel once) and a resumable
//!   [`DataOrder`]; batches and flips derive from `(seed, step)` through
//!   [`seeded`] streams, so a resumed run repeats them.
//! - [`draw`]: the one bitmap font, sample grids, captioned strips and
//!   atomic PNG output that every picture agesynth writes goes through.
//! - [`stats`]: what a dataset folder holds, for `agesynth data stats`.
//! - [`testing`]: helpers for tests of this and other crates (the shared
//!   real-data folder, generated images).
#![deny(missing_docs)]

pub mod align;
pub mod cache;
pub mod csv_folder;
pub mod draw;
pub mod fgnet;
pub mod memory;
pub mod seeded;
pub mod split;
pub mod stats;
pub mod testing;
pub mod transform;
pub mod utkface;

mod scan;

pub use agesynth_core::{Error, Result};
pub use cache::DecodedCache;
pub use csv_folder::CsvFolder;
pub use fgnet::FgNet;
pub use memory::{DataOrder, RealFaces};
pub use scan::Skipped;
pub use split::{Split, SplitFractions};
pub use stats::{DatasetKind, DatasetStats};
pub use transform::DecodeLimits;
pub use utkface::UtkFace;
