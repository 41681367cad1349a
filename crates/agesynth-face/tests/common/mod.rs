//! Helpers shared by the integration tests of agesynth-face.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use agesynth_core::candle_core::{Device, Tensor};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A committed weights file under `weights/`.
pub fn weights(name: &str) -> PathBuf {
    repo_root().join("weights").join(name)
}

/// A test fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The shared data folder (`AGESYNTH_DATA`, else `../shared/data` beside the
/// repository), if present.
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("AGESYNTH_DATA") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("../shared/data"),
    };
    dir.is_dir().then_some(dir)
}

/// Decodes an image file as `(1, 3, H, W)` f32 RGB pixels in `[0, 255]`.
pub fn png_pixels(path: &Path) -> Tensor {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let data: Vec<f32> = img.into_raw().into_iter().map(f32::from).collect();
    Tensor::from_vec(data, (1, h as usize, w as usize, 3), &Device::Cpu)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap()
        .contiguous()
        .unwrap()
}

/// Reads a JSON fixture.
pub fn json(name: &str) -> serde_json::Value {
    let p = fixture(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// A JSON array of numbers as f32s.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}
