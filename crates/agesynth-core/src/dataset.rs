//! Face datasets: labelled face images that a loader turns into batches.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Gender as labelled by a dataset (UTKFace: 0 male, 1 female).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// Labelled male.
    Male,
    /// Labelled female.
    Female,
}

/// What a dataset knows about one face, without decoding it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceMeta {
    /// The file the face comes from.
    pub path: PathBuf,
    /// Age in years.
    pub age: f32,
    /// Gender, where the dataset labels it.
    pub gender: Option<Gender>,
    /// Race code, where the dataset labels it (UTKFace: 0 White, 1 Black,
    /// 2 Asian, 3 Indian, 4 Others).
    pub race: Option<u8>,
    /// Subject (person) identifier, where the dataset has several photos of a
    /// person (FG-NET).
    pub subject: Option<u32>,
}

/// A decoded RGB image, 8 bits per channel, rows top to bottom, pixels
/// interleaved (`HWC`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaceImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl FaceImage {
    /// An image from interleaved RGB bytes; `pixels.len()` must be
    /// `width * height * 3`.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self> {
        let want = width as usize * height as usize * 3;
        if pixels.len() != want || width == 0 || height == 0 {
            return Err(Error::InvalidInput(format!(
                "a {width}x{height} RGB image needs {want} bytes, got {}",
                pixels.len()
            )));
        }
        Ok(FaceImage {
            width,
            height,
            pixels,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Interleaved RGB bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The bytes, consuming the image.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// Whether every pixel has R = G = B (a greyscale photo decoded to RGB).
    pub fn is_grey(&self) -> bool {
        self.pixels
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    }

    /// The image in grey: Rec. 601 luma in integers, so that a pixel with
    /// R = G = B keeps its value exactly.
    pub fn to_grey(&self) -> FaceImage {
        let pixels = self
            .pixels
            .chunks_exact(3)
            .flat_map(|p| {
                let y = (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000;
                [y as u8; 3]
            })
            .collect();
        FaceImage {
            width: self.width,
            height: self.height,
            pixels,
        }
    }

    /// Planar (`CHW`) floats in `[-1, 1]`: `x / 127.5 - 1`.
    pub fn to_chw_f32(&self) -> Vec<f32> {
        let hw = self.width as usize * self.height as usize;
        let mut out = vec![0f32; 3 * hw];
        for (i, px) in self.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * hw + i] = px[c] as f32 / 127.5 - 1.0;
            }
        }
        out
    }
}

/// A collection of labelled faces, each loadable as a framed square image.
///
/// Implementations decide how a face is framed (UTKFace chips are already
/// aligned; FG-NET photos are aligned from their landmarks) so that every
/// dataset yields faces framed alike. The trait is object-safe: loaders and
/// trainers hold `dyn FaceDataset`.
pub trait FaceDataset: Send + Sync {
    /// Number of faces.
    fn len(&self) -> usize;

    /// True when the dataset has no face.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Labels of face `index`; `None` past the end.
    fn meta(&self, index: usize) -> Option<&FaceMeta>;

    /// Decodes face `index`, framed like the training chips, as a
    /// `size`×`size` RGB image. Errors name the file and the cause.
    fn load(&self, index: usize, size: u32) -> Result<FaceImage>;
}

impl<T: FaceDataset + ?Sized> FaceDataset for &T {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        (**self).meta(index)
    }
    fn load(&self, index: usize, size: u32) -> Result<FaceImage> {
        (**self).load(index, size)
    }
}

impl<T: FaceDataset + ?Sized> FaceDataset for Box<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        (**self).meta(index)
    }
    fn load(&self, index: usize, size: u32) -> Result<FaceImage> {
        (**self).load(index, size)
    }
}

impl<T: FaceDataset + ?Sized> FaceDataset for std::sync::Arc<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        (**self).meta(index)
    }
    fn load(&self, index: usize, size: u32) -> Result<FaceImage> {
        (**self).load(index, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_image_checks_length_and_normalises() {
        assert!(FaceImage::new(2, 2, vec![0; 11]).is_err());
        assert!(FaceImage::new(0, 0, vec![]).is_err());
        // One pixel per extreme: 0 -> -1, 255 -> 1.
        let img = FaceImage::new(2, 1, vec![0, 255, 0, 255, 0, 255]).unwrap();
        let chw = img.to_chw_f32();
        // Planes: R = [0, 255], G = [255, 0], B = [0, 255].
        assert_eq!(chw, vec![-1.0, 1.0, 1.0, -1.0, -1.0, 1.0]);
    }
}
