//! Drawing for every picture agesynth writes: one built-in bitmap font
//! (5×7 with a descender row; lowercase letters, digits and signs, uppercase
//! drawn as lowercase), sample grids with column labels ([`grid`]), strips of
//! captioned tiles ([`strip`]) and atomic PNG output ([`save_png`]). Training
//! samples, evaluation sheets and plots, and the application's strips all
//! draw through this module.

use std::path::Path;

use agesynth_core::{FaceImage, Result};

use crate::transform::resize;

/// 5×7 glyphs with a descender row: eight rows of five columns, `#` = ink.
#[rustfmt::skip]
const GLYPHS: &[(char, [&str; 8])] = &[
    ('a', [".....", ".....", ".###.", "....#", ".####", "#...#", ".####", "....."]),
    ('b', ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", "....."]),
    ('c', [".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", "....."]),
    ('d', ["....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", "....."]),
    ('e', [".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", "....."]),
    ('f', ["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", "....."]),
    ('g', [".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."]),
    ('h', ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."]),
    ('i', ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('j', ["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
    ('k', ["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "....."]),
    ('l', [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('m', [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#", "....."]),
    ('n', [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."]),
    ('o', [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", "....."]),
    ('p', [".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#...."]),
    ('q', [".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "....#"]),
    ('r', [".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", "....."]),
    ('s', [".....", ".....", ".###.", "#....", ".###.", "....#", "####.", "....."]),
    ('t', [".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", "....."]),
    ('u', [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....."]),
    ('v', [".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."]),
    ('w', [".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", "....."]),
    ('x', [".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."]),
    ('y', [".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."]),
    ('z', [".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", "....."]),
    ('0', [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", "....."]),
    ('1', ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('2', [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", "....."]),
    ('3', ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", "....."]),
    ('4', ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", "....."]),
    ('5', ["#####", "#....", "####.", "....#", "....#", "#...#", ".###.", "....."]),
    ('6', ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", "....."]),
    ('7', ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", "....."]),
    ('8', [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", "....."]),
    ('9', [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", "....."]),
    ('-', [".....", ".....", ".....", "#####", ".....", ".....", ".....", "....."]),
    ('+', [".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", "....."]),
    ('(', ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", "....."]),
    (')', [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", "....."]),
    ('.', [".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "....."]),
    (',', [".....", ".....", ".....", ".....", ".##..", "..#..", ".#...", "....."]),
    (':', [".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....", "....."]),
    ('/', [".....", "....#", "...#.", "..#..", ".#...", "#....", ".....", "....."]),
    ('<', ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", "....."]),
    ('>', [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", "....."]),
    ('=', [".....", ".....", "#####", ".....", "#####", ".....", ".....", "....."]),
    ('~', [".....", ".....", ".#...", "#.#.#", "...#.", ".....", ".....", "....."]),
    ('|', ["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."]),
    ('%', ["##..#", "##.#.", "...#.", "..#..", ".#...", ".#.##", "#..##", "....."]),
    ('_', [".....", ".....", ".....", ".....", ".....", ".....", "#####", "....."]),
    ('\'', ["..#..", "..#..", ".....", ".....", ".....", ".....", ".....", "....."]),
    ('@', [".###.", "#...#", "#.###", "#.#.#", "#.###", "#....", ".###.", "....."]),
];

/// Width of one character cell (glyph plus spacing) at scale 1.
pub const CELL_W: usize = 6;
/// Height of one text line (glyph plus spacing) at scale 1.
pub const LINE_H: usize = 10;

fn glyph(c: char) -> Option<&'static [&'static str; 8]> {
    let c = c.to_ascii_lowercase();
    GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| rows)
}

/// Width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * CELL_W * scale
}

/// Draws `text` with its top-left corner at (`x`, `y`) into the RGB buffer
/// `img` of `width` pixels per row; characters without a glyph are blank,
/// ink outside the buffer is dropped.
pub fn draw_text(
    img: &mut [u8],
    width: usize,
    x: usize,
    y: usize,
    scale: usize,
    text: &str,
    rgb: [u8; 3],
) {
    let height = img.len() / (3 * width.max(1));
    for (k, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        for (row, bits) in rows.iter().enumerate() {
            for (col, b) in bits.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (k * CELL_W + col) * scale + dx;
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

/// Splits `text` into lines no wider than `max_width` pixels at `scale`,
/// breaking at spaces (a single word wider than that stays whole).
pub fn wrap(text: &str, max_width: usize, scale: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if text_width(&candidate, scale) <= max_width || line.is_empty() {
            line = candidate;
        } else {
            lines.push(std::mem::take(&mut line));
            line = word.to_string();
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `img` scaled (area-filtered down, bilinear up) so that its height is
/// `height`, keeping the aspect ratio.
pub fn fit_height(img: &FaceImage, height: u32) -> Result<FaceImage> {
    if img.height() == height {
        return Ok(img.clone());
    }
    let w = ((img.width() as f64 * height as f64 / img.height() as f64).round() as u32).max(1);
    resize(img, w, height.max(1))
}

/// Lays `tiles` out in rows of `cols` on a white background with a 4-pixel
/// gap, each tile under its caption (`captions[i]`, wrapped to the tile's
/// width; missing captions are blank). Tiles of a row are bottom-aligned;
/// tiles may differ in size.
pub fn strip(tiles: &[FaceImage], cols: usize, captions: &[String]) -> Result<FaceImage> {
    if tiles.is_empty() || cols == 0 {
        return Err(agesynth_core::Error::InvalidInput(
            "a strip needs at least one tile and one column".into(),
        ));
    }
    let gap = 4usize;
    let rows: Vec<&[FaceImage]> = tiles.chunks(cols).collect();
    // Column widths and the caption scale: 2 when every tile is wide enough.
    let mut col_w = vec![0usize; cols];
    for row in &rows {
        for (c, t) in row.iter().enumerate() {
            col_w[c] = col_w[c].max(t.width() as usize);
        }
    }
    let scale = if col_w.iter().all(|&w| w >= 160) {
        2
    } else {
        1
    };
    let mut layout = Vec::new(); // per row: (caption lines per tile, header height, tile height)
    for (r, row) in rows.iter().enumerate() {
        let lines: Vec<Vec<String>> = row
            .iter()
            .enumerate()
            .map(|(c, _)| {
                let caption = captions.get(r * cols + c).map(String::as_str).unwrap_or("");
                wrap(caption, col_w[c], scale)
            })
            .collect();
        let n_lines = lines.iter().map(Vec::len).max().unwrap_or(0);
        let header = if n_lines > 0 {
            n_lines * LINE_H * scale + 2
        } else {
            0
        };
        let tile_h = row.iter().map(|t| t.height() as usize).max().unwrap_or(0);
        layout.push((lines, header, tile_h));
    }
    let width = col_w.iter().sum::<usize>() + (cols + 1) * gap;
    let height = layout
        .iter()
        .map(|(_, hd, th)| hd + th + gap)
        .sum::<usize>()
        + gap;
    let mut img = vec![255u8; width * height * 3];
    let mut y = gap;
    for (row, (lines, header, tile_h)) in rows.iter().zip(&layout) {
        let mut x = gap;
        for (c, t) in row.iter().enumerate() {
            for (k, line) in lines[c].iter().enumerate() {
                let tx = x + col_w[c].saturating_sub(text_width(line, scale)) / 2;
                draw_text(
                    &mut img,
                    width,
                    tx,
                    y + k * LINE_H * scale,
                    scale,
                    line,
                    [0, 0, 0],
                );
            }
            let (tw, th) = (t.width() as usize, t.height() as usize);
            let x0 = x + (col_w[c] - tw) / 2;
            let y0 = y + header + (tile_h - th);
            for ty in 0..th {
                let src = &t.pixels()[ty * tw * 3..(ty + 1) * tw * 3];
                let o = 3 * ((y0 + ty) * width + x0);
                img[o..o + tw * 3].copy_from_slice(src);
            }
            x += col_w[c] + gap;
        }
        y += header + tile_h + gap;
    }
    FaceImage::new(width as u32, height as u32, img)
}

/// Lays `tiles` (row-major, `cols` per row, all one size) out as one image
/// with a 2-pixel gap, and a header row with `labels` (one per column) when
/// given.
pub fn grid(tiles: &[FaceImage], cols: usize, labels: Option<&[String]>) -> Result<FaceImage> {
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
    // Labels at twice the size where they fit their tiles; labels wider than
    // a tile even at size 1 would run into each other: leave them out.
    let fits =
        |scale: usize| labels.is_some_and(|ls| ls.iter().all(|l| text_width(l, scale) <= tw + gap));
    let scale = if fits(2) { 2 } else { 1 };
    let labels = labels.filter(|_| fits(scale));
    let header = if labels.is_some() {
        LINE_H * scale + 2
    } else {
        0
    };
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
            let text_w = text_width(label, scale);
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
    fn captions_wrap_and_tiles_land_in_place() {
        assert_eq!(
            wrap("age 30 (group 30-39)", 60, 1),
            vec![
                "age 30".to_string(),
                "(group".to_string(),
                "30-39)".to_string()
            ]
        );
        assert_eq!(wrap("age 30 (group 30-39)", 200, 1).len(), 1);
        let red = FaceImage::new(20, 10, [200, 0, 0].repeat(200)).unwrap();
        let blue = FaceImage::new(20, 10, [0, 0, 200].repeat(200)).unwrap();
        let s = strip(&[red, blue], 2, &["a".into(), "b".into()]).unwrap();
        // Width: two 20-px columns and three gaps; one caption line.
        assert_eq!(s.width(), 2 * 20 + 3 * 4);
        assert_eq!(s.height() as usize, 4 + LINE_H + 2 + 10 + 4);
        let px = |x: u32, y: u32| {
            let o = ((y * s.width() + x) * 3) as usize;
            s.pixels()[o..o + 3].to_vec()
        };
        let ty = 4 + LINE_H as u32 + 2 + 5;
        assert_eq!(px(4 + 10, ty), vec![200, 0, 0]);
        assert_eq!(px(4 + 20 + 4 + 10, ty), vec![0, 0, 200]);
        // Ink in the caption band, none in the gap column.
        assert!(s.pixels()[..3 * s.width() as usize * (4 + LINE_H)].contains(&0));
        assert_eq!(px(1, ty), vec![255, 255, 255]);
        // Every glyph row is five columns.
        for (c, rows) in GLYPHS {
            assert!(rows.iter().all(|r| r.len() == 5), "glyph {c}");
        }
    }

    #[test]
    fn grid_layout_labels_and_png() {
        let red = FaceImage::new(4, 4, [200, 0, 0].repeat(16)).unwrap();
        let blue = FaceImage::new(4, 4, [0, 0, 200].repeat(16)).unwrap();
        let g = grid(&[red.clone(), blue.clone(), blue, red.clone()], 2, None).unwrap();
        assert_eq!((g.width(), g.height()), (2 * 4 + 3 * 2, 2 * 4 + 3 * 2));
        let px = |x: usize, y: usize| {
            let o = 3 * (y * g.width() as usize + x);
            g.pixels()[o..o + 3].to_vec()
        };
        assert_eq!(px(2, 2), vec![200, 0, 0]);
        assert_eq!(px(8, 2), vec![0, 0, 200]);
        assert_eq!(px(0, 0), vec![255, 255, 255]);
        let labelled = grid(std::slice::from_ref(&g), 1, Some(&["50".to_string()])).unwrap();
        // A label wider than its tile is left out rather than overlapping.
        let narrow = grid(std::slice::from_ref(&red), 1, Some(&["10-19".to_string()])).unwrap();
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
