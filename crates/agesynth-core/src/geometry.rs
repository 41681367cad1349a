//! Face geometry: similarity transforms, image warping and the canonical face
//! template that every aligned face in agesynth is framed by.
//!
//! A face is *aligned* by the similarity transform (rotation, uniform scale,
//! translation) that carries its landmarks closest, in the least-squares sense,
//! to a template's landmarks. The template is dlib's mean face (the positions
//! `get_face_chip_details` uses); UTKFace's aligned chips are dlib chips of
//! size 200 with padding 0.2, so [`FaceTemplate::UTKFACE_PADDING`] frames any
//! aligned face like the training data, at any output size.

use crate::{Error, FaceImage, Result};

/// A point in pixel coordinates (x to the right, y down).
pub type Point = [f64; 2];

/// A similarity transform `p ↦ s·R(θ)·p + t`, stored as
/// `x' = a·x − b·y + tx`, `y' = b·x + a·y + ty` with `a = s·cos θ`,
/// `b = s·sin θ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    /// `s·cos θ`.
    pub a: f64,
    /// `s·sin θ`.
    pub b: f64,
    /// Translation along x.
    pub tx: f64,
    /// Translation along y.
    pub ty: f64,
}

impl Similarity {
    /// The identity transform.
    pub const IDENTITY: Similarity = Similarity {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// The least-squares similarity carrying `src[i]` onto `dst[i]`
    /// (Umeyama's method without reflection). Needs at least two distinct
    /// points and as many in `dst` as in `src`.
    pub fn estimate(src: &[Point], dst: &[Point]) -> Result<Similarity> {
        if src.len() != dst.len() || src.len() < 2 {
            return Err(Error::InvalidInput(format!(
                "a similarity needs >= 2 point pairs, got {} and {}",
                src.len(),
                dst.len()
            )));
        }
        if src.iter().chain(dst).flatten().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(
                "landmarks must be finite numbers".to_string(),
            ));
        }
        let n = src.len() as f64;
        let mean = |p: &[Point]| {
            let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0], y + q[1]));
            [sx / n, sy / n]
        };
        let (ms, md) = (mean(src), mean(dst));
        // With centred points u (src) and v (dst): minimise Σ|R u s + t − v|².
        // a = Σ(u·v) / Σ|u|², b = Σ(u × v) / Σ|u|².
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (ux, uy) = (s[0] - ms[0], s[1] - ms[1]);
            let (vx, vy) = (d[0] - md[0], d[1] - md[1]);
            dot += ux * vx + uy * vy;
            cross += ux * vy - uy * vx;
            norm += ux * ux + uy * uy;
        }
        if norm < 1e-12 {
            return Err(Error::InvalidInput(
                "landmarks coincide: no transform can be estimated".to_string(),
            ));
        }
        let (a, b) = (dot / norm, cross / norm);
        Ok(Similarity {
            a,
            b,
            tx: md[0] - (a * ms[0] - b * ms[1]),
            ty: md[1] - (b * ms[0] + a * ms[1]),
        })
    }

    /// Applies the transform to a point.
    pub fn apply(&self, p: Point) -> Point {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The scale factor `s`.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// The rotation angle θ in radians.
    pub fn angle(&self) -> f64 {
        self.b.atan2(self.a)
    }

    /// The inverse transform; errors for a degenerate (zero-scale) one.
    pub fn inverse(&self) -> Result<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d < 1e-24 {
            return Err(Error::InvalidInput(
                "a zero-scale transform has no inverse".to_string(),
            ));
        }
        let (a, b) = (self.a / d, -self.b / d);
        Ok(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// `self ∘ first`: first apply `first`, then `self`.
    pub fn after(&self, first: &Similarity) -> Similarity {
        Similarity {
            a: self.a * first.a - self.b * first.b,
            b: self.b * first.a + self.a * first.b,
            tx: self.a * first.tx - self.b * first.ty + self.tx,
            ty: self.b * first.tx + self.a * first.ty + self.ty,
        }
    }
}

/// Warps `image` into a `width`×`height` output, where `to_output` carries
/// source pixel coordinates to output pixel coordinates (pixel centres at
/// integer coordinates). Sampling is bilinear; when the transform shrinks by
/// more than 2× the source is first box-filtered by the integer factor, so
/// large photos do not alias. Outside the source, the nearest edge pixel is
/// repeated.
pub fn warp(
    image: &FaceImage,
    to_output: &Similarity,
    width: u32,
    height: u32,
) -> Result<FaceImage> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidInput(
            "warp output must be at least 1x1".to_string(),
        ));
    }
    let factor = (1.0 / to_output.scale()).floor().max(1.0) as u32;
    let (src, to_output) = if factor >= 2 {
        let small = box_shrink(image, factor);
        // A small pixel centre i corresponds to the source coordinate
        // f·i + (f − 1)/2.
        let f = factor as f64;
        let up = Similarity {
            a: f,
            b: 0.0,
            tx: (f - 1.0) / 2.0,
            ty: (f - 1.0) / 2.0,
        };
        (small, to_output.after(&up))
    } else {
        (image.clone(), *to_output)
    };
    let inv = to_output.inverse()?;
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let px = src.pixels();
    let mut out = vec![0u8; width as usize * height as usize * 3];
    for oy in 0..height as usize {
        for ox in 0..width as usize {
            let [x, y] = inv.apply([ox as f64, oy as f64]);
            let x = x.clamp(0.0, (sw - 1) as f64);
            let y = y.clamp(0.0, (sh - 1) as f64);
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(sw - 1), (y0 + 1).min(sh - 1));
            let (fx, fy) = (x - x0 as f64, y - y0 as f64);
            let o = (oy * width as usize + ox) * 3;
            for c in 0..3 {
                let p = |xx: usize, yy: usize| px[(yy * sw + xx) * 3 + c] as f64;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                out[o + c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    FaceImage::new(width, height, out)
}

/// Averages `factor`×`factor` blocks (a partial block at the right or bottom
/// edge averages what it has).
fn box_shrink(image: &FaceImage, factor: u32) -> FaceImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let f = factor as usize;
    let (nw, nh) = (w.div_ceil(f), h.div_ceil(f));
    let px = image.pixels();
    let mut out = vec![0u8; nw * nh * 3];
    for by in 0..nh {
        for bx in 0..nw {
            let mut acc = [0u32; 3];
            let mut count = 0u32;
            for y in by * f..((by + 1) * f).min(h) {
                for x in bx * f..((bx + 1) * f).min(w) {
                    let i = (y * w + x) * 3;
                    acc[0] += px[i] as u32;
                    acc[1] += px[i + 1] as u32;
                    acc[2] += px[i + 2] as u32;
                    count += 1;
                }
            }
            let o = (by * nw + bx) * 3;
            for c in 0..3 {
                out[o + c] = ((acc[c] + count / 2) / count) as u8;
            }
        }
    }
    FaceImage::new(nw as u32, nh as u32, out).expect("block count matches the buffer")
}

/// dlib's mean face: positions of the 68-point landmarks 17–67 in a unit
/// square (as used by dlib's `get_face_chip_details`, Boost Software Licence).
const MEAN_FACE_X: [f64; 51] = [
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
];
const MEAN_FACE_Y: [f64; 51] = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345,
    0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852,
    0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388,
    0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746,
    0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];

/// The five canonical face points, in image order: the eye on the image's
/// left, the eye on the image's right, the nose tip, the mouth corner on the
/// image's left, the mouth corner on the image's right (MTCNN's order).
pub type FivePoints = [Point; 5];

/// The canonical face template: dlib's mean face, framed with a padding.
///
/// A template point `p` in the unit square lands at
/// `size · (padding + p) / (1 + 2·padding)` in a `size`×`size` chip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceTemplate {
    /// Side of the chip in pixels.
    pub size: u32,
    /// Margin around the mean face, as a fraction of its extent.
    pub padding: f64,
}

impl FaceTemplate {
    /// Padding of UTKFace's aligned chips (dlib's default chip: size 200,
    /// padding 0.2); the framing of all training data.
    pub const UTKFACE_PADDING: f64 = 0.2;

    /// Padding of the chips dlib's face-recognition network was trained on
    /// (150×150, padding 0.25).
    pub const DLIB_RECOGNITION_PADDING: f64 = 0.25;

    /// A template of a given chip size framed like UTKFace.
    pub fn utkface(size: u32) -> Self {
        FaceTemplate {
            size,
            padding: Self::UTKFACE_PADDING,
        }
    }

    /// Where a unit-square mean-face point lands in the chip.
    fn place(&self, p: Point) -> Point {
        let k = self.size as f64 / (1.0 + 2.0 * self.padding);
        [(self.padding + p[0]) * k, (self.padding + p[1]) * k]
    }

    /// Mean-face landmark `i` (68-point numbering, 0-based, 17 ≤ i ≤ 67) in
    /// the chip; `None` for the jaw line (0–16), which the mean face omits.
    pub fn landmark68(&self, i: usize) -> Option<Point> {
        if !(17..68).contains(&i) {
            return None;
        }
        Some(self.place([MEAN_FACE_X[i - 17], MEAN_FACE_Y[i - 17]]))
    }

    /// The five canonical points (eye centres as the mean of the six
    /// eye-contour points, nose tip, mouth corners) in the chip.
    pub fn five_points(&self) -> FivePoints {
        let mean_of = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            let (sx, sy) = r.fold((0.0, 0.0), |(x, y), i| {
                (x + MEAN_FACE_X[i - 17], y + MEAN_FACE_Y[i - 17])
            });
            [sx / n, sy / n]
        };
        [
            self.place(mean_of(36..42)),
            self.place(mean_of(42..48)),
            self.place([MEAN_FACE_X[30 - 17], MEAN_FACE_Y[30 - 17]]),
            self.place([MEAN_FACE_X[48 - 17], MEAN_FACE_Y[48 - 17]]),
            self.place([MEAN_FACE_X[54 - 17], MEAN_FACE_Y[54 - 17]]),
        ]
    }

    /// The transform carrying a photo's landmarks onto this template.
    /// `points` are any subset of the five canonical points given as
    /// `(index into FivePoints, position in the photo)`; alignment uses eye
    /// centres and mouth corners (indices 0, 1, 3, 4), as the nose tip moves
    /// with head pose.
    pub fn alignment(&self, points: &[(usize, Point)]) -> Result<Similarity> {
        let canon = self.five_points();
        let mut src = Vec::with_capacity(points.len());
        let mut dst = Vec::with_capacity(points.len());
        for &(i, p) in points {
            let c = canon.get(i).ok_or_else(|| {
                Error::InvalidInput(format!("canonical point index {i} is not in 0..5"))
            })?;
            src.push(p);
            dst.push(*c);
        }
        Similarity::estimate(&src, &dst)
    }

    /// Aligns a face with its five canonical points (MTCNN order, see
    /// [`FivePoints`]) into a `size`×`size` chip, using eye centres and mouth
    /// corners.
    pub fn align(&self, image: &FaceImage, points: &FivePoints) -> Result<FaceImage> {
        let t = self.alignment(&[
            (0, points[0]),
            (1, points[1]),
            (3, points[3]),
            (4, points[4]),
        ])?;
        warp(image, &t, self.size, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(p: Point, q: Point, tol: f64) -> bool {
        (p[0] - q[0]).abs() < tol && (p[1] - q[1]).abs() < tol
    }

    #[test]
    fn estimate_recovers_a_known_transform() {
        let t = Similarity {
            a: 1.5 * 0.3f64.cos(),
            b: 1.5 * 0.3f64.sin(),
            tx: 10.0,
            ty: -4.0,
        };
        let src = [[0.0, 0.0], [10.0, 0.0], [3.0, 7.0], [-2.0, 5.0]];
        let dst: Vec<Point> = src.iter().map(|&p| t.apply(p)).collect();
        let e = Similarity::estimate(&src, &dst).unwrap();
        assert!((e.scale() - 1.5).abs() < 1e-12 && (e.angle() - 0.3).abs() < 1e-12);
        assert!((e.tx - 10.0).abs() < 1e-9 && (e.ty + 4.0).abs() < 1e-9);
        let back = e.inverse().unwrap().after(&e);
        assert!(close(back.apply([5.0, -3.0]), [5.0, -3.0], 1e-9));
        assert!(Similarity::estimate(&src[..1], &dst[..1]).is_err());
        assert!(Similarity::estimate(&[[1.0, 1.0]; 3], &dst[..3]).is_err());
    }

    #[test]
    fn utkface_template_is_symmetric_and_scales() {
        let t = FaceTemplate::utkface(200).five_points();
        // Eyes at the same height, mirror images about the nose line.
        assert!((t[0][1] - t[1][1]).abs() < 1e-9);
        assert!(((t[0][0] + t[1][0]) / 2.0 - t[2][0]).abs() < 1e-3 * 200.0);
        // Worked out from dlib's mean face: left eye centre x = 0.22549,
        // y = 0.21599 -> (0.2 + x) / 1.4 * 200 = 60.79, 59.43.
        assert!(close(t[0], [60.784, 59.427], 0.01), "{:?}", t[0]);
        let t64 = FaceTemplate::utkface(64).five_points();
        assert!(close(t64[4], [t[4][0] * 0.32, t[4][1] * 0.32], 1e-9));
    }

    #[test]
    fn warp_moves_a_marked_pixel_where_the_transform_says() {
        // A 40x30 grey image with one white pixel at (12, 9).
        let (w, h) = (40u32, 30u32);
        let mut px = vec![50u8; (w * h * 3) as usize];
        let i = ((9 * w + 12) * 3) as usize;
        px[i..i + 3].copy_from_slice(&[255, 255, 255]);
        let img = FaceImage::new(w, h, px).unwrap();
        // Shift by (+5, +3): the white pixel must land at (17, 12).
        let t = Similarity {
            tx: 5.0,
            ty: 3.0,
            ..Similarity::IDENTITY
        };
        let out = warp(&img, &t, 30, 20).unwrap();
        let at = |x: u32, y: u32| out.pixels()[((y * 30 + x) * 3) as usize];
        assert_eq!(at(17, 12), 255);
        assert_eq!(at(16, 12), 50);
        assert_eq!(at(0, 0), 50);
    }

    #[test]
    fn large_downscale_is_area_filtered() {
        // A 1-pixel checkerboard averages to grey rather than aliasing.
        let (w, h) = (64u32, 64u32);
        let px: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let v = if (i % w + i / w) % 2 == 0 { 0 } else { 255 };
                [v, v, v]
            })
            .collect();
        let img = FaceImage::new(w, h, px).unwrap();
        let t = Similarity {
            a: 0.125,
            ..Similarity::IDENTITY
        };
        let out = warp(&img, &t, 8, 8).unwrap();
        assert!(out.pixels().iter().all(|&v| (120..=135).contains(&v)));
    }

    #[test]
    fn align_lands_landmarks_on_the_template() {
        // A photo whose landmarks are the template's, rotated, scaled and moved.
        let tpl = FaceTemplate::utkface(128);
        let canon = tpl.five_points();
        let photo_to_chip = Similarity {
            a: 0.5 * 0.2f64.cos(),
            b: 0.5 * 0.2f64.sin(),
            tx: -20.0,
            ty: 7.0,
        };
        let chip_to_photo = photo_to_chip.inverse().unwrap();
        let pts: Vec<(usize, Point)> = [0, 1, 3, 4]
            .iter()
            .map(|&i| (i, chip_to_photo.apply(canon[i])))
            .collect();
        let t = tpl.alignment(&pts).unwrap();
        for (i, p) in pts {
            assert!(close(t.apply(p), canon[i], 1e-6));
        }
    }
}
