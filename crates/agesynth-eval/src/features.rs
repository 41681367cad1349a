//! What the metrics are computed from: for each face image, whether MTCNN
//! finds a face in it, its identity embedding and its estimated age, and,
//! where a second judge is given, that judge's age and gender (face-api's
//! age-gender network), computed in batches and timed.

use std::{
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use agesynth_core::{
    AgeClassifier, AgeEstimator, Error, FaceEmbedder, FaceImage, GenderClassifier, Result,
};
use agesynth_face::{
    detect::{Mtcnn, MtcnnConfig},
    FaceApiAgeGender,
};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Side to which chips are upsampled before detection. MTCNN looks for
/// faces of at least `min_face_size` pixels through a pyramid that starts
/// at 12 px cells, and a 64 px chip framed like UTKFace holds a face of
/// about 35 px: too small for a reliable cascade. At 160 px the face is
/// about 90 px.
pub const DETECT_SIZE: u32 = 160;

/// Smallest face side MTCNN looks for in the upsampled chip (the face of a
/// UTKFace-framed chip is about half its side, so 40 px at 160 px leaves a
/// wide margin and saves the pyramid's finest levels).
pub const DETECT_MIN_FACE: f64 = 40.0;

/// Something that says whether an image holds a face.
pub trait FaceDetector: Send + Sync {
    /// True when at least one face is found in `image`.
    fn has_face(&self, image: &FaceImage) -> Result<bool>;
}

/// MTCNN on the chip upsampled (bilinear) to [`DETECT_SIZE`].
#[derive(Clone, Debug)]
pub struct MtcnnDetector {
    mtcnn: Mtcnn,
    size: u32,
}

impl MtcnnDetector {
    /// Wraps a detector; chips are upsampled to `size` pixels first.
    pub fn new(mtcnn: Mtcnn, size: u32) -> Self {
        MtcnnDetector { mtcnn, size }
    }

    /// Loads MTCNN from its weights file (`weights/mtcnn.safetensors`) with
    /// `min_face_size` [`DETECT_MIN_FACE`] and upsampling to
    /// [`DETECT_SIZE`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let cfg = MtcnnConfig {
            min_face_size: DETECT_MIN_FACE,
            ..MtcnnConfig::default()
        };
        Ok(Self::new(Mtcnn::load(path, &cfg, device)?, DETECT_SIZE))
    }
}

impl FaceDetector for MtcnnDetector {
    fn has_face(&self, image: &FaceImage) -> Result<bool> {
        let up = if image.width() < self.size || image.height() < self.size {
            agesynth_data::transform::resize(image, self.size, self.size)?
        } else {
            image.clone()
        };
        Ok(!self.mtcnn.detect(&up)?.is_empty())
    }
}

/// A second judge of age that also reads gender: face-api's age-gender
/// network, measured beside dlib's age estimator.
pub trait AgeGenderJudge: Send + Sync {
    /// Short name for table headers (`"face-api"`).
    fn name(&self) -> &str;
    /// Ages `(N,)` in years and probabilities of female `(N,)` of
    /// UTKFace-framed images `(N, 3, H, W)` in `[-1, 1]`.
    fn judge(&self, images: &Tensor) -> Result<(Tensor, Tensor)>;
}

impl AgeGenderJudge for FaceApiAgeGender {
    fn name(&self) -> &str {
        "face-api"
    }

    fn judge(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.predict(images)?;
        Ok((out.age.clone(), out.female()?))
    }
}

/// Per-image features.
#[derive(Clone, Debug, Default)]
pub struct Features {
    /// Identity embeddings, one row per image.
    pub embeddings: Vec<Vec<f32>>,
    /// Estimated ages in years.
    pub ages: Vec<f32>,
    /// Whether a face was detected.
    pub detected: Vec<bool>,
    /// The second judge's ages in years (empty without one).
    pub judge_ages: Vec<f32>,
    /// The second judge's probabilities of female (empty without one).
    pub female: Vec<f32>,
    /// The centre, in years, of the age group a training critic (a
    /// teacher, not a judge) reads in each image (empty without one).
    pub teacher_ages: Vec<f32>,
    /// The probability of female a training gender critic (a teacher, not
    /// a judge) reads in each image (empty without one).
    pub teacher_female: Vec<f32>,
}

impl Features {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.ages.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.ages.is_empty()
    }

    /// Appends `other`.
    pub fn extend(&mut self, other: Features) {
        self.embeddings.extend(other.embeddings);
        self.ages.extend(other.ages);
        self.detected.extend(other.detected);
        self.judge_ages.extend(other.judge_ages);
        self.female.extend(other.female);
        self.teacher_ages.extend(other.teacher_ages);
        self.teacher_female.extend(other.teacher_female);
    }

    /// True when the second judge measured these images.
    pub fn has_judge(&self) -> bool {
        !self.ages.is_empty() && self.judge_ages.len() == self.ages.len()
    }

    /// True when a training critic read these images.
    pub fn has_teacher(&self) -> bool {
        !self.ages.is_empty() && self.teacher_ages.len() == self.ages.len()
    }
}

/// Wall time spent in each network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Seconds loading and aligning faces.
    pub load_s: f64,
    /// Seconds in the generator.
    pub generate_s: f64,
    /// Seconds in the identity embedder.
    pub embed_s: f64,
    /// Seconds in the age estimator.
    pub age_s: f64,
    /// Seconds in the second age (and gender) judge.
    #[serde(default)]
    pub age_gender_s: f64,
    /// Seconds in face detection (upsampling included).
    pub detect_s: f64,
    /// Seconds computing the metrics (Fréchet distances) and writing files.
    pub report_s: f64,
}

/// The three networks the metrics need, and optionally a second age and
/// gender judge, run in batches.
pub struct Analyzer<'a> {
    embedder: &'a dyn FaceEmbedder,
    estimator: &'a dyn AgeEstimator,
    detector: &'a dyn FaceDetector,
    judge: Option<&'a dyn AgeGenderJudge>,
    teacher: Option<&'a dyn AgeClassifier>,
    gender_teacher: Option<&'a dyn GenderClassifier>,
    device: Device,
    batch: usize,
    timings: Mutex<Timings>,
}

impl<'a> Analyzer<'a> {
    /// An analyzer running the networks on `device`, `batch` images at a
    /// time.
    pub fn new(
        embedder: &'a dyn FaceEmbedder,
        estimator: &'a dyn AgeEstimator,
        detector: &'a dyn FaceDetector,
        device: &Device,
        batch: usize,
    ) -> Self {
        Analyzer {
            embedder,
            estimator,
            detector,
            judge: None,
            teacher: None,
            gender_teacher: None,
            device: device.clone(),
            batch: batch.max(1),
            timings: Mutex::new(Timings::default()),
        }
    }

    /// Adds a second judge of age and gender, run on every image beside the
    /// age estimator.
    pub fn with_judge(mut self, judge: &'a dyn AgeGenderJudge) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Adds a training critic (an age classifier the generator learnt
    /// from) whose reading of every image is reported beside the judges':
    /// where it finds the target age far more often than they do, the
    /// generator has learnt to satisfy its teacher rather than to age.
    pub fn with_teacher(mut self, teacher: &'a dyn AgeClassifier) -> Self {
        self.teacher = Some(teacher);
        self
    }

    /// True when a training critic reads every image.
    pub fn has_teacher(&self) -> bool {
        self.teacher.is_some()
    }

    /// Adds a training gender critic (a gender classifier a generator
    /// learnt from) whose reading of every image is reported beside the
    /// judge's: where it finds the input's gender kept far more often than
    /// the judge does, the generator satisfies its teacher, or the teacher
    /// does not see what the judge sees.
    pub fn with_gender_teacher(mut self, teacher: &'a dyn GenderClassifier) -> Self {
        self.gender_teacher = Some(teacher);
        self
    }

    /// The second judge's name, if there is one.
    pub fn judge_name(&self) -> Option<&str> {
        self.judge.map(|j| j.name())
    }

    /// The embedder's same-person threshold.
    pub fn threshold(&self) -> f32 {
        self.embedder.threshold()
    }

    /// The device the networks run on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Time spent so far.
    pub fn timings(&self) -> Timings {
        self.timings.lock().map(|t| *t).unwrap_or_default()
    }

    /// Adds `d` to one of the timings.
    pub fn add_time(&self, which: impl FnOnce(&mut Timings) -> &mut f64, d: Duration) {
        if let Ok(mut t) = self.timings.lock() {
            *which(&mut t) += d.as_secs_f64();
        }
    }

    /// The recognition network's embeddings of `images` (all of one size)
    /// and nothing else: [`Analyzer::analyze`]'s `embeddings` without the
    /// other networks' cost.
    pub fn embed(&self, images: &[FaceImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch) {
            let x = images_to_tensor(chunk, &self.device)?;
            let t = Instant::now();
            let emb = self.embedder.embed(&x)?.to_vec2::<f32>()?;
            self.add_time(|t| &mut t.embed_s, t.elapsed());
            if emb.len() != chunk.len() {
                return Err(Error::InvalidInput(format!(
                    "the recognition network returned {} embeddings for {} images",
                    emb.len(),
                    chunk.len()
                )));
            }
            out.extend(emb);
        }
        Ok(out)
    }

    /// Features of `images` (all of one size).
    pub fn analyze(&self, images: &[FaceImage]) -> Result<Features> {
        let mut out = Features::default();
        for chunk in images.chunks(self.batch) {
            let x = images_to_tensor(chunk, &self.device)?;
            let t = Instant::now();
            let emb = self.embedder.embed(&x)?.to_vec2::<f32>()?;
            self.add_time(|t| &mut t.embed_s, t.elapsed());
            let t = Instant::now();
            let ages = self.estimator.estimate(&x)?.to_vec1::<f32>()?;
            self.add_time(|t| &mut t.age_s, t.elapsed());
            let (judge_ages, female) = match self.judge {
                Some(j) => {
                    let t = Instant::now();
                    let (a, f) = j.judge(&x)?;
                    let (a, f) = (a.to_vec1::<f32>()?, f.to_vec1::<f32>()?);
                    self.add_time(|t| &mut t.age_gender_s, t.elapsed());
                    if a.len() != chunk.len() || f.len() != chunk.len() {
                        return Err(Error::InvalidInput(format!(
                            "the {} judge returned {} ages and {} genders for {} images",
                            j.name(),
                            a.len(),
                            f.len(),
                            chunk.len()
                        )));
                    }
                    if let Some(bad) = a.iter().chain(&f).position(|v| !v.is_finite()) {
                        return Err(Error::InvalidInput(format!(
                            "the {} judge returned a non-finite value for image {} of a batch",
                            j.name(),
                            bad % chunk.len()
                        )));
                    }
                    (a, f)
                }
                None => (Vec::new(), Vec::new()),
            };
            let teacher_ages = match self.teacher {
                Some(c) => {
                    let t = Instant::now();
                    let groups = c.group_logits(&x)?.argmax(1)?.to_vec1::<u32>()?;
                    self.add_time(|t| &mut t.age_gender_s, t.elapsed());
                    let bins = c.age_bins();
                    groups
                        .into_iter()
                        .map(|g| bins.centre(agesynth_core::AgeGroup(g as usize)))
                        .collect()
                }
                None => Vec::new(),
            };
            let teacher_female = match self.gender_teacher {
                Some(c) => {
                    let t = Instant::now();
                    // p(female) = sigmoid(female logit − male logit).
                    let logits = c.gender_logits(&x)?;
                    let d = (logits.narrow(1, 1, 1)? - logits.narrow(1, 0, 1)?)?;
                    let p = d
                        .neg()?
                        .exp()?
                        .affine(1.0, 1.0)?
                        .recip()?
                        .squeeze(1)?
                        .to_vec1::<f32>()?;
                    self.add_time(|t| &mut t.age_gender_s, t.elapsed());
                    p
                }
                None => Vec::new(),
            };
            let t = Instant::now();
            let detected = chunk
                .par_iter()
                .map(|img| self.detector.has_face(img))
                .collect::<Result<Vec<bool>>>()?;
            self.add_time(|t| &mut t.detect_s, t.elapsed());
            if emb.len() != chunk.len() || ages.len() != chunk.len() {
                return Err(Error::InvalidInput(format!(
                    "the networks returned {} embeddings and {} ages for {} images",
                    emb.len(),
                    ages.len(),
                    chunk.len()
                )));
            }
            if let Some(bad) = ages.iter().position(|a| !a.is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "the age estimator returned a non-finite age for image {bad} of a batch"
                )));
            }
            out.extend(Features {
                embeddings: emb,
                ages,
                detected,
                judge_ages,
                female,
                teacher_ages,
                teacher_female,
            });
        }
        Ok(out)
    }
}

/// Stacks same-size images into an `(N, 3, H, W)` tensor in `[-1, 1]`.
pub fn images_to_tensor(images: &[FaceImage], device: &Device) -> Result<Tensor> {
    let first = images
        .first()
        .ok_or_else(|| Error::InvalidInput("no image to stack".into()))?;
    let (w, h) = (first.width() as usize, first.height() as usize);
    let mut data = Vec::with_capacity(images.len() * 3 * w * h);
    for img in images {
        if (img.width() as usize, img.height() as usize) != (w, h) {
            return Err(Error::InvalidInput(format!(
                "images of different sizes: {w}x{h} and {}x{}",
                img.width(),
                img.height()
            )));
        }
        data.extend(img.to_chw_f32());
    }
    Ok(Tensor::from_vec(data, (images.len(), 3, h, w), device)?)
}

/// The shipped face networks the metrics use, loaded from a weights folder.
pub struct FaceNets {
    /// dlib's face-recognition embedder.
    pub embedder: agesynth_face::DlibFaceEmbedder,
    /// dlib's age estimator.
    pub estimator: agesynth_face::DlibAgeEstimator,
    /// MTCNN on upsampled chips.
    pub detector: MtcnnDetector,
    /// face-api's age-gender network, the second age judge; `None` when
    /// its weights file is not in the folder (see
    /// [`FaceNets::age_gender_missing`]).
    pub age_gender: Option<FaceApiAgeGender>,
    /// Why there is no second judge: a message naming the missing file.
    pub age_gender_missing: Option<String>,
}

impl FaceNets {
    /// Loads `face_recognition.safetensors`, `age.safetensors` and
    /// `mtcnn.safetensors` from `dir` (the repository's `weights/`), and
    /// `age_gender.safetensors` when it is there: without it the face-api
    /// columns are left out of the reports (the message is in
    /// [`FaceNets::age_gender_missing`]); a file that is there but cannot be
    /// read is an error.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        use agesynth_face::import::{
            mtcnn::MTCNN_WEIGHTS, AGE_GENDER_WEIGHTS, AGE_WEIGHTS, FACE_RECOGNITION_WEIGHTS,
        };
        let ag_path = dir.join(AGE_GENDER_WEIGHTS);
        let (age_gender, age_gender_missing) = if ag_path.exists() {
            let net = FaceApiAgeGender::load(
                &agesynth_face::AgeGenderConfig::default(),
                &ag_path,
                device,
            )?;
            (Some(net), None)
        } else {
            let msg = format!(
                "{} not found: the face-api age and gender columns are left out \
                 (scripts/fetch-weights.sh or `agesynth weights import --face-api` writes it)",
                ag_path.display()
            );
            (None, Some(msg))
        };
        Ok(FaceNets {
            age_gender,
            age_gender_missing,
            embedder: agesynth_face::DlibFaceEmbedder::load(
                &agesynth_face::EmbedderConfig::default(),
                &dir.join(FACE_RECOGNITION_WEIGHTS),
                device,
            )?,
            estimator: agesynth_face::DlibAgeEstimator::load(
                &agesynth_face::AgeConfig::default(),
                &dir.join(AGE_WEIGHTS),
                device,
            )?,
            detector: MtcnnDetector::load(&dir.join(MTCNN_WEIGHTS), device)?,
        })
    }

    /// An [`Analyzer`] over these networks, with the age-gender network as
    /// its second judge when it was loaded.
    pub fn analyzer(&self, device: &Device, batch: usize) -> Analyzer<'_> {
        let a = Analyzer::new(
            &self.embedder,
            &self.estimator,
            &self.detector,
            device,
            batch,
        );
        match &self.age_gender {
            Some(net) => a.with_judge(net),
            None => a,
        }
    }
}
