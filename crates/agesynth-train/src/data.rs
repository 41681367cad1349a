//! Real faces for training: re-exported from [`agesynth_data::memory`], the
//! one data path of the trainers.

pub use agesynth_data::memory::{DataOrder, RealFaces, SkippedFace};
