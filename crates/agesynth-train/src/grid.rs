//! Sample grids: tiles of faces in rows and columns, with optional column
//! labels drawn in a tiny built-in font, saved as PNG atomically.

use std::path::Path;

use agesynth_core::{FaceImage, Result};

/// 3×5 glyphs, one `u16` per glyph: bit `14 - (row*3 + col)` set = ink.
fn glyph(c: char) -> Option<u16> {
    Some(match c {
        '0' => 0b111_101_101_101_111,
        '1' => 0b010_110_010_010_111,
        '2' => 0b111_001_111_100_111,
        '3' => 0b111_001_111_001_111,
        '4' => 0b101_101_111_001_001,
        '5' => 0b111_100_111_001_111,
        '6' => 0b111_100_111_101_111,
        '7' => 0b111_001_010_010_010,
        '8' => 0b111_101_111_101_111,
        '9' => 0b111_101_111_001_111,
        '-' => 0b000_000_111_000_000,
        '+' => 0b000_010_111_010_000,
        '<' => 0b001_010_100_010_001,
        '.' => 0b000_000_000_000_010,
        ' ' => 0,
        _ => return None,
    })
}

/// Draws `text` (digits, `-`, `+`, `<`, `.`; other characters as blanks) at
/// (`x`, `y`) with pixel scale `scale` in colour `rgb`.
fn draw_text(
    img: &mut [u8],
    width: usize,
    x: usize,
    y: usize,
    scale: usize,
    text: &str,
    rgb: [u8; 3],
) {
    let height = img.len() / (3 * width);
    for (k, c) in text.chars().enumerate() {
        let bits = glyph(c).unwrap_or(0);
        for row in 0..5 {
            for col in 0..3 {
                if bits & (1 << (14 - (row * 3 + col))) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (k * 4 + col) * scale + dx;
                        let py = y + row * scale + dy;
                        if px < width && py < height {
                            let o = 3 * (py * width + px);
                            img[o..o + 3].copy_from_slice(&rgb);
                        }
                    }
                }
            }
        }
    }
}

/// Lays `tiles` (row-major, `cols` per row, all one size) out as one image
/// with a 2-pixel gap, and a header row with `labels` (one per column) when
/// given.
pub fn compose(tiles: &[FaceImage], cols: usize, labels: Option<&[String]>) -> Result<FaceImage> {
    let first = tiles.first().ok_or_else(|| {
        agesynth_core::Error::InvalidInput("a grid needs at least one tile".to_string())
    })?;
    if cols == 0 {
        return Err(agesynth_core::Error::InvalidInput(
            "a grid needs columns".to_string(),
        ));
    }
    let (tw, th) = (first.width() as usize, first.height() as usize);
    let rows = tiles.len().div_ceil(cols);
    let gap = 2;
    let scale = if tw >= 48 { 2 } else { 1 };
    // Labels wider than a tile would run into each other: leave them out.
    let labels = labels.filter(|ls| ls.iter().all(|l| l.chars().count() * 4 * scale <= tw + gap));
    let header = if labels.is_some() { 5 * scale + 4 } else { 0 };
    let width = cols * tw + (cols + 1) * gap;
    let height = header + rows * th + (rows + 1) * gap;
    let mut img = vec![255u8; width * height * 3];
    for (i, t) in tiles.iter().enumerate() {
        if (t.width() as usize, t.height() as usize) != (tw, th) {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "grid tiles must share a size: {tw}x{th} and {}x{}",
                t.width(),
                t.height()
            )));
        }
        let (r, c) = (i / cols, i % cols);
        let (x0, y0) = (gap + c * (tw + gap), header + gap + r * (th + gap));
        for y in 0..th {
            let src = &t.pixels()[y * tw * 3..(y + 1) * tw * 3];
            let o = 3 * ((y0 + y) * width + x0);
            img[o..o + tw * 3].copy_from_slice(src);
        }
    }
    if let Some(labels) = labels {
        for (c, label) in labels.iter().enumerate().take(cols) {
            let text_w = label.chars().count() * 4 * scale;
            let x = gap + c * (tw + gap) + tw.saturating_sub(text_w) / 2;
            draw_text(&mut img, width, x, 2, scale, label, [0, 0, 0]);
        }
    }
    FaceImage::new(width as u32, height as u32, img)
}

/// Encodes `img` as PNG bytes.
pub fn png_bytes(img: &FaceImage, what: &Path) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_raw(img.width(), img.height(), img.pixels().to_vec())
        .ok_or_else(|| agesynth_core::Error::image(what, "pixel buffer does not match its size"))?
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| agesynth_core::Error::image(what, e.to_string()))?;
    Ok(out.into_inner())
}

/// Saves `img` as a PNG at `path`, atomically.
pub fn save_png(path: impl AsRef<Path>, img: &FaceImage) -> Result<()> {
    let path = path.as_ref();
    let bytes = png_bytes(img, path)?;
    agesynth_core::io::atomic_write_bytes(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_layout_labels_and_png() {
        let red = FaceImage::new(4, 4, [200, 0, 0].repeat(16)).unwrap();
        let blue = FaceImage::new(4, 4, [0, 0, 200].repeat(16)).unwrap();
        let g = compose(&[red.clone(), blue.clone(), blue, red.clone()], 2, None).unwrap();
        assert_eq!((g.width(), g.height()), (2 * 4 + 3 * 2, 2 * 4 + 3 * 2));
        let px = |x: usize, y: usize| {
            let o = 3 * (y * g.width() as usize + x);
            g.pixels()[o..o + 3].to_vec()
        };
        assert_eq!(px(2, 2), vec![200, 0, 0]);
        assert_eq!(px(8, 2), vec![0, 0, 200]);
        assert_eq!(px(0, 0), vec![255, 255, 255]);
        let labelled = compose(std::slice::from_ref(&g), 1, Some(&["50+".to_string()])).unwrap();
        // A label wider than its tile is left out rather than overlapping.
        let narrow = compose(std::slice::from_ref(&red), 1, Some(&["10-19".to_string()])).unwrap();
        assert_eq!(narrow.height(), 4 + 2 * 2);
        assert!(labelled.height() > g.height() + 5);
        // Some ink in the header.
        let header = &labelled.pixels()[..3 * labelled.width() as usize * 7];
        assert!(header.contains(&0));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        save_png(&path, &labelled).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back.as_raw(), labelled.pixels());
    }
}
