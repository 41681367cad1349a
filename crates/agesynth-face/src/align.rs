//! dlib-style 5-point face alignment: the similarity transform that carries a
//! face's eye centres and mouth corners onto dlib's mean-face template, and
//! the chip warped with it (see [`agesynth_core::geometry`], which does the
//! estimation and the area-filtered bilinear warp).
//!
//! Every network gets the framing it was trained on:
//! - [`ChipSpec::RECOGNITION`]: dlib's face-recognition chip, 150×150 with
//!   padding 0.25;
//! - [`ChipSpec::utkface`]: the framing of the training data (UTKFace's
//!   aligned chips are dlib chips of size 200, padding 0.2), at any size —
//!   also what the age estimator and the GAN see.
//!
//! A `size`×`size` chip with padding `p` places the mean face's unit square at
//! `size · (p + [0, 1]) / (1 + 2p)`.

use agesynth_core::geometry::{FaceTemplate, FivePoints, Similarity};
use agesynth_core::{Error, FaceImage, Result};

use crate::detect::Face;

/// Size and padding of an aligned face chip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipSpec {
    /// Side of the square chip in pixels.
    pub size: u32,
    /// Margin around dlib's mean face, as a fraction of its extent.
    pub padding: f64,
}

impl ChipSpec {
    /// dlib's face-recognition chip: 150×150, padding 0.25 (the identity
    /// embedder's input).
    pub const RECOGNITION: ChipSpec = ChipSpec {
        size: 150,
        padding: FaceTemplate::DLIB_RECOGNITION_PADDING,
    };

    /// UTKFace's framing (dlib's default chip: padding 0.2) at `size`; the
    /// UTKFace chips themselves are `utkface(200)`.
    pub fn utkface(size: u32) -> Self {
        ChipSpec {
            size,
            padding: FaceTemplate::UTKFACE_PADDING,
        }
    }

    /// The template this spec frames faces with.
    pub fn template(&self) -> FaceTemplate {
        FaceTemplate {
            size: self.size,
            padding: self.padding,
        }
    }

    /// Where the five canonical points land in such a chip.
    pub fn five_points(&self) -> FivePoints {
        self.template().five_points()
    }
}

fn check(spec: &ChipSpec) -> Result<()> {
    if spec.size == 0 || !spec.padding.is_finite() || spec.padding < 0.0 {
        return Err(Error::InvalidInput(format!(
            "a face chip needs size >= 1 and a finite padding >= 0, got {spec:?}"
        )));
    }
    Ok(())
}

/// The transform from photo coordinates to chip coordinates that aligns the
/// landmarks (eye centres and mouth corners; the nose tip moves with head
/// pose and is not used, as in dlib) with the template of `spec`.
pub fn alignment(landmarks5: &FivePoints, spec: &ChipSpec) -> Result<Similarity> {
    check(spec)?;
    spec.template().alignment(&[
        (0, landmarks5[0]),
        (1, landmarks5[1]),
        (3, landmarks5[3]),
        (4, landmarks5[4]),
    ])
}

/// Aligns the face with landmarks `landmarks5` (in [`FivePoints`] order, as
/// [`crate::detect::Mtcnn::detect`] returns them) into a `size`×`size` chip
/// with `padding` (see the module docs for the conventions). Errors for
/// non-finite or coincident landmarks and for an empty chip size.
pub fn align(
    image: &FaceImage,
    landmarks5: &FivePoints,
    size: u32,
    padding: f64,
) -> Result<FaceImage> {
    align_chip(image, landmarks5, &ChipSpec { size, padding })
}

/// [`align`] with a [`ChipSpec`].
pub fn align_chip(
    image: &FaceImage,
    landmarks5: &FivePoints,
    spec: &ChipSpec,
) -> Result<FaceImage> {
    let t = alignment(landmarks5, spec)?;
    agesynth_core::geometry::warp(image, &t, spec.size, spec.size)
}

/// Aligns a detected face (see [`align_chip`]).
pub fn align_face(image: &FaceImage, face: &Face, spec: &ChipSpec) -> Result<FaceImage> {
    align_chip(image, &face.landmarks5, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_specs_follow_dlib() {
        assert_eq!(ChipSpec::RECOGNITION.size, 150);
        assert_eq!(ChipSpec::RECOGNITION.padding, 0.25);
        let u = ChipSpec::utkface(200).five_points();
        let u64_ = ChipSpec::utkface(64).five_points();
        for (a, b) in u.iter().zip(&u64_) {
            assert!((a[0] * 0.32 - b[0]).abs() < 1e-9 && (a[1] * 0.32 - b[1]).abs() < 1e-9);
        }
        // More padding shrinks the face towards the centre.
        let r = ChipSpec::RECOGNITION.five_points();
        let u150 = ChipSpec::utkface(150).five_points();
        assert!((r[1][0] - r[0][0]) < (u150[1][0] - u150[0][0]));
    }

    #[test]
    fn align_puts_marked_landmarks_on_the_template() {
        // Draw white dots at a rotated, scaled copy of the template's points
        // in a grey photo; after alignment they must sit on the template.
        let spec = ChipSpec::utkface(100);
        let canon = spec.five_points();
        let chip_to_photo = Similarity {
            a: 2.0 * 0.3f64.cos(),
            b: 2.0 * 0.3f64.sin(),
            tx: 40.0,
            ty: 10.0,
        };
        let (w, h) = (320u32, 280u32);
        let mut px = vec![40u8; (w * h * 3) as usize];
        let mut pts: FivePoints = [[0.0; 2]; 5];
        for (i, c) in canon.iter().enumerate() {
            let p = chip_to_photo.apply(*c);
            pts[i] = p;
            for dy in -2i64..=2 {
                for dx in -2i64..=2 {
                    let (x, y) = (p[0].round() as i64 + dx, p[1].round() as i64 + dy);
                    let o = ((y * w as i64 + x) * 3) as usize;
                    px[o..o + 3].fill(250);
                }
            }
        }
        let img = FaceImage::new(w, h, px).unwrap();
        let chip = align(&img, &pts, spec.size, spec.padding).unwrap();
        assert_eq!((chip.width(), chip.height()), (100, 100));
        for c in [canon[0], canon[1], canon[3], canon[4]] {
            let o = ((c[1].round() as usize) * 100 + c[0].round() as usize) * 3;
            assert!(chip.pixels()[o] > 150, "no dot at {c:?}");
        }
        // Far from the dots the chip is the background grey.
        assert!(chip.pixels()[0] < 60);
        // Degenerate landmarks are an error, not a panic.
        assert!(align(&img, &[[5.0, 5.0]; 5], 64, 0.2).is_err());
        assert!(align(&img, &pts, 0, 0.2).is_err());
        assert!(align(&img, &[[f64::NAN, 0.0]; 5], 64, 0.2).is_err());
    }
}
