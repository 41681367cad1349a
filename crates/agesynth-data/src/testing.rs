//! Helpers for tests and benches of this and other agesynth crates.
//!
//! Real face photographs are never part of the project. Tests that need them
//! read the shared data folder ([`shared_data_dir`]) and skip, with a message,
//! where it is absent. Everything else uses images generated on the fly
//! ([`synthetic_face`], [`write_jpeg`], [`write_png`]).

use std::path::{Path, PathBuf};

use agesynth_core::{Error, FaceImage, Result};

/// Environment variable naming the shared data folder (the one holding
/// `utkface/` and `fgnet-dev/`).
pub const DATA_ENV: &str = "AGESYNTH_DATA";

/// The shared folder of real face data: `$AGESYNTH_DATA` when set, else
/// `../shared/data` beside the repository root; `None` when that folder does
/// not exist.
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_ENV) {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    // This crate lives at <repo>/crates/agesynth-data.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .canonicalize()
        .ok()?;
    dir.is_dir().then_some(dir)
}

/// A sub-folder of the shared data folder (e.g. `"utkface"`), or `None` after
/// printing `skipping <test>: ... not found` so that a test can return early.
///
/// ```no_run
/// let Some(dir) = agesynth_data::testing::shared_subdir("utkface", "my_test") else {
///     return;
/// };
/// ```
pub fn shared_subdir(name: &str, test: &str) -> Option<PathBuf> {
    match shared_data_dir().map(|d| d.join(name)) {
        Some(d) if d.is_dir() => Some(d),
        _ => {
            eprintln!(
                "skipping {test}: real data folder `{name}` not found \
                 (set {DATA_ENV} or place it at ../shared/data/{name})"
            );
            None
        }
    }
}

/// A deterministic, face-like test image: a smooth background gradient with a
/// bright ellipse and two dark "eyes", so that resizing and flipping have
/// something to act on. Different seeds give different colours.
pub fn synthetic_face(width: u32, height: u32, seed: u64) -> FaceImage {
    let mut px = Vec::with_capacity(width as usize * height as usize * 3);
    let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let tint = [
        (s & 0x3f) as f32,
        ((s >> 6) & 0x3f) as f32,
        ((s >> 12) & 0x3f) as f32,
    ];
    let (w, h) = (width as f32, height as f32);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = ((x as f32 + 0.5) / w, (y as f32 + 0.5) / h);
            let face = ((fx - 0.5) / 0.32).powi(2) + ((fy - 0.5) / 0.42).powi(2) < 1.0;
            let eye = ((fx - 0.38).powi(2) + (fy - 0.42).powi(2)).sqrt() < 0.05
                || ((fx - 0.62).powi(2) + (fy - 0.42).powi(2)).sqrt() < 0.05;
            for (c, t) in tint.iter().enumerate() {
                let v = if eye {
                    30.0 + t * 0.3
                } else if face {
                    170.0 + t
                } else {
                    40.0 + 120.0 * fx * (c as f32 + 1.0) / 3.0 + 60.0 * fy
                };
                px.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    // Cannot fail: the buffer has width * height * 3 bytes by construction
    // (a zero size is the caller's bug and panics here, in test code).
    FaceImage::new(width, height, px).expect("synthetic_face needs a non-zero size")
}

/// Encodes `img` as a JPEG (quality 90) at `path`.
pub fn write_jpeg(path: impl AsRef<Path>, img: &FaceImage) -> Result<()> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    image::ImageEncoder::write_image(
        enc,
        img.pixels(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| Error::image(path, format!("encoding JPEG: {e}")))?;
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

/// Encodes `img` as an 8-bit RGB PNG at `path`.
pub fn write_png(path: impl AsRef<Path>, img: &FaceImage) -> Result<()> {
    let path = path.as_ref();
    image::save_buffer_with_format(
        path,
        img.pixels(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::image(path, format!("encoding PNG: {e}")))
}

/// Encodes a one-channel (greyscale) image as a JPEG at `path`.
pub fn write_grey_jpeg(path: impl AsRef<Path>, width: u32, height: u32, grey: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    image::ImageEncoder::write_image(enc, grey, width, height, image::ExtendedColorType::L8)
        .map_err(|e| Error::image(path, format!("encoding JPEG: {e}")))?;
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_faces_differ_by_seed_and_are_deterministic() {
        let a = synthetic_face(32, 40, 1);
        assert_eq!(a, synthetic_face(32, 40, 1));
        assert_ne!(a, synthetic_face(32, 40, 2));
        assert_eq!((a.width(), a.height()), (32, 40));
    }
}
