//! Bar charts drawn straight into RGB pixels with [`agesynth_data::draw`]'s
//! built-in font: one
//! chart per metric, a cluster of bars per target group, one bar per method.

use agesynth_core::{FaceImage, Result};
use agesynth_data::draw;

/// An RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, rgb: [u8; 3]) {
        for y in y0.min(self.h)..y1.min(self.h) {
            for x in x0.min(self.w)..x1.min(self.w) {
                let o = 3 * (y * self.w + x);
                self.px[o..o + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// Width in pixels of `text` at `scale`.
    fn text_width(text: &str, scale: usize) -> usize {
        draw::text_width(text, scale)
    }

    fn text(&mut self, x: usize, y: usize, scale: usize, text: &str, rgb: [u8; 3]) {
        draw::draw_text(&mut self.px, self.w, x, y, scale, text, rgb);
    }
}

/// Colours of the methods' bars, in order.
pub const COLOURS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// Formats a tick or bar value compactly.
fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A bar chart: `values[m][c]` is method `m`'s value in cluster `c`
/// (`None`: no bar). `y_max` fixes the axis (e.g. 1 for rates), else it
/// fits the data.
pub fn bar_chart(
    title: &str,
    clusters: &[String],
    methods: &[String],
    values: &[Vec<Option<f64>>],
    y_max: Option<f64>,
) -> Result<FaceImage> {
    let (w, h) = (720usize, 400usize);
    let mut c = Canvas::new(w, h);
    let black = [0, 0, 0];
    let grey = [210, 210, 210];
    c.text(10, 8, 2, title, black);
    // Legend under the title.
    let mut lx = 10;
    for (m, name) in methods.iter().enumerate() {
        let col = COLOURS[m % COLOURS.len()];
        c.rect(lx, 30, lx + 10, 40, col);
        c.text(lx + 14, 31, 1, name, black);
        lx += 14 + Canvas::text_width(name, 1) + 20;
    }
    let (left, right, top, bottom) = (70usize, w - 10, 56usize, h - 30);
    let data_max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0f64, f64::max);
    let y_max = y_max.unwrap_or(if data_max > 0.0 { data_max * 1.1 } else { 1.0 });
    let y_of = |v: f64| {
        let f = (v / y_max).clamp(0.0, 1.0);
        bottom - ((bottom - top) as f64 * f).round() as usize
    };
    for k in 0..=5 {
        let v = y_max * k as f64 / 5.0;
        let y = y_of(v);
        c.rect(left, y, right, y + 1, grey);
        let label = fmt_value(v);
        let tw = Canvas::text_width(&label, 1);
        c.text(
            left.saturating_sub(tw + 6),
            y.saturating_sub(3),
            1,
            &label,
            black,
        );
    }
    c.rect(left, top, left + 1, bottom + 1, black);
    c.rect(left, bottom, right, bottom + 1, black);
    let n = clusters.len().max(1);
    let cw = (right - left) / n;
    let nm = methods.len().max(1);
    let bw = (cw * 3 / 4 / nm).max(1);
    for (ci, label) in clusters.iter().enumerate() {
        let x0 = left + ci * cw + (cw - bw * nm) / 2;
        for (m, row) in values.iter().enumerate() {
            if let Some(Some(v)) = row.get(ci) {
                if v.is_finite() {
                    let col = COLOURS[m % COLOURS.len()];
                    c.rect(x0 + m * bw, y_of(*v), x0 + (m + 1) * bw - 1, bottom, col);
                }
            }
        }
        let tw = Canvas::text_width(label, 1);
        c.text(
            left + ci * cw + cw.saturating_sub(tw) / 2,
            bottom + 8,
            1,
            label,
            black,
        );
    }
    FaceImage::new(w as u32, h as u32, c.px)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_to_scale() {
        // One cluster, two methods at 1.0 and 0.5 on a 0..1 axis: the first
        // bar reaches the top of the plot area (y = 56), the second half-way
        // (y = 56 + (370 - 56) / 2 = 213).
        let img = bar_chart(
            "T",
            &["A".into()],
            &["X".into(), "Y".into()],
            &[vec![Some(1.0)], vec![Some(0.5)]],
            Some(1.0),
        )
        .unwrap();
        let (w, _) = (img.width() as usize, img.height());
        let at = |x: usize, y: usize| {
            let o = 3 * (y * w + x);
            [img.pixels()[o], img.pixels()[o + 1], img.pixels()[o + 2]]
        };
        // Cluster width 640, bar width 240, bars from x = 70 + 80 = 150.
        assert_eq!(at(150 + 120, 60), COLOURS[0]);
        assert_eq!(at(390 + 120, 60), [255, 255, 255]);
        assert_eq!(at(390 + 120, 220), COLOURS[1]);
        assert_eq!(at(390 + 120, 205), [255, 255, 255]);
    }
}
