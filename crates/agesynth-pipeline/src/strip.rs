//! Labelled strips: tiles side by side, each with a caption above it, drawn
//! in a small built-in 5×7 bitmap font (plus a descender row) (lowercase letters, digits and a few
//! signs; uppercase is drawn as lowercase).

use agesynth_core::FaceImage;
use agesynth_data::transform::resize;

use crate::error::Result;

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
];

/// Width of one character cell (glyph plus spacing) at scale 1.
const CELL_W: usize = 6;
/// Height of one text line (glyph plus spacing) at scale 1.
const LINE_H: usize = 10;

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
    Ok(resize(img, w, height.max(1))?)
}

/// Lays `tiles` out in rows of `cols` on a white background with a 4-pixel
/// gap, each tile under its caption (`captions[i]`, wrapped to the tile's
/// width; missing captions are blank). Tiles of a row are bottom-aligned;
/// tiles may differ in size.
pub fn compose(tiles: &[FaceImage], cols: usize, captions: &[String]) -> Result<FaceImage> {
    if tiles.is_empty() || cols == 0 {
        return Err(agesynth_core::Error::InvalidInput(
            "a strip needs at least one tile and one column".into(),
        )
        .into());
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
    Ok(FaceImage::new(width as u32, height as u32, img)?)
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
        let s = compose(&[red, blue], 2, &["a".into(), "b".into()]).unwrap();
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
}
