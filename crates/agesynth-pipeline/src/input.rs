//! Reading photos: JPEG or PNG, within the decode guards of
//! [`agesynth_data::transform`] (file size, pixel count, corrupt and
//! truncated data), greyscale expanded to RGB, and the EXIF orientation
//! applied so that the pixels stand the way the camera's user saw them.

use std::{io::Cursor, path::Path};

use agesynth_core::FaceImage;
use agesynth_data::transform::{decode_bytes, DecodeLimits};
use image::{metadata::Orientation, DynamicImage, ImageDecoder, RgbImage};

use crate::error::{PipelineError, Result};

/// The photos named by `paths`: a file stands for itself (whatever its
/// name, so that a bad one is reported rather than skipped); a folder for
/// its `.jpg`, `.jpeg` and `.png` files (any letter case, not recursive),
/// sorted by name. A folder that cannot be listed is an error naming it.
pub fn expand_inputs(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let listing = std::fs::read_dir(p).map_err(|e| PipelineError::Decode {
            path: p.clone(),
            source: agesynth_core::Error::io("listing", p, e),
        })?;
        let mut found: Vec<std::path::PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                f.is_file()
                    && f.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        matches!(x.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                    })
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Reads the photo at `path` (see the module docs). Errors are
/// [`PipelineError::Decode`] naming the file and the cause.
pub fn load_photo(path: &Path, limits: &DecodeLimits) -> Result<FaceImage> {
    let decode_err = |source| PipelineError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| decode_err(agesynth_core::Error::io("reading", path, e)))?
        .len();
    if len > limits.max_file_bytes {
        return Err(decode_err(agesynth_core::Error::image(
            path,
            format!(
                "file of {len} bytes exceeds the limit of {} bytes",
                limits.max_file_bytes
            ),
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| decode_err(agesynth_core::Error::io("reading", path, e)))?;
    decode_photo(&bytes, path, limits)
}

/// Decodes photo `bytes` (see [`load_photo`]); `path` only names the source
/// in errors.
pub fn decode_photo(bytes: &[u8], path: &Path, limits: &DecodeLimits) -> Result<FaceImage> {
    if bytes.starts_with(&[0xff, 0xd8]) && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a truncated image with grey instead of
        // failing; a half photo is no input to age.
        return Err(PipelineError::Decode {
            path: path.to_path_buf(),
            source: agesynth_core::Error::image(
                path,
                "truncated JPEG: the data ends before its end-of-image marker",
            ),
        });
    }
    let img = decode_bytes(bytes, path, limits).map_err(|source| PipelineError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(apply_orientation(img, orientation(bytes)))
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

/// The EXIF orientation recorded in JPEG or PNG `bytes`;
/// [`Orientation::NoTransforms`] when there is none or it cannot be read (a
/// broken EXIF block is no reason to refuse a photo whose pixels decode).
pub fn orientation(bytes: &[u8]) -> Orientation {
    let read = || -> Option<Orientation> {
        let reader = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()?;
        let mut decoder = reader.into_decoder().ok()?;
        decoder.orientation().ok()
    };
    read().unwrap_or(Orientation::NoTransforms)
}

/// `img` rotated and flipped as `orientation` says.
pub fn apply_orientation(img: FaceImage, orientation: Orientation) -> FaceImage {
    if orientation == Orientation::NoTransforms {
        return img;
    }
    let (w, h) = (img.width(), img.height());
    let Some(rgb) = RgbImage::from_raw(w, h, img.into_pixels()) else {
        unreachable!("a FaceImage's buffer always matches its size")
    };
    let mut dynamic = DynamicImage::ImageRgb8(rgb);
    dynamic.apply_orientation(orientation);
    let rgb = dynamic.into_rgb8();
    let (w, h) = rgb.dimensions();
    FaceImage::new(w, h, rgb.into_raw()).unwrap_or_else(|_| unreachable!("sizes match"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::jpeg_with_orientation;

    /// A 40×20 image: red left half, blue right half.
    fn two_halves() -> FaceImage {
        let (w, h) = (40u32, 20u32);
        let mut px = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                px.extend_from_slice(if x < w / 2 {
                    &[220, 20, 20]
                } else {
                    &[20, 20, 220]
                });
            }
        }
        FaceImage::new(w, h, px).unwrap()
    }

    fn pixel(img: &FaceImage, x: u32, y: u32) -> [u8; 3] {
        let o = ((y * img.width() + x) * 3) as usize;
        [img.pixels()[o], img.pixels()[o + 1], img.pixels()[o + 2]]
    }

    #[test]
    fn exif_orientation_is_honoured() {
        let img = two_halves();
        let limits = DecodeLimits::default();
        let path = Path::new("rotated.jpg");
        // Orientation 1: as stored.
        let plain = decode_photo(&jpeg_with_orientation(&img, 1).unwrap(), path, &limits).unwrap();
        assert_eq!((plain.width(), plain.height()), (40, 20));
        // Orientation 6: the stored image must be turned 90° clockwise to
        // display, so the red left half ends up on top.
        let bytes = jpeg_with_orientation(&img, 6).unwrap();
        assert_eq!(orientation(&bytes), Orientation::Rotate90);
        let turned = decode_photo(&bytes, path, &limits).unwrap();
        assert_eq!((turned.width(), turned.height()), (20, 40));
        let top = pixel(&turned, 10, 5);
        let bottom = pixel(&turned, 10, 34);
        assert!(top[0] > 150 && top[2] < 100, "top should be red: {top:?}");
        assert!(
            bottom[2] > 150 && bottom[0] < 100,
            "bottom should be blue: {bottom:?}"
        );
        // Orientation 3: upside down, so red is on the right.
        let flipped =
            decode_photo(&jpeg_with_orientation(&img, 3).unwrap(), path, &limits).unwrap();
        assert_eq!((flipped.width(), flipped.height()), (40, 20));
        assert!(pixel(&flipped, 35, 10)[0] > 150);
        // A PNG without EXIF stands as stored.
        let png = agesynth_train::grid::png_bytes(&img, path).unwrap();
        assert_eq!(orientation(&png), Orientation::NoTransforms);
    }

    #[test]
    fn folders_expand_to_their_photos() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "c.jpeg", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let single = dir.path().join("notes.txt");
        let got = expand_inputs(&[dir.path().to_path_buf(), single.clone()]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "c.jpeg", "notes.txt"]);
    }

    #[test]
    fn greyscale_becomes_rgb_and_corrupt_data_is_a_named_error() {
        let mut grey = Vec::new();
        image::codecs::png::PngEncoder::new(&mut grey)
            .write_image(&[7u8; 12], 4, 3, image::ExtendedColorType::L8)
            .unwrap();
        let img = decode_photo(&grey, Path::new("grey.png"), &DecodeLimits::default()).unwrap();
        assert_eq!((img.width(), img.height(), img.pixels().len()), (4, 3, 36));
        let jpeg = jpeg_with_orientation(&two_halves(), 1).unwrap();
        let err = decode_photo(
            &jpeg[..jpeg.len() / 3],
            Path::new("cut.jpg"),
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, PipelineError::Decode { ref path, .. } if path == Path::new("cut.jpg"))
        );
        let err = load_photo(Path::new("no/such/photo.png"), &DecodeLimits::default()).unwrap_err();
        assert!(err.to_string().contains("no/such/photo.png"), "{err}");
    }

    use image::ImageEncoder;
}
