//! Helpers for tests of this crate and of the CLI: a freshly initialised
//! FaceGAN generator exported like the shipped one (until the trained
//! weights exist), and photos with real faces composed from the shared
//! data folder.

use std::path::{Path, PathBuf};

use agesynth_core::FaceImage;
use agesynth_data::transform::{decode_file, resize, DecodeLimits};
use agesynth_facegan::{seeded_var_builder, FaceGanConfig, Generator};
use candle_core::{DType, Device};
use candle_nn::VarMap;

use crate::error::Result;

/// Writes a freshly initialised generator of `cfg` (drawn from `seed`) to
/// `path`, with its config sidecar, as the trainer exports one.
pub fn export_fresh_generator(cfg: &FaceGanConfig, seed: u64, path: &Path) -> Result<()> {
    let vars = VarMap::new();
    Generator::new(
        cfg,
        seeded_var_builder(&vars, seed, DType::F32, &Device::Cpu),
    )?;
    agesynth_core::io::save_varmap(&vars, path, cfg)?;
    Ok(())
}

/// A weights folder for tests in `dir`: the repository's MTCNN and age
/// weights (linked, or copied where links are unavailable) and a fresh
/// `cpu64` FaceGAN generator, unless the repository already ships trained
/// FaceGAN weights, which are then linked too. Returns the folder.
pub fn weights_dir_for_tests(dir: &Path) -> Result<PathBuf> {
    let repo = crate::weights::repository_weights_dir();
    let out = dir.join("weights");
    std::fs::create_dir_all(&out).map_err(|e| agesynth_core::Error::io("creating", &out, e))?;
    let mut names = vec![
        crate::weights::MTCNN_WEIGHTS.to_string(),
        crate::weights::AGE_WEIGHTS.to_string(),
    ];
    let facegan = repo.join(crate::weights::FACEGAN_WEIGHTS);
    if facegan.is_file() {
        names.push(crate::weights::FACEGAN_WEIGHTS.to_string());
        names.push(format!("{}.json", facegan_stem()));
    } else {
        export_fresh_generator(
            &FaceGanConfig::cpu64(),
            0,
            &out.join(crate::weights::FACEGAN_WEIGHTS),
        )?;
    }
    for name in names {
        let (src, dst) = (repo.join(&name), out.join(&name));
        if dst.exists() {
            continue;
        }
        link_or_copy(&src, &dst)?;
    }
    Ok(out)
}

fn facegan_stem() -> String {
    crate::weights::FACEGAN_WEIGHTS
        .trim_end_matches(".safetensors")
        .to_string()
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst).map_err(|e| agesynth_core::Error::io("copying", src, e))?;
    Ok(())
}

/// Two real faces side by side on a grey canvas, each an UTKFace chip of an
/// adult shrunk to 160 px with a margin around it; `None` (after printing
/// why) when the shared data folder is absent.
pub fn two_face_photo(test: &str) -> Option<FaceImage> {
    let dir = agesynth_data::testing::shared_subdir("utkface", test)?;
    let picks = [
        "26_1_0_20170103175557343.jpg.chip.jpg",
        "35_0_0_20170103182703466.jpg.chip.jpg",
    ];
    let mut faces = Vec::new();
    for name in picks {
        let path = dir.join(name);
        let img = match decode_file(&path, &DecodeLimits::default()) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("skipping {test}: {e}");
                return None;
            }
        };
        faces.push(resize(&img, 160, 160).ok()?);
    }
    let (w, h) = (480u32, 240u32);
    let mut px = vec![128u8; (w * h * 3) as usize];
    for (k, face) in faces.iter().enumerate() {
        let (x0, y0) = (40 + k as u32 * 240, 40u32);
        for y in 0..160u32 {
            let src = &face.pixels()[(y * 160 * 3) as usize..((y + 1) * 160 * 3) as usize];
            let o = (((y0 + y) * w + x0) * 3) as usize;
            px[o..o + 160 * 3].copy_from_slice(src);
        }
    }
    FaceImage::new(w, h, px).ok()
}

/// A JPEG of `img` with an EXIF APP1 segment carrying `orientation` (1–8),
/// written by hand: a big-endian TIFF header and one IFD entry.
pub fn jpeg_with_orientation(img: &FaceImage, orientation: u16) -> Result<Vec<u8>> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode(
            img.pixels(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| agesynth_core::Error::image("<jpeg>", e.to_string()))?;
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&[0, 1]); // one entry
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]); // Orientation, SHORT, count 1
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    Ok(out)
}

/// `img` turned 90° counter-clockwise: stored this way with EXIF
/// orientation 6 ("rotate 90° clockwise to display"), it displays upright.
pub fn rotate_ccw(img: &FaceImage) -> FaceImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut px = vec![0u8; w * h * 3];
    // Output is h wide, w high; output (x', y') = input (w - 1 - y', x').
    for yo in 0..w {
        for xo in 0..h {
            let (xi, yi) = (w - 1 - yo, xo);
            let (o, i) = ((yo * h + xo) * 3, (yi * w + xi) * 3);
            px[o..o + 3].copy_from_slice(&img.pixels()[i..i + 3]);
        }
    }
    FaceImage::new(h as u32, w as u32, px).unwrap_or_else(|_| unreachable!("sizes match"))
}
