//! # agesynth-face
//!
//! Face analysis networks of agesynth as native candle modules, and the
//! importer that turns the pretrained weights shipped in registry packages
//! into safetensors:
//! - [`embedder`]: dlib's 128-D face-recognition ResNet (identity loss,
//!   identity-preservation metric), behind [`agesynth_core::FaceEmbedder`];
//! - [`age`]: dlib's ResNet age estimator (81-class softmax), behind
//!   [`agesynth_core::AgeEstimator`];
//! - [`faceres`]: HSE FaceRes, a MobileNet whose pooled features identify
//!   faces: a second identity network, independent of dlib's, that the
//!   identity critic is distilled from (never an evaluation judge);
//! - [`age_gender`]: face-api's AgeGenderNet (TinyXception; age regression
//!   and male/female softmax), a second age judge behind
//!   [`agesynth_core::AgeEstimator`] that also reads gender;
//! - [`resnet`]: the dlib-style ResNet blocks both are made of;
//! - [`chip`]: how a UTKFace-framed image maps to each network's chip;
//! - [`detect`]: the MTCNN face detector (boxes, scores, five landmarks),
//!   with its three networks in [`mtcnn`];
//! - [`align`]: dlib-style 5-point alignment into the chip each network
//!   wants;
//! - [`eval`]: verification and age error on a folder of UTKFace chips;
//! - [`import`]: reading TF.js weight manifests and ONNX initializers, with
//!   the source files pinned by sha256.
//!
//! Inputs follow agesynth's convention: `(N, 3, H, W)` f32 images in
//! `[-1, 1]`, framed like UTKFace's aligned chips. Each network also has a
//! lower-level entry point on its own chip format (RGB pixels in `[0, 255]`).
#![deny(missing_docs)]

pub mod age;
pub mod age_gender;
pub mod align;
pub mod chip;
pub mod detect;
pub mod embedder;
pub mod eval;
pub mod faceres;
pub mod import;
pub mod mtcnn;
pub mod resnet;

pub use age::{AgeConfig, DlibAgeEstimator};
pub use age_gender::{AgeGender, AgeGenderConfig, FaceApiAgeGender};
pub use embedder::{DlibFaceEmbedder, EmbedderConfig};
pub use faceres::{FaceRes, FaceResConfig};
