//! Image operations: decoding with limits, area-filtered resizing, crops,
//! flips, normalisation and seeded augmentation.
//!
//! Everything here is a pure function of its inputs (and, for augmentation,
//! of a seed), so that a pipeline gives the same pixels on every run and on
//! any number of threads.

use std::{io::Cursor, path::Path};

use agesynth_core::{Error, FaceImage, Result};
use serde::{Deserialize, Serialize};

/// Limits that guard decoding against decompression bombs and absurd files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted `width * height` (default 50 megapixels).
    pub max_pixels: u64,
    /// Largest accepted file size in bytes (default 256 MiB). Files are read
    /// no further than this, so endless inputs (`/dev/zero`) stop here.
    pub max_file_bytes: u64,
    /// Smallest accepted width and height (default 1; face chips: 8).
    #[serde(default = "one")]
    pub min_side: u32,
}

fn one() -> u32 {
    1
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 50_000_000,
            max_file_bytes: 256 << 20,
            min_side: 1,
        }
    }
}

impl DecodeLimits {
    /// The limits of face-chip datasets (UTKFace, a CSV folder): the defaults,
    /// and at least [`MIN_CHIP_SIDE`] pixels a side (a 1×1 image is no face).
    pub fn chips() -> Self {
        DecodeLimits {
            min_side: MIN_CHIP_SIDE,
            ..DecodeLimits::default()
        }
    }
}

/// The smallest width and height of a face chip, in pixels.
pub const MIN_CHIP_SIDE: u32 = 8;

/// Reads the file at `path` within `limits.max_file_bytes` (never past it:
/// a device or pipe without end stops there). Errors name the file.
pub fn read_file(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>> {
    agesynth_core::io::read_limited(path, limits.max_file_bytes, "an image").map_err(|e| match e {
        Error::FileTooLarge { limit, .. } => {
            let len = std::fs::metadata(path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            Error::image(
                path,
                match len {
                    Some(len) => {
                        format!("file of {len} bytes exceeds the limit of {limit} bytes")
                    }
                    None => format!(
                        "not a regular file, and its data exceeds the limit of {limit} bytes"
                    ),
                },
            )
        }
        other => other,
    })
}

/// Reads and decodes the JPEG or PNG file at `path` to 8-bit RGB (greyscale
/// and alpha images are converted), within `limits`. Errors name the file:
/// missing, empty, too large, not JPEG/PNG, truncated or corrupt.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<FaceImage> {
    let bytes = read_file(path, limits)?;
    decode_bytes(&bytes, path, limits)
}

/// Whether a JPEG's segments are whole and its first scan is followed by
/// an end-of-image marker (walking the marker segments, so that an EXIF
/// thumbnail's own markers are skipped; entropy-coded data cannot hold
/// `FF D9` except as the marker).
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while i < bytes.len() && bytes[i] == 0xff && bytes.get(i + 1) == Some(&0xff) {
            i += 1;
        }
        if i + 4 > bytes.len() || bytes[i] != 0xff {
            return false;
        }
        let marker = bytes[i + 1];
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xd9 || len < 2 {
            return false;
        }
        let end = i + 2 + len;
        if end > bytes.len() {
            return false;
        }
        if marker == 0xda {
            return bytes[end..].windows(2).any(|w| w == [0xff, 0xd9]);
        }
        i = end;
    }
}

/// Checks JPEG or PNG `bytes` without decoding the pixels: a known format,
/// a readable header within `limits` (size, pixel count), and, for a JPEG,
/// the end-of-image marker (a truncated JPEG would decode to grey). Returns
/// the format and the size; errors name `path`.
pub fn check_bytes(
    bytes: &[u8],
    path: &Path,
    limits: &DecodeLimits,
) -> Result<(image::ImageFormat, u32, u32)> {
    if bytes.is_empty() {
        return Err(Error::image(path, "empty file"));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| Error::image(path, "not a JPEG or PNG image (unrecognised header)"))?;
    if !matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
        return Err(Error::image(
            path,
            format!("unsupported format {format:?}: only JPEG and PNG are read"),
        ));
    }
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::image(
            path,
            "truncated JPEG: the data ends before its end-of-image marker",
        ));
    }
    // The header's size, before anything is allocated for the pixels.
    let (w, h) = image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| Error::image(path, format!("unreadable {format:?} header: {e}")))?;
    let pixels = w as u64 * h as u64;
    if w == 0 || h == 0 {
        return Err(Error::image(path, format!("image has no pixels ({w}x{h})")));
    }
    if pixels > limits.max_pixels {
        return Err(Error::image(
            path,
            format!(
                "{w}x{h} image ({pixels} pixels) exceeds the limit of {} pixels \
                 (possible decompression bomb)",
                limits.max_pixels
            ),
        ));
    }
    if w < limits.min_side || h < limits.min_side {
        return Err(Error::image(
            path,
            format!(
                "{w}x{h} image is smaller than the {0}x{0} minimum",
                limits.min_side
            ),
        ));
    }
    Ok((format, w, h))
}

/// Checks the file at `path` as [`check_bytes`] does (reading it within
/// the limits, decoding no pixels): what `agesynth data stats` and dataset
/// scans use to tell usable images from broken ones quickly.
pub fn check_file(path: &Path, limits: &DecodeLimits) -> Result<(u32, u32)> {
    let bytes = read_file(path, limits)?;
    check_bytes(&bytes, path, limits).map(|(_, w, h)| (w, h))
}

/// Decodes JPEG or PNG `bytes` to 8-bit RGB within `limits`; `path` only
/// names the source in errors. A truncated JPEG is refused (the decoder
/// would fill the missing part with grey), as is an image under
/// `limits.min_side`.
pub fn decode_bytes(bytes: &[u8], path: &Path, limits: &DecodeLimits) -> Result<FaceImage> {
    let (format, w, h) = check_bytes(bytes, path, limits)?;
    let pixels = w as u64 * h as u64;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(w);
    lim.max_image_height = Some(h);
    // RGBA16 at most, plus the decoder's working memory.
    lim.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(lim);
    let img = reader.decode().map_err(|e| {
        Error::image(
            path,
            format!("corrupt or truncated {format:?} ({w}x{h}): {e}"),
        )
    })?;
    let (w, h) = (img.width(), img.height());
    let rgb = img.into_rgb8().into_raw();
    FaceImage::new(w, h, rgb).map_err(|e| Error::image(path, e.to_string()))
}

/// Per output pixel, the source pixels it averages and their weights.
struct Taps {
    start: Vec<u32>,
    weights: Vec<Vec<f32>>,
}

/// Taps for resampling `src` pixels to `dst` pixels: exact area averaging
/// when shrinking (every source pixel counted by the fraction of it an output
/// pixel covers), bilinear interpolation with pixel centres aligned when
/// enlarging.
fn taps(src: u32, dst: u32) -> Taps {
    let scale = src as f64 / dst as f64;
    let mut start = Vec::with_capacity(dst as usize);
    let mut weights = Vec::with_capacity(dst as usize);
    for j in 0..dst {
        if scale > 1.0 {
            let (lo, hi) = (j as f64 * scale, (j + 1) as f64 * scale);
            let first = lo.floor() as u32;
            let last = (hi.ceil() as u32).min(src);
            let ws: Vec<f32> = (first..last)
                .map(|k| {
                    let overlap = (hi.min(k as f64 + 1.0) - lo.max(k as f64)).max(0.0);
                    (overlap / scale) as f32
                })
                .collect();
            start.push(first);
            weights.push(ws);
        } else {
            let x = ((j as f64 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f64);
            let x0 = x.floor() as u32;
            let t = (x - x0 as f64) as f32;
            if x0 + 1 < src && t > 0.0 {
                start.push(x0);
                weights.push(vec![1.0 - t, t]);
            } else {
                start.push(x0);
                weights.push(vec![1.0]);
            }
        }
    }
    Taps { start, weights }
}

/// Resizes to `width`×`height`: area-filtered (every source pixel averaged in,
/// no aliasing) where it shrinks, bilinear where it enlarges. Aspect ratio is
/// not preserved; crop first for that.
pub fn resize(img: &FaceImage, width: u32, height: u32) -> Result<FaceImage> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidInput(format!(
            "cannot resize to {width}x{height}"
        )));
    }
    let (sw, sh) = (img.width(), img.height());
    if (sw, sh) == (width, height) {
        return Ok(img.clone());
    }
    let src = img.pixels();
    // Horizontal pass: sh rows of `width` pixels, f32.
    let tx = taps(sw, width);
    let mut mid = vec![0f32; sh as usize * width as usize * 3];
    for y in 0..sh as usize {
        let row = &src[y * sw as usize * 3..(y + 1) * sw as usize * 3];
        let out = &mut mid[y * width as usize * 3..(y + 1) * width as usize * 3];
        for (j, (s, ws)) in tx.start.iter().zip(&tx.weights).enumerate() {
            let mut acc = [0f32; 3];
            for (k, &w) in ws.iter().enumerate() {
                let p = (*s as usize + k) * 3;
                acc[0] += w * row[p] as f32;
                acc[1] += w * row[p + 1] as f32;
                acc[2] += w * row[p + 2] as f32;
            }
            out[j * 3..j * 3 + 3].copy_from_slice(&acc);
        }
    }
    // Vertical pass.
    let ty = taps(sh, height);
    let stride = width as usize * 3;
    let mut out = vec![0u8; height as usize * stride];
    let mut acc = vec![0f32; stride];
    for (i, (s, ws)) in ty.start.iter().zip(&ty.weights).enumerate() {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (k, &w) in ws.iter().enumerate() {
            let row = &mid[(*s as usize + k) * stride..(*s as usize + k + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += w * v;
            }
        }
        for (o, a) in out[i * stride..(i + 1) * stride].iter_mut().zip(&acc) {
            *o = a.round().clamp(0.0, 255.0) as u8;
        }
    }
    FaceImage::new(width, height, out)
}

/// The `width`×`height` region whose top-left pixel is (`x`, `y`).
pub fn crop(img: &FaceImage, x: u32, y: u32, width: u32, height: u32) -> Result<FaceImage> {
    if width == 0
        || height == 0
        || x as u64 + width as u64 > img.width() as u64
        || y as u64 + height as u64 > img.height() as u64
    {
        return Err(Error::InvalidInput(format!(
            "crop {width}x{height} at ({x}, {y}) is outside a {}x{} image",
            img.width(),
            img.height()
        )));
    }
    let stride = img.width() as usize * 3;
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for row in y..y + height {
        let start = row as usize * stride + x as usize * 3;
        out.extend_from_slice(&img.pixels()[start..start + width as usize * 3]);
    }
    FaceImage::new(width, height, out)
}

/// The largest centred square of the image (a no-op for square images).
pub fn centre_crop_square(img: &FaceImage) -> Result<FaceImage> {
    let side = img.width().min(img.height());
    if img.width() == img.height() {
        return Ok(img.clone());
    }
    crop(
        img,
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    )
}

/// Centre-crops to a square and resizes to `size`×`size`: how images that
/// are already framed (UTKFace chips, CSV folders) are loaded.
pub fn square(img: &FaceImage, size: u32) -> Result<FaceImage> {
    resize(&centre_crop_square(img)?, size, size)
}

/// The mirror image (left and right swapped).
pub fn flip_horizontal(img: &FaceImage) -> FaceImage {
    let stride = img.width() as usize * 3;
    let mut out = img.pixels().to_vec();
    for row in out.chunks_exact_mut(stride) {
        let n = row.len() / 3;
        for i in 0..n / 2 {
            for c in 0..3 {
                row.swap(i * 3 + c, (n - 1 - i) * 3 + c);
            }
        }
    }
    // Same size and length as the input.
    FaceImage::new(img.width(), img.height(), out).unwrap_or_else(|_| img.clone())
}

/// Writes `img` as planar (`CHW`) floats in `[-1, 1]` (`x / 127.5 - 1`) into
/// `out`, which must hold `3 * width * height` values.
pub fn normalise_into(img: &FaceImage, out: &mut [f32]) -> Result<()> {
    let hw = img.width() as usize * img.height() as usize;
    if out.len() != 3 * hw {
        return Err(Error::InvalidInput(format!(
            "normalising a {}x{} image needs {} floats, got {}",
            img.width(),
            img.height(),
            3 * hw,
            out.len()
        )));
    }
    let (r, gb) = out.split_at_mut(hw);
    let (g, b) = gb.split_at_mut(hw);
    for (i, px) in img.pixels().chunks_exact(3).enumerate() {
        r[i] = px[0] as f32 * (1.0 / 127.5) - 1.0;
        g[i] = px[1] as f32 * (1.0 / 127.5) - 1.0;
        b[i] = px[2] as f32 * (1.0 / 127.5) - 1.0;
    }
    Ok(())
}

/// The image moved by (`dx`, `dy`) pixels, edge pixels repeated into the gap.
pub fn shift(img: &FaceImage, dx: i64, dy: i64) -> FaceImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let src = img.pixels();
    let mut out = Vec::with_capacity(src.len());
    for y in 0..h {
        let sy = (y - dy).clamp(0, h - 1);
        for x in 0..w {
            let sx = (x - dx).clamp(0, w - 1);
            let p = ((sy * w + sx) * 3) as usize;
            out.extend_from_slice(&src[p..p + 3]);
        }
    }
    FaceImage::new(img.width(), img.height(), out).unwrap_or_else(|_| img.clone())
}

/// Mixes a seed with two counters into a new, well-spread seed (SplitMix64
/// finaliser): per-sample seeds that do not depend on thread timing.
pub fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(31);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::synthetic_face;

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> FaceImage {
        FaceImage::new(w, h, rgb.repeat((w * h) as usize)).unwrap()
    }

    #[test]
    fn resize_keeps_flat_colours_and_sizes() {
        let img = solid(200, 200, [10, 128, 250]);
        for s in [1, 7, 64, 128, 200, 300] {
            let r = resize(&img, s, s).unwrap();
            assert_eq!((r.width(), r.height()), (s, s));
            assert!(
                r.pixels().chunks(3).all(|p| p == [10, 128, 250]),
                "size {s}"
            );
        }
        assert!(resize(&img, 0, 4).is_err());
    }

    #[test]
    fn area_downscale_averages_blocks() {
        // A 4x2 image of two 2x2 blocks, black and white, shrunk to 2x1.
        let mut px = Vec::new();
        for _ in 0..2 {
            px.extend([0u8; 6]);
            px.extend([255u8; 6]);
        }
        let img = FaceImage::new(4, 2, px).unwrap();
        let r = resize(&img, 2, 1).unwrap();
        assert_eq!(r.pixels(), &[0, 0, 0, 255, 255, 255]);
        // A fine checkerboard shrunk by 3.125 becomes near-flat grey (no
        // aliasing; a window of 3.125 pixels holds up to ~56 % of one colour).
        let w = 200;
        let cb: Vec<u8> = (0..w * w)
            .flat_map(|i| {
                let v = if (i % w + i / w) % 2 == 0 { 0 } else { 255 };
                [v, v, v]
            })
            .collect();
        let r = resize(&FaceImage::new(w, w, cb).unwrap(), 64, 64).unwrap();
        let (lo, hi) = (r.pixels().iter().min(), r.pixels().iter().max());
        assert!(
            r.pixels().iter().all(|&v| (105..=150).contains(&v)),
            "{lo:?}..{hi:?}"
        );
    }

    #[test]
    fn crops_and_flips() {
        let img = synthetic_face(30, 20, 3);
        let sq = centre_crop_square(&img).unwrap();
        assert_eq!((sq.width(), sq.height()), (20, 20));
        assert_eq!(sq, crop(&img, 5, 0, 20, 20).unwrap());
        assert!(crop(&img, 25, 0, 10, 10).is_err());
        let f = flip_horizontal(&img);
        assert_ne!(f, img);
        assert_eq!(flip_horizontal(&f), img);
        assert_eq!(&f.pixels()[0..3], &img.pixels()[29 * 3..30 * 3]);
    }

    #[test]
    fn normalise_matches_core() {
        let img = synthetic_face(9, 5, 1);
        let mut out = vec![0f32; 3 * 45];
        normalise_into(&img, &mut out).unwrap();
        let core = img.to_chw_f32();
        assert!(out.iter().zip(&core).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(normalise_into(&img, &mut out[1..]).is_err());
    }
}
