//! Mapping UTKFace-framed images to the chips each network was trained on.
//!
//! dlib cuts a face chip out of a photo with `get_face_chip_details(shape,
//! size, padding)`: the five landmarks are fitted to dlib's mean face, whose
//! box is then widened by `padding` times its side on every edge and scaled
//! to `size`×`size`. Chips with the same landmarks but different paddings
//! are therefore concentric squares, of sides proportional to
//! `1 + 2·padding`.
//!
//! UTKFace's aligned chips (200×200) are such chips. Running dlib's 5-point
//! shape predictor on 291 of them (the 300 sampled with seed 0, those where
//! dlib's detector found one face) and asking for the padding-0 chip gives a
//! box of median side 144.2 px (std 6.2) centred at (99.5, 100.5) with angle
//! 0.001 rad, i.e. a padding of 0.194: UTKFace chips are dlib chips with
//! dlib's default padding, [`UTKFACE_PADDING`] = 0.2, at 200×200.
//!
//! So the chip a network wants is the centred square of side `(1 + 2p) /
//! 1.4` times the UTKFace chip's side, where `p` is the network's padding
//! (0.25 for face recognition: a square slightly *larger* than the UTKFace
//! chip, filled with black outside it as dlib does; 0.2 for the age net: the
//! whole chip). [`crop_resize`] resamples that square to the network's size
//! with a triangle (bilinear, antialiased when shrinking) filter written as
//! two matrix products, so that it is differentiable with respect to the
//! image.

use agesynth_core::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The padding of UTKFace's aligned chips in dlib's `get_face_chip_details`
/// convention (measured 0.194; dlib's default is 0.2).
pub const UTKFACE_PADDING: f64 = 0.2;

/// A square region of an image, in fractions of the image's side (may extend
/// past the image; outside pixels read as black).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipBox {
    /// Left edge, fraction of the width.
    pub left: f64,
    /// Top edge, fraction of the height.
    pub top: f64,
    /// Side, fraction of the width (and height).
    pub size: f64,
}

impl ChipBox {
    /// The whole image.
    pub const FULL: ChipBox = ChipBox {
        left: 0.0,
        top: 0.0,
        size: 1.0,
    };

    /// The box of a dlib chip with `padding` inside a UTKFace-framed image
    /// (a dlib chip with [`UTKFACE_PADDING`]).
    pub fn for_padding(padding: f64) -> ChipBox {
        let size = (1.0 + 2.0 * padding) / (1.0 + 2.0 * UTKFACE_PADDING);
        ChipBox {
            left: 0.5 - size / 2.0,
            top: 0.5 - size / 2.0,
            size,
        }
    }
}

pub use agesynth_core::filters::resample_matrix;

/// Resamples the square `chip` of each image of `images` `(N, C, H, W)` to
/// `(N, C, size, size)`. Differentiable with respect to `images`.
pub fn crop_resize(images: &Tensor, chip: ChipBox, size: usize) -> Result<Tensor> {
    agesynth_core::filters::resample(images, chip.left, chip.top, chip.size, size)
}

/// A rectangle of an image in fractions of its width and height (it may
/// extend past the image; outside pixels read as black). face-api's networks
/// take detection boxes, which are rectangles rather than dlib's squares.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceRect {
    /// Left edge, fraction of the width.
    pub left: f64,
    /// Top edge, fraction of the height.
    pub top: f64,
    /// Width, fraction of the width.
    pub width: f64,
    /// Height, fraction of the height.
    pub height: f64,
}

impl FaceRect {
    /// The whole image.
    pub const FULL: FaceRect = FaceRect {
        left: 0.0,
        top: 0.0,
        width: 1.0,
        height: 1.0,
    };

    /// The rectangle in whole pixels of a `width`×`height` image, each
    /// coordinate rounded down as face-api's `Box.floor()` does before it
    /// slices a face out of an image (at least one pixel wide and high).
    pub fn pixels(&self, width: usize, height: usize) -> PixelRect {
        PixelRect {
            x: (self.left * width as f64).floor() as i64,
            y: (self.top * height as f64).floor() as i64,
            width: ((self.width * width as f64).floor() as usize).max(1),
            height: ((self.height * height as f64).floor() as usize).max(1),
        }
    }
}

/// A rectangle of an image in pixels (it may extend past the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelRect {
    /// Left column.
    pub x: i64,
    /// Top row.
    pub y: i64,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// Row-major `(dst, src)` matrix of TF.js's `resizeBilinear(…, alignCorners
/// = false, halfPixelCenters = false)` along one axis, applied to the
/// `len` samples starting at `start` of a `src`-sample axis after
/// face-api's `padToSquare(…, isCenterImage = true)` padded them to `side`
/// samples. The output sample `i` reads the padded axis at `i·side/dst`
/// (no half-pixel offset, no antialiasing), mixing its floor and ceiling
/// (clamped to `side − 1`) linearly. padToSquare appends `round((side −
/// len) / 2)` zeros (JavaScript rounds halves up) and prepends the rest;
/// those zeros, and samples outside the source axis, are black.
pub fn tf_resize_matrix(src: usize, start: i64, len: usize, side: usize, dst: usize) -> Vec<f32> {
    let diff = side.saturating_sub(len);
    let before = diff - diff.div_ceil(2);
    let ratio = side as f64 / dst as f64;
    let mut m = vec![0f32; dst * src];
    for i in 0..dst {
        let f = ratio * i as f64;
        let lo = f.floor().max(0.0) as usize;
        let frac = f - lo as f64;
        let hi = (f.ceil() as usize).min(side - 1);
        for (p, w) in [(lo, 1.0 - frac), (hi, frac)] {
            if w == 0.0 || p < before || p - before >= len {
                continue;
            }
            let s = start + (p - before) as i64;
            if s >= 0 && (s as usize) < src {
                m[i * src + s as usize] += w as f32;
            }
        }
    }
    m
}

/// face-api's preparation of a face for a network of input `size`: the
/// rectangle `rect` sliced out of each image of `images` `(N, C, H, W)`
/// (pixels outside the image black), padded with black to a centred square
/// (`padToSquare(…, true)`) and resized to `size`×`size` by TF.js's bilinear
/// `resizeBilinear` (see [`tf_resize_matrix`]; skipped when the square
/// already has that size, as face-api does). Written as two matrix products,
/// so it is differentiable with respect to `images`.
pub fn face_api_resize(images: &Tensor, rect: PixelRect, size: usize) -> Result<Tensor> {
    let (n, c, h, w) = images.dims4()?;
    if h == 0 || w == 0 || size == 0 || rect.width == 0 || rect.height == 0 {
        return Err(Error::InvalidInput(format!(
            "cannot cut a {}x{} face out of a {h}x{w} image at {size}x{size}",
            rect.width, rect.height
        )));
    }
    let side = rect.width.max(rect.height);
    let whole = rect.x == 0 && rect.y == 0 && rect.width == w && rect.height == h;
    if whole && side == size && w == h {
        return Ok(images.clone());
    }
    let dev = images.device();
    let ry = Tensor::from_vec(
        tf_resize_matrix(h, rect.y, rect.height, side, size),
        (size, h),
        dev,
    )?
    .to_dtype(images.dtype())?;
    let rx = Tensor::from_vec(
        tf_resize_matrix(w, rect.x, rect.width, side, size),
        (size, w),
        dev,
    )?
    .to_dtype(images.dtype())?;
    let x = images.reshape((n * c, h, w))?;
    let x = ry.unsqueeze(0)?.broadcast_matmul(&x)?;
    let x = x.broadcast_matmul(&rx.t()?.unsqueeze(0)?)?;
    Ok(x.reshape((n, c, size, size))?)
}

/// Converts images in `[-1, 1]` to dlib's pixel scale `[0, 255]`.
pub fn to_pixels(images: &Tensor) -> Result<Tensor> {
    Ok(((images + 1.0)? * 127.5)?)
}

/// Subtracts per-channel `means` (RGB) from `(N, 3, H, W)` pixels and
/// divides by `divisor`.
pub fn normalize(pixels: &Tensor, means: [f32; 3], divisor: f32) -> Result<Tensor> {
    let (_, c, _, _) = pixels.dims4()?;
    if c != 3 {
        return Err(Error::InvalidInput(format!(
            "face networks take RGB images (N, 3, H, W), got {c} channels"
        )));
    }
    let m = Tensor::from_vec(means.to_vec(), (1, 3, 1, 1), pixels.device())?
        .to_dtype(pixels.dtype())?;
    Ok((pixels.broadcast_sub(&m)? / divisor as f64)?)
}

/// Checks that `images` is `(N, 3, H, W)` f32 with N ≥ 1 and finite values.
pub(crate) fn check_images(images: &Tensor, what: &str) -> Result<()> {
    let dims = images.dims();
    if dims.len() != 4 || dims[1] != 3 || dims[0] == 0 {
        return Err(Error::InvalidInput(format!(
            "{what} takes a non-empty batch (N, 3, H, W), got shape {dims:?}"
        )));
    }
    let total = images
        .detach()
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    if !total.is_finite() {
        return Err(Error::InvalidInput(format!(
            "{what}: the images contain NaN or infinite values"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn resample_rows_sum_to_one_inside_and_identity_at_same_size() {
        let m = resample_matrix(200, 64, 0.0, 1.0);
        for i in 0..64 {
            let s: f32 = m[i * 200..(i + 1) * 200].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "row {i} sums to {s}");
        }
        let id = resample_matrix(5, 5, 0.0, 1.0);
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(id[i * 5 + j], if i == j { 1.0 } else { 0.0 });
            }
        }
        // A box larger than the image leaves black (zero) borders.
        let b = ChipBox::for_padding(0.25);
        let m = resample_matrix(200, 150, b.left, b.size);
        let first: f32 = m[..200].iter().sum();
        assert!(first < 0.01, "{first}");
    }

    #[test]
    fn tf_resize_samples_without_half_pixel_offset_and_pads_like_face_api() {
        // 4 -> 2: outputs read samples 0 and 2; 2 -> 4: 0, 0.5, 1, 1 (clamped).
        assert_eq!(
            tf_resize_matrix(4, 0, 4, 4, 2),
            vec![1., 0., 0., 0., 0., 0., 1., 0.]
        );
        assert_eq!(
            tf_resize_matrix(2, 0, 2, 2, 4),
            vec![1., 0., 0.5, 0.5, 0., 1., 0., 1.]
        );
        // Same size: the identity.
        let id = tf_resize_matrix(3, 0, 3, 3, 3);
        assert_eq!(id, vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]);
        // padToSquare of 3 samples to 4 appends round(0.5) = 1 zero (JS
        // rounds halves up) and prepends none; of 3 to 6 it appends
        // round(1.5) = 2 and prepends 1.
        let m = tf_resize_matrix(3, 0, 3, 4, 4);
        assert_eq!(&m[..3], &[1., 0., 0.]);
        assert_eq!(&m[9..], &[0., 0., 0.]);
        let m = tf_resize_matrix(3, 0, 3, 6, 6);
        assert_eq!(&m[..3], &[0., 0., 0.]);
        assert_eq!(&m[3..6], &[1., 0., 0.]);
        assert_eq!(&m[9..12], &[0., 0., 1.]);
        assert_eq!(&m[12..], &[0.; 6]);
        // A crop starting before the image: outside samples are black.
        let m = tf_resize_matrix(4, -1, 3, 3, 3);
        assert_eq!(m, vec![0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0.]);
    }

    #[test]
    fn face_api_resize_slices_pads_and_resizes() {
        let x = Tensor::arange(0f32, 16.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 4, 4))
            .unwrap();
        // The whole square image at its own size is returned as is.
        let r = FaceRect::FULL.pixels(4, 4);
        assert_eq!(
            face_api_resize(&x, r, 4)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            (0..16).map(|v| v as f32).collect::<Vec<_>>()
        );
        // A 2-wide, 3-high slice padded to 3x3 (one black column appended).
        let rect = PixelRect {
            x: 1,
            y: 0,
            width: 2,
            height: 3,
        };
        let y = face_api_resize(&x, rect, 3).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1., 2., 0., 5., 6., 0., 9., 10., 0.]
        );
        let f = FaceRect {
            left: 0.051,
            top: -0.03,
            width: 0.858,
            height: 0.963,
        };
        assert_eq!(
            f.pixels(200, 200),
            PixelRect {
                x: 10,
                y: -6,
                width: 171,
                height: 192
            }
        );
    }

    #[test]
    fn crop_resize_is_differentiable() {
        let x = candle_core::Var::from_tensor(
            &Tensor::rand(0f32, 1.0, (1, 3, 20, 20), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let y = crop_resize(x.as_tensor(), ChipBox::for_padding(0.25), 8).unwrap();
        assert_eq!(y.dims(), &[1, 3, 8, 8]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap();
        assert!(
            gx.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
    }
}
