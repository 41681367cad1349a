//! Writes the images of MTCNN's pipeline parity fixture as raw RGB bytes,
//! decoded exactly as the tests decode them, for `scripts/mtcnn_reference.py`
//! (JPEG decoders differ by a few grey levels; the reference must see the
//! same pixels as the Rust pipeline).
//!
//! `cargo run -p agesynth-face --example mtcnn_pixels -- DATA_DIR OUT_DIR`
//! where DATA_DIR holds `fgnet-dev/` and `utkface/`. Writes
//! `OUT_DIR/<relative path>.rgb` and `OUT_DIR/manifest.json` (file, width,
//! height, sha256 of the bytes). The images: every FG-NET dev photo, and every
//! 450th UTKFace chip in name order (50 chips).

use std::path::{Path, PathBuf};

use agesynth_data::transform::{decode_file, DecodeLimits};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every `step`-th file of `dir` in name order, as paths relative to `base`.
fn listed(base: &Path, sub: &str, step: usize) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(base.join(sub))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .step_by(step)
        .map(|n| format!("{sub}/{n}"))
        .collect())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        anyhow::bail!("usage: mtcnn_pixels DATA_DIR OUT_DIR");
    }
    let (data, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let mut files = listed(&data, "fgnet-dev/images", 1)?;
    files.extend(listed(&data, "utkface", 450)?);
    let mut manifest = Vec::new();
    for f in files {
        let img = decode_file(&data.join(&f), &DecodeLimits::default())?;
        let dst = out.join(format!("{f}.rgb"));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dst, img.pixels())?;
        manifest.push(serde_json::json!({
            "file": f, "width": img.width(), "height": img.height(),
            "sha256": sha256_hex(img.pixels()),
        }));
    }
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!("wrote {} images to {}", manifest.len(), out.display());
    Ok(())
}
