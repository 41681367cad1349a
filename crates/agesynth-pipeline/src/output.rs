//! What an aged photo becomes on disk and on stdout: one PNG per target
//! age, a labelled strip, and a JSON-ready summary.

use std::path::{Path, PathBuf};

use agesynth_core::FaceImage;
use serde::Serialize;

use agesynth_core::geometry::Similarity;

use crate::ager::{format_age, warp_chip, AgedPhoto, Target};
use crate::error::{PipelineError, Result};

/// Height of each photo in a strip (photos are scaled to it).
pub const STRIP_TILE_HEIGHT: u32 = 320;

/// Faces shown as close-ups under a strip's photos.
pub const MAX_CLOSEUPS: usize = 4;

/// One face of a photo, as reported (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct FaceReport {
    /// Bounding box `[x1, y1, x2, y2]` in the photo.
    pub bbox: [f64; 4],
    /// The detector's face probability.
    pub score: f32,
    /// The five landmarks `[x, y]`: eyes, nose tip, mouth corners.
    pub landmarks5: [[f64; 2]; 5],
    /// Estimated age of the input face, in years.
    pub estimated_age: Option<f32>,
}

/// A photo's summary: faces, targets and the files written.
#[derive(Clone, Debug, Serialize)]
pub struct PhotoReport {
    /// The photo.
    pub photo: PathBuf,
    /// Width and height as read (orientation applied).
    pub size: [u32; 2],
    /// The faces, left to right.
    pub faces: Vec<FaceReport>,
    /// Each target age with its age group.
    pub targets: Vec<Target>,
    /// The files written: one per target (same order), then the strip.
    pub outputs: Vec<PathBuf>,
}

/// The files [`AgedPhoto::save`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedFiles {
    /// `<stem>_age<N>.png`, one per target, in target order.
    pub images: Vec<PathBuf>,
    /// `<stem>_strip.png`.
    pub strip: PathBuf,
}

impl SavedFiles {
    /// Every file, the strip last.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut v = self.images.clone();
        v.push(self.strip.clone());
        v
    }
}

impl AgedPhoto {
    /// The labelled strip: the original, then the photo at each target age
    /// (captioned e.g. "age 30 (group 30-39)"), each scaled to `tile_height`
    /// pixels high; below, a row of close-ups per face (the first
    /// [`MAX_CLOSEUPS`]) cut from the same photos.
    pub fn strip(&self, tile_height: u32) -> Result<FaceImage> {
        let mut tiles = vec![agesynth_data::draw::fit_height(
            &self.original,
            tile_height,
        )?];
        let estimated: Vec<String> = self
            .faces
            .iter()
            .filter_map(|f| f.estimated_age.map(|a| format!("{a:.0}")))
            .collect();
        let mut captions = vec![if estimated.is_empty() {
            "original".to_string()
        } else {
            format!("original (est. age {})", estimated.join(", "))
        }];
        for (img, t) in self.images.iter().zip(&self.targets) {
            tiles.push(agesynth_data::draw::fit_height(img, tile_height)?);
            captions.push(t.caption());
        }
        let cols = tiles.len();
        // Close-ups of the first faces, cut from the finished photos (what
        // was pasted back, not the generator's raw chip).
        let side = (tile_height / 2).clamp(64, 192);
        for (i, face) in self.faces.iter().take(MAX_CLOSEUPS).enumerate() {
            let k = side as f64 / self.chip_size(face) as f64;
            let t = face.to_chip;
            let to_closeup = Similarity {
                a: k * t.a,
                b: k * t.b,
                tx: k * t.tx + 0.5 * k - 0.5,
                ty: k * t.ty + 0.5 * k - 0.5,
            };
            tiles.push(warp_chip(&self.original, &to_closeup, side)?);
            captions.push(match face.estimated_age {
                Some(a) => format!("face {} (est. age {a:.0})", i + 1),
                None => format!("face {}", i + 1),
            });
            for (img, t) in self.images.iter().zip(&self.targets) {
                tiles.push(warp_chip(img, &to_closeup, side)?);
                captions.push(format!("age {}", t.age_text()));
            }
        }
        Ok(agesynth_data::draw::strip(&tiles, cols, &captions)?)
    }

    fn chip_size(&self, face: &crate::ager::AgedFace) -> u32 {
        face.chip.width()
    }

    /// Writes `<stem>_age<N>.png` for every target and `<stem>_strip.png`
    /// into `dir` (created if needed), each atomically.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<SavedFiles> {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::Write {
            path: dir.to_path_buf(),
            source: agesynth_core::Error::io("creating", dir, e),
        })?;
        let write = |path: &PathBuf, img: &FaceImage| -> Result<()> {
            agesynth_data::draw::save_png(path, img).map_err(|source| PipelineError::Write {
                path: path.clone(),
                source,
            })
        };
        let strip_img = self.strip(STRIP_TILE_HEIGHT)?;
        let images: Vec<PathBuf> = self
            .targets
            .iter()
            .map(|t| dir.join(format!("{stem}_age{}.png", format_age(t.age))))
            .collect();
        let strip = dir.join(format!("{stem}_strip.png"));
        // The PNGs are encoded in parallel (each is one thread's work).
        let jobs: Vec<(&PathBuf, &FaceImage)> = images
            .iter()
            .zip(&self.images)
            .chain(std::iter::once((&strip, &strip_img)))
            .collect();
        use rayon::prelude::*;
        jobs.par_iter()
            .with_max_len(1)
            .map(|(path, img)| write(path, img))
            .collect::<Result<Vec<()>>>()?;
        Ok(SavedFiles { images, strip })
    }

    /// The summary of this photo (read from `photo`) with the files written.
    pub fn report(&self, photo: &Path, saved: Option<&SavedFiles>) -> PhotoReport {
        PhotoReport {
            photo: photo.to_path_buf(),
            size: [self.original.width(), self.original.height()],
            faces: self
                .faces
                .iter()
                .map(|f| FaceReport {
                    bbox: f.bbox,
                    score: f.score,
                    landmarks5: f.landmarks5,
                    estimated_age: f.estimated_age,
                })
                .collect(),
            targets: self.targets.clone(),
            outputs: saved.map(SavedFiles::all).unwrap_or_default(),
        }
    }
}

/// The file-name stem outputs of `photo` get: its name without the
/// extension (`"photo"` when it has none).
pub fn output_stem(photo: &Path) -> String {
    photo
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "photo".to_string())
}
