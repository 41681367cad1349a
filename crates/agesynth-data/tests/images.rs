//! Bad and unusual image files: a clear error naming the file, or a correct
//! conversion to RGB, never a panic.

use std::path::Path;

use agesynth_data::{
    testing::{synthetic_face, write_grey_jpeg, write_jpeg, write_png},
    transform::{decode_bytes, decode_file},
    DecodeLimits,
};

fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jpg");
    write_jpeg(&p, &synthetic_face(w, h, 1)).unwrap();
    std::fs::read(p).unwrap()
}

fn err_of(bytes: &[u8], name: &str, limits: &DecodeLimits) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let e = decode_file(&p, limits)
        .expect_err("decoding must fail")
        .to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

#[test]
fn empty_file_is_an_error() {
    let e = err_of(&[], "empty.jpg", &DecodeLimits::default());
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let e = decode_file(Path::new("no/such/face.jpg"), &DecodeLimits::default()).unwrap_err();
    assert!(e.to_string().contains("no/such/face.jpg"), "{e}");
}

#[test]
fn non_images_are_errors() {
    let e = err_of(
        b"just some text, not a photo",
        "notes.jpg",
        &DecodeLimits::default(),
    );
    assert!(e.contains("not a JPEG or PNG"), "{e}");
    // A GIF header: recognised, but not a format we read.
    let e = err_of(
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00",
        "anim.jpg",
        &DecodeLimits::default(),
    );
    assert!(e.contains("unsupported format"), "{e}");
}

#[test]
fn corrupt_jpeg_is_an_error() {
    // A JPEG start-of-image marker followed by garbage.
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    let e = err_of(&bytes, "corrupt.jpg", &DecodeLimits::default());
    assert!(e.contains("corrupt") || e.contains("header"), "{e}");
    // A valid header with its entropy-coded data scrambled.
    let mut good = jpeg_bytes(64, 64);
    let n = good.len();
    for b in &mut good[n / 3..n - 2] {
        *b = b.wrapping_mul(7).wrapping_add(13);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scrambled.jpg");
    std::fs::write(&p, &good).unwrap();
    // Decoders may recover garbage pixels from scrambled scan data; what
    // matters is an error naming the file or a full-size RGB image.
    match decode_file(&p, &DecodeLimits::default()) {
        Ok(img) => assert_eq!((img.width(), img.height()), (64, 64)),
        Err(e) => assert!(e.to_string().contains("scrambled.jpg"), "{e}"),
    }
}

#[test]
fn truncated_files_are_errors() {
    let jpeg = jpeg_bytes(80, 60);
    // Cut inside the header: no size can be read.
    let e = err_of(&jpeg[..40], "cut_header.jpg", &DecodeLimits::default());
    assert!(e.contains("JPEG") || e.contains("Jpeg"), "{e}");
    // Cut inside the scan data.
    let half = &jpeg[..jpeg.len() / 2];
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut_half.jpg");
    std::fs::write(&p, half).unwrap();
    match decode_file(&p, &DecodeLimits::default()) {
        Err(e) => assert!(e.to_string().contains("cut_half.jpg"), "{e}"),
        // zune-jpeg fills a cut scan like libjpeg does; the result must
        // still be a whole RGB image of the header's size.
        Ok(img) => assert_eq!(
            (img.width(), img.height(), img.pixels().len()),
            (80, 60, 80 * 60 * 3)
        ),
    }
    // A truncated PNG is an error (its chunks are checksummed).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.png");
    write_png(&p, &synthetic_face(50, 50, 2)).unwrap();
    let png = std::fs::read(&p).unwrap();
    let e = err_of(
        &png[..png.len() * 2 / 3],
        "cut.png",
        &DecodeLimits::default(),
    );
    assert!(e.contains("corrupt or truncated"), "{e}");
}

#[test]
fn greyscale_becomes_three_equal_channels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("grey.jpg");
    let grey: Vec<u8> = (0..40 * 30).map(|i| (i % 251) as u8).collect();
    write_grey_jpeg(&p, 40, 30, &grey).unwrap();
    let img = decode_file(&p, &DecodeLimits::default()).unwrap();
    assert_eq!((img.width(), img.height()), (40, 30));
    assert!(img
        .pixels()
        .chunks(3)
        .all(|px| px[0] == px[1] && px[1] == px[2]));
    // And a 16-bit greyscale PNG with alpha.
    let p = dir.path().join("grey16.png");
    let buf: Vec<u8> = (0..20 * 10)
        .flat_map(|i: u32| {
            let v = (i * 300) as u16;
            let [a, b] = v.to_ne_bytes();
            [a, b, 0xff, 0xff]
        })
        .collect();
    image::save_buffer_with_format(
        &p,
        &buf,
        20,
        10,
        image::ExtendedColorType::La16,
        image::ImageFormat::Png,
    )
    .unwrap();
    let img = decode_file(&p, &DecodeLimits::default()).unwrap();
    assert_eq!(img.pixels().len(), 20 * 10 * 3);
    assert!(img
        .pixels()
        .chunks(3)
        .all(|px| px[0] == px[1] && px[1] == px[2]));
}

#[test]
fn png_and_jpeg_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let face = synthetic_face(48, 36, 4);
    let png = dir.path().join("a.png");
    write_png(&png, &face).unwrap();
    // PNG is lossless.
    assert_eq!(decode_file(&png, &DecodeLimits::default()).unwrap(), face);
    // RGBA PNG: alpha dropped.
    let rgba: Vec<u8> = face
        .pixels()
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 128])
        .collect();
    let p = dir.path().join("rgba.png");
    image::save_buffer_with_format(
        &p,
        &rgba,
        48,
        36,
        image::ExtendedColorType::Rgba8,
        image::ImageFormat::Png,
    )
    .unwrap();
    assert_eq!(decode_file(&p, &DecodeLimits::default()).unwrap(), face);
    // JPEG is close.
    let jpg = dir.path().join("a.jpg");
    write_jpeg(&jpg, &face).unwrap();
    let back = decode_file(&jpg, &DecodeLimits::default()).unwrap();
    let mean_err: f64 = back
        .pixels()
        .iter()
        .zip(face.pixels())
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / face.pixels().len() as f64;
    assert!(mean_err < 6.0, "JPEG mean error {mean_err}");
}

/// Patches the height and width in a baseline JPEG's SOF0 segment.
fn with_jpeg_size(mut jpeg: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    let sof = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a SOF0 marker");
    // FF C0, length (2), precision (1), height (2), width (2).
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

#[test]
fn huge_images_are_refused_before_decoding() {
    // A 2 kB file claiming 65535 x 65535 pixels: a decompression bomb.
    let bomb = with_jpeg_size(jpeg_bytes(32, 32), 65535, 65535);
    let e = err_of(&bomb, "bomb.jpg", &DecodeLimits::default());
    assert!(
        e.contains("65535x65535") && e.contains("exceeds the limit"),
        "{e}"
    );
    // An honest image above a caller's limit.
    let small = DecodeLimits {
        max_pixels: 1000,
        ..DecodeLimits::default()
    };
    let e = err_of(&jpeg_bytes(100, 100), "big.jpg", &small);
    assert!(e.contains("100x100") && e.contains("exceeds"), "{e}");
    // And a file over the byte limit.
    let tiny = DecodeLimits {
        max_file_bytes: 100,
        ..DecodeLimits::default()
    };
    let e = err_of(&jpeg_bytes(100, 100), "heavy.jpg", &tiny);
    assert!(e.contains("bytes exceeds"), "{e}");
    // The in-memory entry point obeys the same limits.
    assert!(decode_bytes(&bomb, Path::new("mem"), &DecodeLimits::default()).is_err());
}

#[test]
fn a_large_photo_within_limits_decodes() {
    // 3000 x 2000 (6 megapixels), well under the default limit.
    let bytes = jpeg_bytes(3000, 2000);
    let img = decode_bytes(&bytes, Path::new("big.jpg"), &DecodeLimits::default()).unwrap();
    assert_eq!((img.width(), img.height()), (3000, 2000));
    let sq = agesynth_data::transform::square(&img, 64).unwrap();
    assert_eq!((sq.width(), sq.height()), (64, 64));
}
