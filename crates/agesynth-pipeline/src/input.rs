//! Reading photos: JPEG or PNG, within the decode guards of
//! [`agesynth_data::transform`] (file size, pixel count, corrupt and
//! truncated data), greyscale expanded to RGB, and the EXIF orientation
//! applied so that the pixels stand the way the camera's user saw them.

use std::{io::Cursor, path::Path};

use agesynth_core::FaceImage;
use agesynth_data::transform::{decode_bytes, read_file, DecodeLimits};
use image::{metadata::Orientation, DynamicImage, ImageDecoder, RgbImage};

use crate::error::{PipelineError, Result};

/// The photos named by `paths`: a file stands for itself (whatever its
/// name, so that a bad one is reported rather than skipped); a folder for
/// the `.jpg`, `.jpeg` and `.png` files (any letter case) in it and in its
/// subfolders (symbolic links followed, each real folder searched once, so a
/// link loop ends), sorted by path. A folder that cannot be listed, and one
/// that holds no photo at all, is an error naming it.
pub fn expand_inputs(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        collect_photos(p, &mut found, &mut seen)?;
        if found.is_empty() {
            return Err(PipelineError::NoPhotos { path: p.clone() });
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn collect_photos(
    dir: &Path,
    found: &mut Vec<std::path::PathBuf>,
    seen: &mut std::collections::HashSet<std::path::PathBuf>,
) -> Result<()> {
    let listing_err = |e| PipelineError::Decode {
        path: dir.to_path_buf(),
        source: agesynth_core::Error::io("listing", dir, e),
    };
    let real = std::fs::canonicalize(dir).map_err(listing_err)?;
    if !seen.insert(real) {
        return Ok(());
    }
    let listing = std::fs::read_dir(dir).map_err(listing_err)?;
    for entry in listing.flatten() {
        let f = entry.path();
        if f.is_dir() {
            collect_photos(&f, found, seen)?;
        } else if f.is_file()
            && f.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        {
            found.push(f);
        }
    }
    Ok(())
}

/// Reads the photo at `path` (see the module docs), never reading past
/// `limits.max_file_bytes` (an endless input such as `/dev/zero` is refused
/// at the limit). Errors are [`PipelineError::Decode`] naming the file and
/// the cause.
pub fn load_photo(path: &Path, limits: &DecodeLimits) -> Result<FaceImage> {
    let bytes = read_file(path, limits).map_err(|source| PipelineError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    decode_photo(&bytes, path, limits)
}

/// Decodes photo `bytes` (see [`load_photo`]); `path` only names the source
/// in errors. A truncated JPEG is refused: the decoder would fill the rest
/// with grey, and a half photo is no input to age.
pub fn decode_photo(bytes: &[u8], path: &Path, limits: &DecodeLimits) -> Result<FaceImage> {
    let img = decode_bytes(bytes, path, limits).map_err(|source| PipelineError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(apply_orientation(img, orientation(bytes)))
}

pub use agesynth_data::transform::jpeg_is_complete;

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
        let png = agesynth_data::draw::png_bytes(&img, path).unwrap();
        assert_eq!(orientation(&png), Orientation::NoTransforms);
    }

    #[test]
    fn folders_expand_to_their_photos() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "c.jpeg", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        std::fs::write(dir.path().join("sub.png/d.jpg"), b"x").unwrap();
        let single = dir.path().join("notes.txt");
        let got = expand_inputs(&[dir.path().to_path_buf(), single.clone()]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "c.jpeg", "d.jpg", "notes.txt"]);
    }

    /// Issue 17, item 8: a symlinked folder's subfolders are searched (a
    /// link loop ends), and a folder without photos is an error naming it.
    #[cfg(unix)]
    #[test]
    fn linked_subfolders_are_searched_and_empty_folders_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("deeper")).unwrap();
        std::fs::write(real.join("deeper/x.jpg"), b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // A loop back to the top.
        std::os::unix::fs::symlink(&link, real.join("deeper/loop")).unwrap();
        let got = expand_inputs(std::slice::from_ref(&link)).unwrap();
        assert_eq!(got, vec![link.join("deeper/x.jpg")]);
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = expand_inputs(std::slice::from_ref(&empty)).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
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
