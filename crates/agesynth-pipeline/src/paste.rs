//! Putting an aged face chip back into the full-resolution photo.
//!
//! The chip was cut from the photo with a similarity `to_chip` (photo pixel
//! coordinates → chip pixel coordinates). Each photo pixel whose chip
//! position lies under the [`FaceMask`] is changed; every other pixel is
//! left exactly as it was, so hair, background and the rest of the picture
//! stay bit-identical. The chip is sampled with Catmull-Rom bicubic
//! interpolation, so a 64-pixel output enlarges smoothly onto a face of any
//! size.
//!
//! Two ways to put the face back ([`PasteMode`]):
//! - [`PasteMode::Residual`] (the default) adds only what the generator
//!   changed — `output − input chip`, enlarged — to the photo's own face, so
//!   the photo keeps its full-resolution detail (skin texture, eyes, sharp
//!   edges) wherever the generator kept the face;
//! - [`PasteMode::Replace`] blends the enlarged output chip itself in, which
//!   looks soft on a face much larger than the chip.

use agesynth_core::geometry::Similarity;
use agesynth_core::FaceImage;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How an aged chip is put back into the photo (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasteMode {
    /// Add the generator's change (`output − input`) to the photo's face.
    #[default]
    Residual,
    /// Blend the generated chip itself in.
    Replace,
}

/// A soft elliptical mask in chip coordinates: 1 over the face, ramping
/// smoothly (smoothstep) to 0 at the ellipse's edge, 0 outside it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceMask {
    /// Semi-axis along x, as a fraction of the chip's side.
    pub radius_x: f64,
    /// Semi-axis along y, as a fraction of the chip's side.
    pub radius_y: f64,
    /// Centre's offset below the chip's centre, as a fraction of its side.
    pub centre_dy: f64,
    /// Width of the ramp from 1 to 0, as a fraction of the radius (0: a hard
    /// edge; 1: the ramp spans the whole ellipse).
    pub feather: f64,
}

impl Default for FaceMask {
    /// An ellipse over the face of a UTKFace-framed chip (forehead to chin,
    /// cheek to cheek; it touches the chip's top and bottom edges, so the
    /// weight reaches 0 inside the chip), with the outer 30 % of its radius
    /// feathered.
    fn default() -> Self {
        FaceMask {
            radius_x: 0.44,
            radius_y: 0.5,
            centre_dy: 0.0,
            feather: 0.3,
        }
    }
}

impl FaceMask {
    /// The same mask with a feather width of `feather` (clamped to
    /// `[0, 1]`).
    pub fn with_feather(mut self, feather: f64) -> Self {
        self.feather = if feather.is_finite() {
            feather.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The mask's weight in `[0, 1]` at chip position (`x`, `y`) of a chip
    /// of side `size` (pixel centres at integers).
    pub fn weight(&self, size: u32, x: f64, y: f64) -> f64 {
        let s = size as f64;
        let (cx, cy) = (s / 2.0 - 0.5, s / 2.0 - 0.5 + self.centre_dy * s);
        let u = (x - cx) / (self.radius_x * s);
        let v = (y - cy) / (self.radius_y * s);
        let r = (u * u + v * v).sqrt();
        if r >= 1.0 || !r.is_finite() {
            return 0.0;
        }
        if self.feather <= 0.0 {
            return 1.0;
        }
        let t = ((1.0 - r) / self.feather).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    }
}

/// A chip of `size`×`size` RGB values in pixel units (`[0, 255]` for an
/// image, any sign for a residual), row-major, interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct ChipField {
    size: u32,
    values: Vec<f32>,
}

impl ChipField {
    /// Wraps `values` (`size · size · 3` of them).
    pub fn new(size: u32, values: Vec<f32>) -> Result<Self> {
        if size == 0 || values.len() != (size as usize).pow(2) * 3 {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "a {size}x{size} chip needs {} values, got {}",
                (size as usize).pow(2) * 3,
                values.len()
            ))
            .into());
        }
        Ok(ChipField { size, values })
    }

    /// The pixels of a square image.
    pub fn from_image(img: &FaceImage) -> Result<Self> {
        if img.width() != img.height() {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "a chip must be square, got {}x{}",
                img.width(),
                img.height()
            ))
            .into());
        }
        Self::new(
            img.width(),
            img.pixels().iter().map(|&v| v as f32).collect(),
        )
    }

    /// Side of the chip.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The values, `size · size · 3`, row-major RGB.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// `self − other`, value by value (sizes must match).
    pub fn minus(&self, other: &ChipField) -> Result<ChipField> {
        if self.size != other.size {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "chips of different sizes: {} and {}",
                self.size, other.size
            ))
            .into());
        }
        let values = self
            .values
            .iter()
            .zip(&other.values)
            .map(|(a, b)| a - b)
            .collect();
        Ok(ChipField {
            size: self.size,
            values,
        })
    }

    /// Catmull-Rom bicubic sample at (`x`, `y`) (pixel centres at integers;
    /// the edge pixels repeat outside).
    pub fn sample(&self, x: f64, y: f64) -> [f32; 3] {
        let n = self.size as i64;
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (wx, wy) = (catmull_rom(fx), catmull_rom(fy));
        let (x0, y0) = (x0 as i64, y0 as i64);
        let mut acc = [0f64; 3];
        for (j, wyj) in wy.iter().enumerate() {
            let yy = (y0 - 1 + j as i64).clamp(0, n - 1) as usize;
            for (i, wxi) in wx.iter().enumerate() {
                let xx = (x0 - 1 + i as i64).clamp(0, n - 1) as usize;
                let w = wxi * wyj;
                let o = (yy * self.size as usize + xx) * 3;
                for (a, v) in acc.iter_mut().zip(&self.values[o..o + 3]) {
                    *a += w * *v as f64;
                }
            }
        }
        [acc[0] as f32, acc[1] as f32, acc[2] as f32]
    }
}

/// Catmull-Rom weights of the four taps around a fractional offset `t`.
fn catmull_rom(t: f64) -> [f64; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// The photo pixels `[x0, x1) × [y0, y1)` a chip cut with `to_chip` covers
/// (clipped to the photo); empty when it lies outside.
pub fn chip_footprint(
    to_chip: &Similarity,
    size: u32,
    width: u32,
    height: u32,
) -> Result<[u32; 4]> {
    let inv = to_chip.inverse()?;
    let s = size as f64;
    let corners = [
        [-0.5, -0.5],
        [s - 0.5, -0.5],
        [-0.5, s - 0.5],
        [s - 0.5, s - 0.5],
    ]
    .map(|c| inv.apply(c));
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in corners {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let clip = |v: f64, max: u32| v.clamp(0.0, max as f64) as u32;
    Ok([
        clip(lo[0].floor(), width),
        clip(lo[1].floor(), height),
        clip(hi[0].ceil() + 1.0, width),
        clip(hi[1].ceil() + 1.0, height),
    ])
}

/// Pastes `chip` (see [`PasteMode`]: the generator's output for
/// [`PasteMode::Replace`], `output − input` for [`PasteMode::Residual`])
/// into `photo` through the inverse of `to_chip`, weighted by `mask`.
/// Pixels where the mask is 0 are not touched.
pub fn paste(
    photo: &mut FaceImage,
    chip: &ChipField,
    to_chip: &Similarity,
    mask: &FaceMask,
    mode: PasteMode,
) -> Result<()> {
    let (w, h) = (photo.width(), photo.height());
    let [x0, y0, x1, y1] = chip_footprint(to_chip, chip.size(), w, h)?;
    let mut px = std::mem::replace(photo, FaceImage::new(1, 1, vec![0; 3])?).into_pixels();
    for y in y0..y1 {
        for x in x0..x1 {
            let [cx, cy] = to_chip.apply([x as f64, y as f64]);
            let m = mask.weight(chip.size(), cx, cy);
            if m <= 0.0 {
                continue;
            }
            let v = chip.sample(cx, cy);
            let o = (y as usize * w as usize + x as usize) * 3;
            for c in 0..3 {
                let old = px[o + c] as f64;
                let new = match mode {
                    PasteMode::Residual => old + m * v[c] as f64,
                    PasteMode::Replace => old + m * (v[c] as f64 - old),
                };
                px[o + c] = new.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    *photo = FaceImage::new(w, h, px)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_photo(w: u32, h: u32) -> FaceImage {
        let mut state = 12345u32;
        let px = (0..w * h * 3)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        FaceImage::new(w, h, px).unwrap()
    }

    #[test]
    fn paste_back_keeps_far_pixels_bit_identical() {
        let photo = noise_photo(300, 200);
        // A chip of 32 px covering a ~96 px face around (150, 100), rotated.
        let to_chip = Similarity {
            a: 0.33 * 0.2f64.cos(),
            b: 0.33 * 0.2f64.sin(),
            tx: 0.0,
            ty: 0.0,
        };
        let c = to_chip.apply([150.0, 100.0]);
        let to_chip = Similarity {
            tx: 15.5 - c[0],
            ty: 15.5 - c[1],
            ..to_chip
        };
        let bright = ChipField::new(32, vec![255.0; 32 * 32 * 3]).unwrap();
        for mode in [PasteMode::Replace, PasteMode::Residual] {
            let mut out = photo.clone();
            paste(&mut out, &bright, &to_chip, &FaceMask::default(), mode).unwrap();
            let mut changed_far = 0;
            let mut changed_centre = false;
            for y in 0..200u32 {
                for x in 0..300u32 {
                    let o = ((y * 300 + x) * 3) as usize;
                    let same = out.pixels()[o..o + 3] == photo.pixels()[o..o + 3];
                    let d = ((x as f64 - 150.0).powi(2) + (y as f64 - 100.0).powi(2)).sqrt();
                    // The chip spans 32 / 0.33 ≈ 97 px: nothing beyond its
                    // half-diagonal may change.
                    if d > 70.0 && !same {
                        changed_far += 1;
                    }
                    if d < 5.0 && out.pixels()[o] == 255 {
                        changed_centre = true;
                    }
                }
            }
            assert_eq!(changed_far, 0, "{mode:?} changed pixels far from the face");
            assert!(changed_centre, "{mode:?} did not paste the face");
        }
    }

    #[test]
    fn mask_ramps_smoothly_and_residual_zero_is_identity() {
        let m = FaceMask::default();
        assert_eq!(m.weight(64, 31.5, 31.5), 1.0);
        assert_eq!(m.weight(64, 0.0, 0.0), 0.0);
        // Monotone along a ray from the centre, no jumps.
        let mut prev = 1.0;
        for i in 0..=64 {
            let w = m.weight(64, 31.5 + i as f64 * 0.5, 31.5);
            assert!(
                w <= prev + 1e-12 && prev - w < 0.1,
                "step at {i}: {prev} -> {w}"
            );
            prev = w;
        }
        // A zero residual leaves the whole photo as it was.
        let photo = noise_photo(80, 60);
        let mut out = photo.clone();
        let zero = ChipField::new(16, vec![0.0; 16 * 16 * 3]).unwrap();
        let to_chip = Similarity {
            a: 0.4,
            b: 0.0,
            tx: -8.0,
            ty: -4.0,
        };
        paste(&mut out, &zero, &to_chip, &m, PasteMode::Residual).unwrap();
        assert_eq!(out, photo);
        // Bicubic sampling reproduces a linear ramp exactly.
        let ramp: Vec<f32> = (0..8 * 8)
            .flat_map(|i| {
                let x = (i % 8) as f32;
                [x * 10.0, 0.0, 0.0]
            })
            .collect();
        let f = ChipField::new(8, ramp).unwrap();
        assert!((f.sample(3.25, 4.0)[0] - 32.5).abs() < 1e-4);
    }
}
