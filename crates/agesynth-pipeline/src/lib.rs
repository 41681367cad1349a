//! # agesynth-pipeline
//!
//! Turns ordinary photos into aged photos: the application layer over the
//! networks of the other crates.
//!
//! - [`Ager`] reads a photo ([`input`]: JPEG or PNG, any size, greyscale,
//!   EXIF orientation honoured, decode guards against corrupt, truncated
//!   and huge files), detects every face with MTCNN (or only the largest),
//!   aligns each from its five landmarks exactly as the generator was
//!   trained (UTKFace framing: dlib template, padding 0.2, at the
//!   generator's image size), estimates its age, ages it to each target age
//!   with FaceGAN (a target age maps to the generator's age group holding
//!   it), and pastes the result back into the full-resolution photo through
//!   a feathered mask ([`paste`]): outside the face, every pixel stays
//!   bit-identical.
//! - [`FaceAger`] does the ageing alone, on already aligned chips.
//! - [`AgedPhoto::save`] writes one PNG per target and a labelled strip
//!   ([`agesynth_data::draw::strip`]); [`AgedPhoto::report`] is the JSON-ready summary.
//! - [`demo`] renders a cStyleGAN identity and ages it: no input needed.
//! - [`weights`] says where the shipped networks are
//!   ([`weights::default_weights_dir`]).
//!
//! Models do no I/O; this crate does (it is the application layer), and
//! writes only through `agesynth_core::io`'s atomic writes.
//!
//! ```no_run
//! use std::path::Path;
//! use agesynth_pipeline::{weights, Ager};
//!
//! let device = candle_core::Device::Cpu;
//! let ager = Ager::from_weights_dir(&weights::default_weights_dir(), &device)?;
//! let aged = ager.age_file(Path::new("photo.jpg"), &[10.0, 30.0, 50.0, 70.0])?;
//! for face in &aged.faces {
//!     println!("face at {:?}, estimated age {:?}", face.bbox, face.estimated_age);
//! }
//! let files = aged.save(Path::new("aged"), "photo")?;
//! println!("strip: {}", files.strip.display());
//! # Ok::<(), agesynth_pipeline::PipelineError>(())
//! ```
#![deny(missing_docs)]

pub mod ager;
pub mod demo;
pub mod error;
pub mod input;
pub mod output;
pub mod paste;
pub mod testing;
pub mod weights;

pub use ager::{AgedChip, AgedFace, AgedPhoto, Ager, AgerOptions, FaceAger, Target};
pub use error::{PipelineError, Result};
pub use output::{PhotoReport, SavedFiles};
pub use paste::{FaceMask, PasteMode};
