//! [`FaceAger`] ages aligned face chips; [`Ager`] ages the faces in whole
//! photos (detect, align, age, paste back).

use std::path::{Path, PathBuf};

use agesynth_core::geometry::{FivePoints, Similarity};
use agesynth_core::{AgeBins, AgeEstimator, AgeGenerator, AgeGroup, FaceImage};
use agesynth_data::transform::{resize, DecodeLimits};
use agesynth_face::align::{self, ChipSpec};
use agesynth_face::detect::{Face, Mtcnn, MtcnnConfig};
use agesynth_face::{AgeConfig, DlibAgeEstimator};
use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::paste::{self, ChipField, FaceMask, PasteMode};
use crate::weights::{AGE_WEIGHTS, FACEGAN_WEIGHTS, MTCNN_WEIGHTS};

/// A target age and the generator's age group that stands for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// The age asked for, in years.
    pub age: f32,
    /// The group it falls in (the generator is conditioned on groups).
    #[serde(serialize_with = "ser_group")]
    pub group: AgeGroup,
    /// The group's label, e.g. `"30-39"`.
    pub label: String,
}

fn ser_group<S: serde::Serializer>(g: &AgeGroup, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(g.0 as u64)
}

impl Target {
    /// The age as a file-name part: `30` for 30.0, `32.5` otherwise.
    pub fn age_text(&self) -> String {
        format_age(self.age)
    }

    /// The caption of an output: `"age 30 (group 30-39)"`.
    pub fn caption(&self) -> String {
        format!("age {} (group {})", self.age_text(), self.label)
    }
}

/// `30` for 30.0, `32.5` for 32.5.
pub fn format_age(age: f32) -> String {
    if age.fract() == 0.0 && age.abs() < 1e9 {
        format!("{}", age as i64)
    } else {
        format!("{age}")
    }
}

/// Ages UTKFace-framed face chips with a FaceGAN generator.
#[derive(Clone)]
pub struct FaceAger {
    generator: std::sync::Arc<dyn AgeGenerator>,
    bins: AgeBins,
    device: Device,
}

impl std::fmt::Debug for FaceAger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceAger")
            .field("image_size", &self.generator.image_size())
            .field("bins", &self.bins)
            .field("device", &self.device)
            .finish()
    }
}

impl FaceAger {
    /// Wraps a generator (any image-to-image [`AgeGenerator`]: FaceGAN's
    /// U-Net or one of your own) whose weights live on `device`.
    pub fn new(generator: impl AgeGenerator + 'static, device: &Device) -> Result<Self> {
        let generator: std::sync::Arc<dyn AgeGenerator> = std::sync::Arc::new(generator);
        let bins = generator.age_bins().clone();
        Ok(FaceAger {
            generator,
            bins,
            device: device.clone(),
        })
    }

    /// Loads a generator written by the FaceGAN trainer (`path` with its
    /// `.json` config sidecar, a checkpoint or a run folder), through
    /// [`agesynth_facegan::load_generator`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(PipelineError::Weights {
                what: "FaceGAN generator",
                path: path.to_path_buf(),
                source: format!(
                    "{} does not exist: train one with `agesynth train facegan` and pass it \
                     with --generator (or put it in the weights folder)",
                    path.display()
                )
                .into(),
            });
        }
        let (g, _) =
            agesynth_facegan::load_generator(path, device).map_err(|e| PipelineError::Weights {
                what: "FaceGAN generator",
                path: path.to_path_buf(),
                source: Box::new(e),
            })?;
        Self::new(g, device)
    }

    /// The generator.
    pub fn generator(&self) -> &dyn AgeGenerator {
        self.generator.as_ref()
    }

    /// The generator's age groups.
    pub fn bins(&self) -> &AgeBins {
        &self.bins
    }

    /// Side of the chips the generator takes and makes.
    pub fn chip_size(&self) -> u32 {
        self.generator.image_size() as u32
    }

    /// How faces are framed for the generator: UTKFace's framing (dlib
    /// template, padding 0.2) at its image size, as it was trained.
    pub fn chip_spec(&self) -> ChipSpec {
        ChipSpec::utkface(self.chip_size())
    }

    /// The group each target age falls in. Errors when `ages` is empty or
    /// holds an age that is not a number of years from 0 to
    /// [`MAX_TARGET_AGE`].
    pub fn targets(&self, ages: &[f32]) -> Result<Vec<Target>> {
        if ages.is_empty() {
            return Err(PipelineError::TargetAge("no target age given".into()));
        }
        if ages.len() > MAX_TARGETS {
            return Err(PipelineError::TargetAge(format!(
                "{} target ages given, at most {MAX_TARGETS} are accepted",
                ages.len()
            )));
        }
        ages.iter()
            .map(|&age| {
                if !(0.0..=MAX_TARGET_AGE).contains(&age) {
                    return Err(PipelineError::TargetAge(format!(
                        "target age {age} is not a number of years from 0 to {MAX_TARGET_AGE}"
                    )));
                }
                let group = self
                    .bins
                    .group(age)
                    .map_err(|e| PipelineError::TargetAge(e.to_string()))?;
                Ok(Target {
                    age,
                    group,
                    label: self.bins.label(group),
                })
            })
            .collect()
    }

    /// Every chip of `chips` (square, of [`FaceAger::chip_size`]) at every
    /// target: `out[i][t]` is chip `i` at `targets[t]`, as values in
    /// `[0, 255]` (not rounded, so that residuals keep their precision).
    pub fn age_chips(
        &self,
        chips: &[FaceImage],
        targets: &[Target],
    ) -> Result<Vec<Vec<ChipField>>> {
        let s = self.chip_size();
        if chips.is_empty() || targets.is_empty() {
            return Ok(vec![Vec::new(); chips.len()]);
        }
        let dev = self.generator_device();
        let mut inputs = Vec::with_capacity(chips.len() * targets.len());
        let mut groups = Vec::with_capacity(inputs.capacity());
        for c in chips {
            if (c.width(), c.height()) != (s, s) {
                return Err(agesynth_core::Error::InvalidInput(format!(
                    "the generator takes {s}x{s} chips, got {}x{}",
                    c.width(),
                    c.height()
                ))
                .into());
            }
            let t = Tensor::from_vec(c.to_chw_f32(), (1, 3, s as usize, s as usize), &dev)?;
            for target in targets {
                inputs.push(t.clone());
                groups.push(target.group);
            }
        }
        // In chunks of at most GENERATOR_CHUNK chips, so that memory stays
        // bounded whatever the number of faces and targets.
        let mut out = Vec::with_capacity(inputs.len() * (s * s * 3) as usize);
        for (xs, gs) in inputs
            .chunks(GENERATOR_CHUNK)
            .zip(groups.chunks(GENERATOR_CHUNK))
        {
            let x = Tensor::cat(xs, 0)?;
            let y = self.generator.generate(&x, gs)?;
            // NaN or infinite values (damaged weights) are no picture.
            agesynth_core::io::ensure_finite_output(&y, "the FaceGAN generator")?;
            // (N, 3, S, S) in (-1, 1) -> (N, S, S, 3) in [0, 255].
            let y = ((y.permute((0, 2, 3, 1))? + 1.0)? * 127.5)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            out.extend_from_slice(&y);
        }
        let per = (s * s * 3) as usize;
        let mut fields = out
            .chunks_exact(per)
            .map(|v| ChipField::new(s, v.to_vec()))
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        Ok(chips
            .iter()
            .map(|_| fields.by_ref().take(targets.len()).collect())
            .collect())
    }

    fn generator_device(&self) -> Device {
        self.device.clone()
    }
}

/// The oldest target age accepted, in years.
pub const MAX_TARGET_AGE: f32 = 120.0;

/// The most target ages one call accepts.
pub const MAX_TARGETS: usize = 64;

/// Chips run through the generator per forward pass.
pub const GENERATOR_CHUNK: usize = 32;

/// How [`Ager`] finds, aligns and pastes faces.
#[derive(Clone, Debug, PartialEq)]
pub struct AgerOptions {
    /// Age only the largest face of each photo.
    pub largest_only: bool,
    /// Faces whose box is narrower than this fraction of the largest face's
    /// are left alone: in practice they are false detections (an earring,
    /// a button) or faces too small to show any ageing.
    pub min_relative_size: f64,
    /// The soft mask the aged face is pasted back through.
    pub mask: FaceMask,
    /// How the aged face is put back (see [`PasteMode`]).
    pub paste: PasteMode,
    /// Photos whose longer side exceeds this are downscaled for detection
    /// only (boxes and landmarks are mapped back; ageing and pasting work at
    /// full resolution).
    pub detect_max_side: u32,
    /// The detector's parameters. The default looks for faces of 40 px and
    /// up (MTCNN's own default is 20): a smaller face fills less than the
    /// 64-pixel chip the generator works on, so ageing it shows nothing,
    /// and skipping the finest pyramid levels makes detection several times
    /// faster.
    pub mtcnn: MtcnnConfig,
    /// Limits for decoding photo files.
    pub decode_limits: DecodeLimits,
}

impl Default for AgerOptions {
    fn default() -> Self {
        AgerOptions {
            largest_only: false,
            min_relative_size: 0.25,
            mask: FaceMask::default(),
            paste: PasteMode::default(),
            detect_max_side: 1024,
            mtcnn: MtcnnConfig {
                min_face_size: 40.0,
                ..MtcnnConfig::default()
            },
            decode_limits: DecodeLimits::default(),
        }
    }
}

/// One face of a photo, aged to every target.
#[derive(Clone, Debug)]
pub struct AgedFace {
    /// Bounding box `[x1, y1, x2, y2]` in the (orientation-corrected) photo.
    pub bbox: [f64; 4],
    /// The detector's face probability.
    pub score: f32,
    /// Eye centres, nose tip and mouth corners in the photo (see
    /// [`FivePoints`]).
    pub landmarks5: FivePoints,
    /// The age estimator's estimate of the input face, in years (`None`
    /// when the ager has no estimator).
    pub estimated_age: Option<f32>,
    /// The photo → chip transform the face was aligned with.
    pub to_chip: Similarity,
    /// The aligned input chip the generator saw.
    pub chip: FaceImage,
    /// The generator's output chip at each target, in target order.
    pub outputs: Vec<AgedChip>,
}

/// One face at one target age, as the generator made it.
#[derive(Clone, Debug)]
pub struct AgedChip {
    /// The target age and its group.
    pub target: Target,
    /// The aligned output chip (UTKFace framing, the generator's size).
    pub chip: FaceImage,
}

/// A photo with its faces aged: one full photo per target age.
#[derive(Clone, Debug)]
pub struct AgedPhoto {
    /// The photo as read (orientation applied).
    pub original: FaceImage,
    /// The targets, in the order asked for.
    pub targets: Vec<Target>,
    /// The faces, left to right.
    pub faces: Vec<AgedFace>,
    /// The whole photo at each target (same order as `targets`); outside the
    /// faces' masks its pixels are the original's, bit for bit.
    pub images: Vec<FaceImage>,
}

/// Ages the faces in photos: detects them (MTCNN), aligns each from its
/// five landmarks the way the generator was trained (UTKFace framing),
/// estimates its age, ages it to every target with FaceGAN, and pastes the
/// result back into the full-resolution photo through a feathered mask.
#[derive(Clone, Debug)]
pub struct Ager {
    detector: Mtcnn,
    face_ager: FaceAger,
    estimator: Option<DlibAgeEstimator>,
    opts: AgerOptions,
}

impl Ager {
    /// An ager from its parts.
    pub fn new(
        detector: Mtcnn,
        face_ager: FaceAger,
        estimator: Option<DlibAgeEstimator>,
        opts: AgerOptions,
    ) -> Self {
        Ager {
            detector,
            face_ager,
            estimator,
            opts,
        }
    }

    /// Loads the shipped networks from `dir`: the FaceGAN generator
    /// ([`FACEGAN_WEIGHTS`]), MTCNN ([`MTCNN_WEIGHTS`]) and the age estimator
    /// ([`AGE_WEIGHTS`]); default options.
    pub fn from_weights_dir(dir: &Path, device: &Device) -> Result<Self> {
        Self::load(
            &dir.join(FACEGAN_WEIGHTS),
            dir,
            device,
            AgerOptions::default(),
        )
    }

    /// Loads the generator from `facegan` (a weights file with its sidecar,
    /// a checkpoint or a run folder) and the face networks from `dir`.
    pub fn load(facegan: &Path, dir: &Path, device: &Device, opts: AgerOptions) -> Result<Self> {
        let face_ager = FaceAger::load(facegan, device)?;
        let mtcnn_path = dir.join(MTCNN_WEIGHTS);
        let detector =
            Mtcnn::load(&mtcnn_path, &opts.mtcnn, device).map_err(|e| PipelineError::Weights {
                what: "MTCNN detector",
                path: mtcnn_path.clone(),
                source: Box::new(e),
            })?;
        let age_path = dir.join(AGE_WEIGHTS);
        let estimator =
            DlibAgeEstimator::load(&AgeConfig::default(), &age_path, device).map_err(|e| {
                PipelineError::Weights {
                    what: "age estimator",
                    path: age_path.clone(),
                    source: Box::new(e),
                }
            })?;
        Ok(Self::new(detector, face_ager, Some(estimator), opts))
    }

    /// The same ager with other options.
    pub fn with_options(mut self, opts: AgerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The options.
    pub fn options(&self) -> &AgerOptions {
        &self.opts
    }

    /// The chip ager (the generator and its age groups).
    pub fn face_ager(&self) -> &FaceAger {
        &self.face_ager
    }

    /// The faces in `image`, left to right (only the largest with
    /// [`AgerOptions::largest_only`]; none much smaller than the largest, see
    /// [`AgerOptions::min_relative_size`]). Large photos are downscaled for the
    /// detector; boxes and landmarks are in `image`'s coordinates.
    pub fn detect(&self, image: &FaceImage) -> Result<Vec<Face>> {
        let (w, h) = (image.width(), image.height());
        let long = w.max(h);
        let max = self.opts.detect_max_side.max(32);
        let mut faces = if long > max {
            let k = max as f64 / long as f64;
            let (sw, sh) = (
                ((w as f64 * k).round() as u32).max(1),
                ((h as f64 * k).round() as u32).max(1),
            );
            let small = resize(image, sw, sh)?;
            let (fx, fy) = (w as f64 / sw as f64, h as f64 / sh as f64);
            let mut faces = self.detector.detect(&small)?;
            for f in &mut faces {
                f.bbox = [
                    f.bbox[0] * fx,
                    f.bbox[1] * fy,
                    f.bbox[2] * fx,
                    f.bbox[3] * fy,
                ];
                // Pixel centres: small pixel i covers [i, i + 1) · f.
                for p in &mut f.landmarks5 {
                    *p = [(p[0] + 0.5) * fx - 0.5, (p[1] + 0.5) * fy - 0.5];
                }
            }
            faces
        } else {
            self.detector.detect(image)?
        };
        let widest = faces.iter().map(Face::width).fold(0.0, f64::max);
        faces.retain(|f| f.width() >= self.opts.min_relative_size * widest);
        if self.opts.largest_only {
            let area = |f: &Face| f.width() * f.height();
            if let Some(best) = faces
                .iter()
                .cloned()
                .max_by(|a, b| area(a).total_cmp(&area(b)))
            {
                faces = vec![best];
            }
        }
        faces.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
        Ok(faces)
    }

    /// Reads the photo at `path` (JPEG or PNG, EXIF orientation applied) and
    /// ages its faces to `ages` (see [`Ager::age_image`]). Errors name the
    /// file.
    pub fn age_file(&self, path: &Path, ages: &[f32]) -> Result<AgedPhoto> {
        let image = crate::input::load_photo(path, &self.opts.decode_limits)?;
        self.age_image(&image, ages).map_err(|e| e.with_path(path))
    }

    /// Ages every face of `image` to each of `ages` (years; each maps to the
    /// generator's age group holding it). [`PipelineError::NoFace`] when the
    /// detector finds none.
    pub fn age_image(&self, image: &FaceImage, ages: &[f32]) -> Result<AgedPhoto> {
        let targets = self.face_ager.targets(ages)?;
        let faces = self.detect(image)?;
        if faces.is_empty() {
            return Err(PipelineError::NoFace {
                path: PathBuf::from("<image>"),
            });
        }
        let spec = self.face_ager.chip_spec();
        let mut aligned = Vec::with_capacity(faces.len());
        for f in &faces {
            let to_chip = align::alignment(&f.landmarks5, &spec)?;
            let chip = warp_chip(image, &to_chip, spec.size)?;
            aligned.push((to_chip, chip));
        }
        let chips: Vec<FaceImage> = aligned.iter().map(|(_, c)| c.clone()).collect();
        let estimated = self.estimate_ages(image, &faces)?;
        let outputs = self.face_ager.age_chips(&chips, &targets)?;

        let mut images = vec![image.clone(); targets.len()];
        // A black-and-white photo stays black and white (the generator
        // paints skin colour).
        let grey = is_grey(image);
        let mut aged_faces = Vec::with_capacity(faces.len());
        for (i, ((face, (to_chip, chip)), outs)) in
            faces.into_iter().zip(aligned).zip(outputs).enumerate()
        {
            let input = ChipField::from_image(&chip)?;
            let mut out_images = Vec::with_capacity(outs.len());
            for (t, out) in outs.iter().enumerate() {
                let field = match self.opts.paste {
                    PasteMode::Residual => out.minus(&input)?,
                    PasteMode::Replace => out.clone(),
                };
                paste::paste(
                    &mut images[t],
                    &field,
                    &to_chip,
                    &self.opts.mask,
                    self.opts.paste,
                )?;
                let out_image = field_to_image(out)?;
                out_images.push(AgedChip {
                    target: targets[t].clone(),
                    chip: if grey {
                        to_grey(&out_image)?
                    } else {
                        out_image
                    },
                });
            }
            aged_faces.push(AgedFace {
                bbox: face.bbox,
                score: face.score,
                landmarks5: face.landmarks5,
                estimated_age: estimated.as_ref().map(|a| a[i]),
                to_chip,
                chip,
                outputs: out_images,
            });
        }
        if grey {
            images = images.iter().map(to_grey).collect::<Result<_>>()?;
        }
        Ok(AgedPhoto {
            original: image.clone(),
            targets,
            faces: aged_faces,
            images,
        })
    }

    /// The estimator's age of each face (`None` without an estimator), from
    /// 64-pixel UTKFace-framed chips, its training framing.
    fn estimate_ages(&self, image: &FaceImage, faces: &[Face]) -> Result<Option<Vec<f32>>> {
        let Some(est) = &self.estimator else {
            return Ok(None);
        };
        let spec = ChipSpec::utkface(agesynth_face::age::CHIP_SIZE as u32);
        let dev = self.face_ager.generator_device();
        let mut xs = Vec::with_capacity(faces.len());
        for f in faces {
            let chip = warp_chip(image, &align::alignment(&f.landmarks5, &spec)?, spec.size)?;
            let s = spec.size as usize;
            xs.push(Tensor::from_vec(chip.to_chw_f32(), (1, 3, s, s), &dev)?);
        }
        let ages = est.estimate(&Tensor::cat(&xs, 0)?)?;
        Ok(Some(ages.to_device(&Device::Cpu)?.to_vec1::<f32>()?))
    }
}

/// The `size`×`size` chip `to_chip` cuts from `image`, warping only the
/// region of the photo the chip covers (a face in a large photo costs what
/// the face's size costs, not what the photo's does).
pub fn warp_chip(image: &FaceImage, to_chip: &Similarity, size: u32) -> Result<FaceImage> {
    let (w, h) = (image.width(), image.height());
    let [x0, y0, x1, y1] = paste::chip_footprint(to_chip, size, w, h)?;
    // Room for the warp's box filter (its factor is the shrink ratio).
    let margin = (1.0 / to_chip.scale()).ceil().min(1e6) as u32 + 2;
    let (x0, y0) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
    let (x1, y1) = ((x1 + margin).min(w), (y1 + margin).min(h));
    if x1 <= x0 || y1 <= y0 || (x1 - x0) as u64 * (y1 - y0) as u64 >= w as u64 * h as u64 {
        return Ok(agesynth_core::geometry::warp(image, to_chip, size, size)?);
    }
    let region = agesynth_data::transform::crop(image, x0, y0, x1 - x0, y1 - y0)?;
    let from_region = Similarity {
        a: 1.0,
        b: 0.0,
        tx: x0 as f64,
        ty: y0 as f64,
    };
    Ok(agesynth_core::geometry::warp(
        &region,
        &to_chip.after(&from_region),
        size,
        size,
    )?)
}

/// Whether every pixel of `image` has R = G = B (a greyscale photo decoded
/// to RGB); see [`FaceImage::is_grey`].
pub fn is_grey(image: &FaceImage) -> bool {
    image.is_grey()
}

/// `image` in grey (Rec. 601 luma, in integers so that a pixel with R = G =
/// B keeps its value exactly); see [`FaceImage::to_grey`].
pub fn to_grey(image: &FaceImage) -> Result<FaceImage> {
    Ok(image.to_grey())
}

/// A chip of values in `[0, 255]` as an 8-bit image.
pub fn field_to_image(field: &ChipField) -> Result<FaceImage> {
    let px = field
        .values()
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    Ok(FaceImage::new(field.size(), field.size(), px)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_stays_grey_and_exactly_so() {
        let colour = agesynth_data::testing::synthetic_face(20, 10, 1);
        assert!(!is_grey(&colour));
        let grey = to_grey(&colour).unwrap();
        assert!(is_grey(&grey));
        assert_eq!(to_grey(&grey).unwrap(), grey);
    }

    #[test]
    fn warping_the_face_region_matches_warping_the_photo() {
        let photo = agesynth_data::testing::synthetic_face(400, 300, 3);
        for scale in [0.9, 0.3] {
            let to_chip = Similarity {
                a: scale * 0.1f64.cos(),
                b: scale * 0.1f64.sin(),
                tx: -120.0 * scale,
                ty: -60.0 * scale,
            };
            let fast = warp_chip(&photo, &to_chip, 48).unwrap();
            let full = agesynth_core::geometry::warp(&photo, &to_chip, 48, 48).unwrap();
            let mad = fast
                .pixels()
                .iter()
                .zip(full.pixels())
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / fast.pixels().len() as f64;
            // Exact without the box filter; the filter's blocks start at the
            // region's corner instead of the photo's, a sub-pixel shift.
            if scale > 0.5 {
                assert_eq!(fast, full);
            } else {
                assert!(mad < 3.0, "mean difference {mad}");
            }
        }
    }
}
