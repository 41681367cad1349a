//! Alignment of faces from 68-point landmarks onto the canonical template.
//!
//! UTKFace's chips are dlib face chips (size 200, padding 0.2). A photo with
//! 68 landmarks is framed the same way by the similarity transform that
//! carries its eye centres and mouth corners onto those of dlib's mean face
//! ([`FaceTemplate`]), at any output size.
//!
//! Measured on the real data (`examples/framing.rs`): the mean of the 127
//! aligned FG-NET dev faces correlates 0.89 with the mean of 500 UTKFace
//! chips at padding 0.2 (0.85 at 0.15, 0.83 at 0.25, 0.73 at 0.3), and the
//! scale and shift that would line the two means up best are 1.01 and under
//! 1 px at 128×128.
//!
//! Two 68-point conventions exist and they differ: the iBUG/dlib one
//! (eyes 36–47) and FG-NET's own markup (eye contours 27–30 and 32–35 with
//! the pupils at 31 and 36, nose tip 67). [`LandmarkScheme`] names which one
//! a set of landmarks follows. FG-NET's `.pts` files use
//! [`LandmarkScheme::FgNet68`]; reading them as iBUG points puts an "eye" on
//! the nose and frames the face far too tight.

use agesynth_core::{
    geometry::{warp, FaceTemplate, FivePoints, Point, Similarity},
    Error, FaceImage, Result,
};
use serde::{Deserialize, Serialize};

/// Number of points in a 68-point landmark set.
pub const N_LANDMARKS: usize = 68;

/// The numbering of a 68-point landmark set (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LandmarkScheme {
    /// iBUG 300-W / dlib: jaw 0–16, brows 17–26, nose 27–35, eyes 36–41 and
    /// 42–47, mouth 48–67 (corners 48 and 54).
    Ibug68,
    /// FG-NET's markup: jaw 0–14, brows 15–26, eye contours 27–30 (image
    /// left, pupil 31) and 32–35 (image right, pupil 36), nose 37–47,
    /// mouth 48–66 (corners 48 and 54), nose tip 67.
    FgNet68,
}

impl LandmarkScheme {
    /// The five canonical points, in image order (see [`FivePoints`]): eye
    /// centres as the means of the eye-contour points, nose tip, mouth
    /// corners.
    pub fn five_points(self, landmarks: &[Point; N_LANDMARKS]) -> FivePoints {
        let mean = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            let (x, y) = landmarks[r]
                .iter()
                .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
            [x / n, y / n]
        };
        match self {
            LandmarkScheme::Ibug68 => [
                mean(36..42),
                mean(42..48),
                landmarks[30],
                landmarks[48],
                landmarks[54],
            ],
            LandmarkScheme::FgNet68 => [
                mean(27..31),
                mean(32..36),
                landmarks[67],
                landmarks[48],
                landmarks[54],
            ],
        }
    }
}

/// The transform carrying a photo with these landmarks onto `template`
/// (eye centres and mouth corners, least squares).
pub fn alignment(
    landmarks: &[Point; N_LANDMARKS],
    scheme: LandmarkScheme,
    template: &FaceTemplate,
) -> Result<Similarity> {
    let p = scheme.five_points(landmarks);
    template.alignment(&[(0, p[0]), (1, p[1]), (3, p[3]), (4, p[4])])
}

/// The face of `image` framed like a UTKFace chip (or by any other
/// `template`): a `template.size`-square image.
pub fn align(
    image: &FaceImage,
    landmarks: &[Point; N_LANDMARKS],
    scheme: LandmarkScheme,
    template: &FaceTemplate,
) -> Result<FaceImage> {
    let t = alignment(landmarks, scheme, template)?;
    if !(t.scale().is_finite() && t.scale() > 1e-6) {
        return Err(Error::InvalidInput(format!(
            "degenerate landmarks: alignment scale {}",
            t.scale()
        )));
    }
    warp(image, &t, template.size, template.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 68 landmarks of the template's mean face (the jaw line, which the mean
    /// face lacks, put on a circle), in chip coordinates.
    fn template_landmarks(t: &FaceTemplate) -> [Point; 68] {
        let mut l = [[0.0; 2]; 68];
        for (i, p) in l.iter_mut().enumerate() {
            *p = t.landmark68(i).unwrap_or_else(|| {
                let a = std::f64::consts::PI * i as f64 / 16.0;
                let s = t.size as f64;
                [s / 2.0 - 0.4 * s * a.cos(), s / 2.0 + 0.4 * s * a.sin()]
            });
        }
        l
    }

    #[test]
    fn five_points_of_the_mean_face_are_the_template() {
        let t = FaceTemplate::utkface(200);
        let got = LandmarkScheme::Ibug68.five_points(&template_landmarks(&t));
        for (g, w) in got.iter().zip(t.five_points()) {
            assert!((g[0] - w[0]).abs() < 1e-9 && (g[1] - w[1]).abs() < 1e-9);
        }
    }

    /// Draws a photo with white dots at a transformed face's eye centres and
    /// mouth corners, aligns it from its landmarks and finds the dots again:
    /// each must land within 1 px of the template point.
    #[test]
    fn aligned_landmarks_land_on_the_template_within_one_pixel() {
        for (size, angle, scale, tx, ty) in [
            (128u32, 0.25f64, 2.6f64, 40.0f64, 25.0f64),
            (64, -0.4, 4.1, 10.0, 60.0),
            (200, 0.05, 1.7, 5.0, 5.0),
        ] {
            let tpl = FaceTemplate::utkface(size);
            let chip_to_photo = Similarity {
                a: scale * angle.cos(),
                b: scale * angle.sin(),
                tx,
                ty,
            };
            let mut lm = template_landmarks(&tpl);
            for p in lm.iter_mut() {
                *p = chip_to_photo.apply(*p);
            }
            // Perturb the eye contours symmetrically: centres unchanged.
            for i in 36..42 {
                let d = if i < 39 { 1.5 } else { -1.5 };
                lm[i][1] += d;
                lm[i + 6][1] -= d;
            }
            let pts = LandmarkScheme::Ibug68.five_points(&lm);
            let (w, h) = (640u32, 700u32);
            let mut px = vec![20u8; (w * h * 3) as usize];
            // A 5x5 block per point (colour codes the point), centred on it.
            let marks = [0usize, 1, 3, 4];
            for (k, &i) in marks.iter().enumerate() {
                let (cx, cy) = (pts[i][0].round() as i64, pts[i][1].round() as i64);
                for y in cy - 2..=cy + 2 {
                    for x in cx - 2..=cx + 2 {
                        let o = ((y * w as i64 + x) * 3) as usize;
                        px[o + k.min(2)] = 255;
                        if k == 3 {
                            px[o] = 255;
                        }
                    }
                }
            }
            let photo = FaceImage::new(w, h, px).unwrap();
            let out = align(&photo, &lm, LandmarkScheme::Ibug68, &tpl).unwrap();
            let canon = tpl.five_points();
            let t = alignment(&lm, LandmarkScheme::Ibug68, &tpl).unwrap();
            for (k, &i) in marks.iter().enumerate() {
                // Geometric check: the transform maps the point exactly.
                let m = t.apply(pts[i]);
                assert!((m[0] - canon[i][0]).hypot(m[1] - canon[i][1]) < 1.0);
                // Pixel check: centroid of the mark's colour in the output.
                let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
                for (j, p) in out.pixels().chunks(3).enumerate() {
                    let v = match k {
                        0 => p[0] as f64 - p[1].max(p[2]) as f64,
                        1 => p[1] as f64 - p[0].max(p[2]) as f64,
                        2 => p[2] as f64 - p[0].max(p[1]) as f64,
                        _ => (p[0].min(p[2]) as f64) - p[1] as f64,
                    }
                    .max(0.0);
                    sx += v * (j % size as usize) as f64;
                    sy += v * (j / size as usize) as f64;
                    sw += v;
                }
                assert!(sw > 0.0, "mark {k} vanished at size {size}");
                let (cx, cy) = (sx / sw, sy / sw);
                let err = (cx - canon[i][0]).hypot(cy - canon[i][1]);
                assert!(
                    err < 1.0,
                    "size {size}: point {i} at ({cx:.2}, {cy:.2}), template {:?}, off by {err:.2} px",
                    canon[i]
                );
            }
        }
    }

    #[test]
    fn fgnet_scheme_reads_its_own_eye_and_nose_points() {
        let mut l = [[0.0; 2]; 68];
        for (i, p) in l.iter_mut().enumerate() {
            *p = [1000.0 + i as f64, 1000.0];
        }
        // Eye contours around (100, 50) and (140, 52); pupils elsewhere.
        for (k, d) in [[-5.0, 0.0], [0.0, -3.0], [5.0, 0.0], [0.0, 3.0]]
            .iter()
            .enumerate()
        {
            l[27 + k] = [100.0 + d[0], 50.0 + d[1]];
            l[32 + k] = [140.0 + d[0], 52.0 + d[1]];
        }
        l[67] = [120.0, 70.0];
        l[48] = [105.0, 90.0];
        l[54] = [135.0, 91.0];
        let p = LandmarkScheme::FgNet68.five_points(&l);
        assert_eq!(
            p,
            [
                [100.0, 50.0],
                [140.0, 52.0],
                [120.0, 70.0],
                [105.0, 90.0],
                [135.0, 91.0]
            ]
        );
    }
}
