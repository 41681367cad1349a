//! # agesynth-face
//!
//! Face analysis networks of agesynth as native candle modules, and the
//! importer that turns the pretrained weights shipped in registry packages
//! into safetensors:
//! - [`embedder`]: dlib's 128-D face-recognition ResNet (identity loss,
//!   identity-preservation metric), behind [`agesynth_core::FaceEmbedder`];
//! - [`age`]: a dlib-style ResNet age estimator (81-class softmax), behind
//!   [`agesynth_core::AgeEstimator`];
//! - [`import`]: reading TF.js weight manifests and ONNX initializers, with
//!   the source files pinned by sha256.
#![deny(missing_docs)]

pub mod import;
