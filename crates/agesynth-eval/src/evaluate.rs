//! The evaluation of age generators on a set of real faces: every input
//! rendered at every target group by each [`Method`] (the generator and the
//! baselines go through the same code path), then measured.

use std::time::Instant;

use agesynth_core::{batch::tensor_to_images, AgeBins, AgeGenerator, AgeGroup, FaceImage, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{
    features::{images_to_tensor, Analyzer, Features, Timings},
    metrics,
};

/// A real face: the aligned image at the generator's size and its labels.
#[derive(Clone, Debug)]
pub struct EvalFace {
    /// The face, framed like UTKFace, at the generator's size.
    pub image: FaceImage,
    /// Age in years.
    pub age: f32,
    /// The person, where the dataset names one (FG-NET).
    pub subject: Option<u32>,
    /// A key naming the photo (its file name).
    pub key: String,
}

/// The faces of an evaluation: a gallery of real photos and the indices of
/// those used as inputs (on FG-NET the gallery also holds every other photo
/// of the input subjects, for the nearest-real distance).
#[derive(Clone, Debug, Default)]
pub struct EvalData {
    /// What the faces are (dataset and folder), for the report.
    pub name: String,
    /// Every face loaded.
    pub gallery: Vec<EvalFace>,
    /// Indices into `gallery` of the inputs, ascending.
    pub inputs: Vec<usize>,
    /// Photos that could not be used, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// What a [`Method`] returns for a batch of (input, target group) rows.
#[derive(Clone, Debug)]
pub enum Rendered {
    /// New images, one per row (measured afresh).
    Images(Vec<FaceImage>),
    /// The inputs themselves (measured once: their features are cached).
    Inputs,
    /// Real faces, one per row, by index into the method's own
    /// [`Method::pool`] (or into the gallery when it has none); `None` where
    /// no face qualifies. Each pool face is measured once.
    Pool(Vec<Option<usize>>),
}

/// One batch of rows to render: input face `inputs[k]` at `targets[k]`.
pub struct RenderRequest<'a> {
    /// The inputs' images as a `(N, 3, S, S)` tensor in `[-1, 1]`.
    pub images: &'a Tensor,
    /// The input faces.
    pub faces: Vec<&'a EvalFace>,
    /// Index of each input in the gallery.
    pub ids: &'a [usize],
    /// The target groups.
    pub targets: &'a [AgeGroup],
}

/// A way of producing a face of a target group from an input face: the
/// generator under test or a baseline.
pub trait Method: Send + Sync {
    /// Name in tables and plots.
    fn name(&self) -> &str;
    /// Renders every row of `req`.
    fn render(&self, req: &RenderRequest) -> Result<Rendered>;
    /// The faces [`Rendered::Pool`] indexes; `None` (the default): the
    /// gallery's.
    fn pool(&self) -> Option<&[EvalFace]> {
        None
    }
}

/// An [`AgeGenerator`] as a [`Method`]: its outputs, clamped to `[-1, 1]`
/// and quantised to 8 bits as a saved image would be. By default a grey
/// input's output is made grey, as `agesynth age` does for a black-and-white
/// photo, so that what is measured is what a user is given.
pub struct GeneratorMethod<'a> {
    name: String,
    generator: &'a dyn AgeGenerator,
    keep_grey: bool,
}

impl<'a> GeneratorMethod<'a> {
    /// Wraps `generator` under `name`.
    pub fn new(name: impl Into<String>, generator: &'a dyn AgeGenerator) -> Self {
        GeneratorMethod {
            name: name.into(),
            generator,
            keep_grey: true,
        }
    }

    /// Whether a grey input's output is made grey ([`FaceImage::to_grey`]);
    /// `false` measures the generator's own colours.
    pub fn keep_grey(mut self, keep: bool) -> Self {
        self.keep_grey = keep;
        self
    }
}

impl Method for GeneratorMethod<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn render(&self, req: &RenderRequest) -> Result<Rendered> {
        let out = self.generator.generate(req.images, req.targets)?;
        // NaN or infinite outputs (damaged weights) are no picture to measure.
        agesynth_core::io::ensure_finite_output(&out, &format!("generator `{}`", self.name))?;
        let mut images = tensor_to_images(&out.clamp(-1f32, 1f32)?)?;
        if self.keep_grey {
            for (image, face) in images.iter_mut().zip(&req.faces) {
                if face.image.is_grey() {
                    *image = image.to_grey();
                }
            }
        }
        Ok(Rendered::Images(images))
    }
}

/// Baseline "copy input": the output is the input (perfect identity, no
/// ageing).
pub struct CopyInput;

impl Method for CopyInput {
    fn name(&self) -> &str {
        "copy input"
    }

    fn render(&self, _req: &RenderRequest) -> Result<Rendered> {
        Ok(Rendered::Inputs)
    }
}

/// Baseline "random real face of the target group": a seeded pick from a
/// pool of real faces among those whose real age is in the target group,
/// never the input photo itself nor (where subjects are known) the same
/// person (perfect age, no identity).
pub struct RandomReal {
    faces: Option<Vec<EvalFace>>,
    groups: Vec<AgeGroup>,
    subjects: Vec<Option<u32>>,
    keys: Vec<String>,
    seed: u64,
}

impl RandomReal {
    /// A baseline picking from its own `pool` (best kept apart from the
    /// faces the Fréchet distance compares with, so that its Fréchet
    /// distance is that of two real samples), with `seed`.
    pub fn new(pool: Vec<EvalFace>, bins: &AgeBins, seed: u64) -> Self {
        let mut r = Self::over_gallery(&pool, bins, seed);
        r.faces = Some(pool);
        r
    }

    /// A baseline picking from the evaluation's gallery itself (`gallery`
    /// must be [`EvalData::gallery`]), with `seed`.
    pub fn over_gallery(gallery: &[EvalFace], bins: &AgeBins, seed: u64) -> Self {
        let pool = gallery;
        RandomReal {
            faces: None,
            groups: pool
                .iter()
                .map(|f| bins.group_of_years(f.age.max(0.0) as u32))
                .collect(),
            subjects: pool.iter().map(|f| f.subject).collect(),
            keys: pool.iter().map(|f| f.key.clone()).collect(),
            seed,
        }
    }

    /// The pool face drawn for input `id` (gallery index) with labels
    /// `face` at `target`; the same for the same seed whatever the batching.
    pub fn pick(&self, id: usize, face: &EvalFace, target: AgeGroup) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.groups.len())
            .filter(|&j| {
                self.groups[j] == target
                    && self.keys[j] != face.key
                    && !(face.subject.is_some() && self.subjects[j] == face.subject)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let h = mix(mix(self.seed ^ 0x5241_4E44, id as u64), target.0 as u64);
        Some(candidates[(h % candidates.len() as u64) as usize])
    }
}

impl Method for RandomReal {
    fn name(&self) -> &str {
        "random real face"
    }

    fn render(&self, req: &RenderRequest) -> Result<Rendered> {
        Ok(Rendered::Pool(
            req.faces
                .iter()
                .zip(req.ids)
                .zip(req.targets)
                .map(|((f, &id), &t)| self.pick(id, f, t))
                .collect(),
        ))
    }

    fn pool(&self) -> Option<&[EvalFace]> {
        self.faces.as_deref()
    }
}

/// Reference "same person, real photo": the input person's own photo (never
/// the input photo itself) whose real age is in the target group, the one
/// nearest the group's centre; no row where the person has none (and none
/// at all where the data names no subjects). It is what a perfect ageing
/// would give: its identity columns are what real ageing costs by the same
/// judge (a generator cannot be expected to keep the person better than
/// time does), its age columns the judges' reading of real photos of the
/// person at that age. Picks from the evaluation's gallery.
pub struct SamePersonReal {
    picks: std::collections::HashMap<usize, Vec<Option<usize>>>,
}

impl SamePersonReal {
    /// The picks over `gallery` ([`EvalData::gallery`]) for every face that
    /// has a subject.
    pub fn new(gallery: &[EvalFace], bins: &AgeBins) -> Self {
        let mut picks = std::collections::HashMap::new();
        for (i, face) in gallery.iter().enumerate() {
            let Some(s) = face.subject else { continue };
            let row = bins
                .groups()
                .map(|t| {
                    let centre = bins.centre(t);
                    (0..gallery.len())
                        .filter(|&j| {
                            j != i
                                && gallery[j].subject == Some(s)
                                && gallery[j].key != face.key
                                && bins.group_of_years(gallery[j].age.max(0.0) as u32) == t
                        })
                        .min_by(|&a, &b| {
                            let da = (gallery[a].age - centre).abs();
                            let db = (gallery[b].age - centre).abs();
                            da.total_cmp(&db).then(a.cmp(&b))
                        })
                })
                .collect();
            picks.insert(i, row);
        }
        SamePersonReal { picks }
    }

    /// Whether any face has a photo of its person in some group: without
    /// subjects the reference has no rows and is best left out.
    pub fn has_rows(&self) -> bool {
        self.picks.values().flatten().any(Option::is_some)
    }

    /// The gallery photo picked for input `id` (gallery index) at `target`.
    pub fn pick(&self, id: usize, target: AgeGroup) -> Option<usize> {
        self.picks
            .get(&id)
            .and_then(|row| row.get(target.0).copied().flatten())
    }
}

impl Method for SamePersonReal {
    fn name(&self) -> &str {
        "same person, real photo"
    }

    fn render(&self, req: &RenderRequest) -> Result<Rendered> {
        Ok(Rendered::Pool(
            req.ids
                .iter()
                .zip(req.targets)
                .map(|(&id, &t)| self.pick(id, t))
                .collect(),
        ))
    }
}

/// SplitMix64-style mixing of a seed and a value.
fn mix(seed: u64, v: u64) -> u64 {
    let mut z = seed
        .wrapping_add(v.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Settings of [`evaluate`].
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Images per network batch (inputs per generator batch = this divided
    /// by the number of groups).
    pub batch: usize,
    /// Inputs shown in the sample sheet.
    pub sheet_rows: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch: 48,
            sheet_rows: 6,
        }
    }
}

/// Which part of a results table a row covers: one age group, or all of
/// them. It is written as the group's label or `"overall"` (in
/// `metrics.json` and the report), and read back the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RowGroup {
    /// One age group, by its label (`"30-39"`).
    Group(String),
    /// Every group together.
    Overall,
}

impl RowGroup {
    /// The label `"overall"` stands for [`RowGroup::Overall`].
    pub const OVERALL: &'static str = "overall";

    /// Whether this is the row over every group.
    pub fn is_overall(&self) -> bool {
        matches!(self, RowGroup::Overall)
    }

    /// The label: the group's, or `"overall"`.
    pub fn label(&self) -> &str {
        match self {
            RowGroup::Group(l) => l,
            RowGroup::Overall => Self::OVERALL,
        }
    }
}

impl From<String> for RowGroup {
    fn from(s: String) -> Self {
        if s == Self::OVERALL {
            RowGroup::Overall
        } else {
            RowGroup::Group(s)
        }
    }
}

impl From<&str> for RowGroup {
    fn from(s: &str) -> Self {
        RowGroup::from(s.to_string())
    }
}

impl From<RowGroup> for String {
    fn from(g: RowGroup) -> Self {
        g.label().to_string()
    }
}

impl std::fmt::Display for RowGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One row of the results table: a method at a target group (or overall).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The method.
    pub method: String,
    /// The target group, or all of them.
    pub group: RowGroup,
    /// Outputs measured.
    pub n: usize,
    /// Fraction of outputs in which MTCNN finds a face.
    pub detection_rate: Option<f64>,
    /// Mean L2 distance of the output's identity embedding to the input's.
    pub identity_l2: Option<f64>,
    /// Fraction of outputs within the embedder's threshold (0.6) of the input.
    pub verification_rate: Option<f64>,
    /// Mean L2 distance to the same person's real photo (other than the
    /// input) whose age is nearest the group's centre (FG-NET).
    pub nearest_real_l2: Option<f64>,
    /// Outputs with a nearest real photo.
    pub n_nearest_real: usize,
    /// Fraction of outputs whose estimated age group is the target.
    pub age_accuracy: Option<f64>,
    /// Mean absolute error of the estimated age to the group's centre.
    pub age_mae: Option<f64>,
    /// The same age-group accuracy by the second age judge (face-api's
    /// age-gender network); `None` without one.
    #[serde(default)]
    pub judge_age_accuracy: Option<f64>,
    /// The same age MAE by the second age judge; `None` without one.
    #[serde(default)]
    pub judge_age_mae: Option<f64>,
    /// The share of outputs whose gender, as the second judge reads it
    /// (female probability above or below 0.5), is the input's, over the
    /// inputs aged [`GENDER_KEPT_FROM_AGE`] or more (a child's gender reads
    /// close to a coin toss at 64 px): a generator that paints a moustache
    /// on a woman loses it; `None` without a judge or such an input.
    #[serde(default)]
    pub gender_kept: Option<f64>,
    /// The same share as [`Row::gender_kept`] as a training gender critic
    /// (the generator's teacher, never a judge) reads it; `None` without
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_gender_kept: Option<f64>,
    /// The share of outputs in which a training critic (the generator's
    /// teacher, never a judge) reads the target group; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_age_accuracy: Option<f64>,
    /// Identity-feature Fréchet distance (not Inception FID) between the
    /// outputs and the real faces of the group.
    pub frechet: Option<f64>,
    /// Real faces the Fréchet distance compares with.
    pub n_real: usize,
}

/// The youngest input age (years) whose outputs count in
/// [`Row::gender_kept`]: from 20 up the judges read gender reliably at
/// 64 px; below, the input's own reading is close to a coin toss.
pub const GENDER_KEPT_FROM_AGE: f32 = 20.0;

/// The result of [`evaluate`].
#[derive(Clone, Debug)]
pub struct EvalResult {
    /// The methods' names, in order.
    pub methods: Vec<String>,
    /// The age groups' labels.
    pub groups: Vec<String>,
    /// Per method: a row per target group, then [`RowGroup::Overall`].
    pub rows: Vec<Row>,
    /// Per method that renders images (the generators; not the baselines),
    /// in method order: its name and a sheet showing, for the first inputs,
    /// the input and then its output at every group.
    pub sheets: Vec<(String, FaceImage)>,
    /// Inputs evaluated.
    pub n_inputs: usize,
    /// Faces in the gallery.
    pub n_gallery: usize,
    /// Faces in the reference pool, per group.
    pub reference_per_group: Vec<usize>,
    /// The second age judge's name (`"face-api"`), `None` without one.
    pub judge: Option<String>,
    /// Time spent per network.
    pub timings: Timings,
    /// Real photos of one person across groups, by the identity judge
    /// (empty where the data names no people).
    pub same_person_pairs: Vec<SamePersonPair>,
}

/// What real ageing does to the identity judge: the dlib distance between
/// two real photos of one person, one in group `from` and one in `to`,
/// over every such pair of photos in the gallery (FG-NET names its people;
/// UTKFace does not, and has none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamePersonPair {
    /// The younger photo's group label.
    pub from: String,
    /// The older photo's group label (equal to `from` for two photos of one
    /// group).
    pub to: String,
    /// People with a photo in both groups.
    pub people: usize,
    /// Pairs of photos measured.
    pub pairs: usize,
    /// Mean L2 distance between the two photos' embeddings.
    pub mean_l2: f64,
    /// Share of the pairs the judge verifies as one person (below the
    /// threshold).
    pub verified: f64,
}

/// [`SamePersonPair`]s of `faces` (with their `embeddings`, in order) for
/// every pair of groups `from <= to` that has at least one pair of photos
/// of one person; `threshold` is the verification threshold. Faces without
/// a subject are left out.
pub fn same_person_pairs(
    faces: &[EvalFace],
    embeddings: &[Vec<f32>],
    bins: &AgeBins,
    threshold: f64,
) -> Vec<SamePersonPair> {
    let g = bins.len();
    // Per group pair: distances, and the people seen.
    let mut dist: Vec<Vec<f64>> = vec![Vec::new(); g * g];
    let mut people: Vec<std::collections::BTreeSet<u32>> = vec![Default::default(); g * g];
    let group = |f: &EvalFace| bins.group_of_years(f.age.max(0.0) as u32).0;
    for i in 0..faces.len().min(embeddings.len()) {
        let Some(s) = faces[i].subject else { continue };
        for j in i + 1..faces.len().min(embeddings.len()) {
            if faces[j].subject != Some(s) {
                continue;
            }
            let (a, b) = {
                let (a, b) = (group(&faces[i]), group(&faces[j]));
                (a.min(b), a.max(b))
            };
            dist[a * g + b].push(metrics::l2(&embeddings[i], &embeddings[j]));
            people[a * g + b].insert(s);
        }
    }
    let mut out = Vec::new();
    for a in 0..g {
        for b in a..g {
            let d = &dist[a * g + b];
            let (Some(mean_l2), Some(verified)) = (
                metrics::mean(d.iter().copied()),
                metrics::verification_rate(d, threshold),
            ) else {
                continue;
            };
            out.push(SamePersonPair {
                from: bins.label(AgeGroup(a)),
                to: bins.label(AgeGroup(b)),
                people: people[a * g + b].len(),
                pairs: d.len(),
                mean_l2,
                verified,
            });
        }
    }
    out
}

/// Where the features of an output row are.
enum Source {
    /// Row `k` of the batch's fresh features.
    Fresh(usize),
    /// Gallery face `i` (cached).
    Gallery(usize),
    /// Pool face `j` (cached).
    Pool(usize),
}

/// The female probabilities read in an input that counts for gender kept
/// (`None` where not read, or where the input does not count).
#[derive(Clone, Copy, Default)]
struct InputGender {
    /// By the second judge.
    judge: Option<f32>,
    /// By the training gender critic.
    teacher: Option<f32>,
}

#[derive(Default)]
struct Acc {
    detected: Vec<bool>,
    dist: Vec<f64>,
    nearest: Vec<f64>,
    ages: Vec<f32>,
    judge_ages: Vec<f32>,
    teacher_ages: Vec<f32>,
    gender_same: Vec<bool>,
    teacher_gender_same: Vec<bool>,
    embs: Vec<Vec<f32>>,
}

impl Acc {
    /// Row `k` of `f`, the output for an input with identity embedding
    /// `input` and, where the judge and the gender teacher read it (an
    /// input that counts for gender kept), their female probabilities
    /// `input_female`.
    fn push(
        &mut self,
        f: &Features,
        k: usize,
        input: &[f32],
        input_female: InputGender,
        nearest: Option<&[f32]>,
    ) {
        self.detected.push(f.detected[k]);
        self.dist.push(metrics::l2(&f.embeddings[k], input));
        if let Some(n) = nearest {
            self.nearest.push(metrics::l2(&f.embeddings[k], n));
        }
        self.ages.push(f.ages[k]);
        if f.has_judge() {
            self.judge_ages.push(f.judge_ages[k]);
            if let (Some(&out), Some(inp)) = (f.female.get(k), input_female.judge) {
                self.gender_same.push((out > 0.5) == (inp > 0.5));
            }
        }
        if let (Some(&out), Some(inp)) = (f.teacher_female.get(k), input_female.teacher) {
            self.teacher_gender_same.push((out > 0.5) == (inp > 0.5));
        }
        if f.has_teacher() {
            self.teacher_ages.push(f.teacher_ages[k]);
        }
        self.embs.push(f.embeddings[k].clone());
    }
}

/// Over rows that each have their own target group: the share of `ages`
/// in their row's group and the mean absolute error to its centre (`None`
/// when there is no age).
fn overall_age(bins: &AgeBins, per_group: &[(AgeGroup, &[f32])]) -> Option<(f64, f64)> {
    let n: usize = per_group.iter().map(|(_, a)| a.len()).sum();
    if n == 0 {
        return None;
    }
    let (mut hits, mut abs_err) = (0usize, 0f64);
    for &(t, ages) in per_group {
        hits += ages
            .iter()
            .filter(|&&a| bins.group(a).map(|x| x == t).unwrap_or(false))
            .count();
        abs_err += ages
            .iter()
            .map(|&a| (a as f64 - bins.centre(t) as f64).abs())
            .sum::<f64>();
    }
    Some((hits as f64 / n as f64, abs_err / n as f64))
}

fn make_row(
    method: &str,
    group: RowGroup,
    acc: &Acc,
    target: Option<AgeGroup>,
    bins: &AgeBins,
    threshold: f64,
    real: &[Vec<f32>],
) -> Result<Row> {
    let (age_accuracy, age_mae) = match target {
        Some(t) => metrics::age_accuracy_and_mae(bins, &acc.ages, t).unzip(),
        None => (None, None),
    };
    let (judge_age_accuracy, judge_age_mae) = match target {
        Some(t) => metrics::age_accuracy_and_mae(bins, &acc.judge_ages, t).unzip(),
        None => (None, None),
    };
    let teacher_age_accuracy = match target {
        Some(t) => metrics::age_accuracy_and_mae(bins, &acc.teacher_ages, t).map(|(a, _)| a),
        None => None,
    };
    Ok(Row {
        method: method.to_string(),
        group,
        n: acc.ages.len(),
        detection_rate: metrics::detection_rate(&acc.detected),
        identity_l2: metrics::mean(acc.dist.iter().copied()),
        verification_rate: metrics::verification_rate(&acc.dist, threshold),
        nearest_real_l2: metrics::mean(acc.nearest.iter().copied()),
        n_nearest_real: acc.nearest.len(),
        age_accuracy,
        age_mae,
        judge_age_accuracy,
        judge_age_mae,
        gender_kept: metrics::share(&acc.gender_same),
        teacher_gender_kept: metrics::share(&acc.teacher_gender_same),
        teacher_age_accuracy,
        frechet: metrics::frechet_distance(&acc.embs, real)?,
        n_real: real.len(),
    })
}

/// Renders every input of `data` at every group of `bins` with each method
/// and measures the outputs. `reference` holds the real faces the Fréchet
/// distance compares with (`None`: the gallery itself).
pub fn evaluate(
    data: &EvalData,
    reference: Option<&[EvalFace]>,
    methods: &[&dyn Method],
    analyzer: &Analyzer,
    bins: &AgeBins,
    opts: &EvalOptions,
) -> Result<EvalResult> {
    evaluate_with_progress(
        data,
        reference,
        methods,
        analyzer,
        bins,
        opts,
        &mut |_, _| {},
    )
}

/// [`evaluate`], calling `progress(done, total)` after each batch of
/// rows, where `total` counts every (method, input) pair plus the real faces
/// measured first.
pub fn evaluate_with_progress(
    data: &EvalData,
    reference: Option<&[EvalFace]>,
    methods: &[&dyn Method],
    analyzer: &Analyzer,
    bins: &AgeBins,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalResult> {
    let n_real = data.gallery.len()
        + reference.map_or(0, <[EvalFace]>::len)
        + methods
            .iter()
            .map(|m| m.pool().map_or(0, <[EvalFace]>::len))
            .sum::<usize>();
    let total = n_real + methods.len() * data.inputs.len();
    let mut done = 0;
    progress(done, total);
    let g = bins.len();
    let gallery_images: Vec<FaceImage> = data.gallery.iter().map(|f| f.image.clone()).collect();
    let gallery = analyzer.analyze(&gallery_images)?;
    let pool_faces = reference.unwrap_or(&data.gallery);
    let pool = match reference {
        Some(r) => {
            let imgs: Vec<FaceImage> = r.iter().map(|f| f.image.clone()).collect();
            analyzer.analyze(&imgs)?
        }
        None => gallery.clone(),
    };
    let mut pools = Vec::with_capacity(methods.len());
    for m in methods {
        pools.push(match m.pool() {
            Some(p) => {
                let imgs: Vec<FaceImage> = p.iter().map(|f| f.image.clone()).collect();
                Some(analyzer.analyze(&imgs)?)
            }
            None => None,
        });
    }
    done += n_real;
    progress(done, total);
    // Real faces of each group, for the Fréchet distances.
    let mut real: Vec<Vec<Vec<f32>>> = vec![Vec::new(); g];
    for (f, e) in pool_faces.iter().zip(&pool.embeddings) {
        real[bins.group_of_years(f.age.max(0.0) as u32).0].push(e.clone());
    }
    let real_all: Vec<Vec<f32>> = real.iter().flatten().cloned().collect();
    // Nearest real photo of the same person, per input and group.
    let nearest: Vec<Vec<Option<usize>>> = data
        .inputs
        .iter()
        .map(|&i| {
            let face = &data.gallery[i];
            let others: Vec<usize> = match face.subject {
                Some(s) => (0..data.gallery.len())
                    .filter(|&j| j != i && data.gallery[j].subject == Some(s))
                    .collect(),
                None => Vec::new(),
            };
            let ages: Vec<f32> = others.iter().map(|&j| data.gallery[j].age).collect();
            bins.groups()
                .map(|t| metrics::nearest_age(&ages, bins.centre(t)).map(|k| others[k]))
                .collect()
        })
        .collect();

    let per_batch = (opts.batch / g).max(1);
    let mut rows = Vec::new();
    let mut sheet_tiles: Vec<(String, Vec<FaceImage>)> = Vec::new();
    for (method, method_pool) in methods.iter().zip(&pools) {
        let method_pool = method_pool.as_ref().unwrap_or(&gallery);
        let mut accs: Vec<Acc> = (0..g).map(|_| Acc::default()).collect();
        let mut tiles: Vec<FaceImage> = Vec::new();
        let mut produced_images = false;
        for (c, chunk) in data.inputs.chunks(per_batch).enumerate() {
            let ids: Vec<usize> = chunk
                .iter()
                .flat_map(|&i| std::iter::repeat_n(i, g))
                .collect();
            let targets: Vec<AgeGroup> = chunk.iter().flat_map(|_| bins.groups()).collect();
            let faces: Vec<&EvalFace> = ids.iter().map(|&i| &data.gallery[i]).collect();
            let imgs: Vec<FaceImage> = faces.iter().map(|f| f.image.clone()).collect();
            let x = images_to_tensor(&imgs, analyzer.device())?;
            let req = RenderRequest {
                images: &x,
                faces,
                ids: &ids,
                targets: &targets,
            };
            let t = Instant::now();
            let rendered = method.render(&req)?;
            let spent = t.elapsed();
            let (feats, row_map): (Features, Vec<Option<Source>>) = match rendered {
                Rendered::Images(out) => {
                    analyzer.add_time(|t| &mut t.generate_s, spent);
                    produced_images = true;
                    for (k, &i) in chunk.iter().enumerate() {
                        if (c * per_batch + k) < opts.sheet_rows {
                            tiles.push(data.gallery[i].image.clone());
                            tiles.extend(out[k * g..(k + 1) * g].iter().cloned());
                        }
                    }
                    let f = analyzer.analyze(&out)?;
                    (f, (0..ids.len()).map(|k| Some(Source::Fresh(k))).collect())
                }
                Rendered::Inputs => (
                    Features::default(),
                    ids.iter().map(|&i| Some(Source::Gallery(i))).collect(),
                ),
                Rendered::Pool(p) => (
                    Features::default(),
                    p.into_iter().map(|o| o.map(Source::Pool)).collect(),
                ),
            };
            for (k, m) in row_map.into_iter().enumerate() {
                let (src, at) = match m {
                    None => continue,
                    Some(Source::Fresh(k)) => (&feats, k),
                    Some(Source::Gallery(i)) => (&gallery, i),
                    Some(Source::Pool(j)) if j < method_pool.len() => (method_pool, j),
                    Some(Source::Pool(j)) => {
                        return Err(agesynth_core::Error::InvalidInput(format!(
                            "{} picked face {j} of a pool of {}",
                            method.name(),
                            method_pool.len()
                        )))
                    }
                };
                let input = ids[k];
                let t = targets[k];
                let pos = data.inputs.binary_search(&input).unwrap_or(0);
                let near = nearest.get(pos).and_then(|n| n[t.0]);
                accs[t.0].push(
                    src,
                    at,
                    &gallery.embeddings[input],
                    if data.gallery[input].age >= GENDER_KEPT_FROM_AGE {
                        InputGender {
                            judge: gallery.female.get(input).copied(),
                            teacher: gallery.teacher_female.get(input).copied(),
                        }
                    } else {
                        InputGender::default()
                    },
                    near.map(|j| gallery.embeddings[j].as_slice()),
                );
            }
            done += chunk.len();
            progress(done, total);
        }
        if produced_images && !tiles.is_empty() {
            sheet_tiles.push((method.name().to_string(), tiles));
        }
        let threshold = analyzer.threshold() as f64;
        let mut all = Acc::default();
        for (t, acc) in bins.groups().zip(&accs) {
            rows.push(make_row(
                method.name(),
                RowGroup::Group(bins.label(t)),
                acc,
                Some(t),
                bins,
                threshold,
                &real[t.0],
            )?);
        }
        // Overall: every row; the age accuracy counts hits of each row's own
        // target, the MAE each row's own centre.
        let by_group = |get: fn(&Acc) -> &[f32]| -> Option<(f64, f64)> {
            let per: Vec<(AgeGroup, &[f32])> =
                bins.groups().zip(&accs).map(|(t, a)| (t, get(a))).collect();
            overall_age(bins, &per)
        };
        let dlib_overall = by_group(|a| &a.ages);
        let judge_overall = by_group(|a| &a.judge_ages);
        let teacher_overall = by_group(|a| &a.teacher_ages);
        for acc in accs {
            all.detected.extend(acc.detected);
            all.dist.extend(acc.dist);
            all.nearest.extend(acc.nearest);
            all.ages.extend(acc.ages);
            all.judge_ages.extend(acc.judge_ages);
            all.teacher_ages.extend(acc.teacher_ages);
            all.gender_same.extend(acc.gender_same);
            all.teacher_gender_same.extend(acc.teacher_gender_same);
            all.embs.extend(acc.embs);
        }
        let mut overall = make_row(
            method.name(),
            RowGroup::Overall,
            &all,
            None,
            bins,
            threshold,
            &real_all,
        )?;
        (overall.age_accuracy, overall.age_mae) = dlib_overall.unzip();
        (overall.judge_age_accuracy, overall.judge_age_mae) = judge_overall.unzip();
        overall.teacher_age_accuracy = teacher_overall.map(|(a, _)| a);
        rows.push(overall);
    }
    let mut labels = vec![String::new()];
    labels.extend(bins.groups().map(|t| bins.label(t)));
    let sheets = sheet_tiles
        .into_iter()
        .map(|(name, tiles)| {
            Ok((
                name,
                agesynth_data::draw::grid(&tiles, g + 1, Some(&labels))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EvalResult {
        methods: methods.iter().map(|m| m.name().to_string()).collect(),
        groups: bins.groups().map(|t| bins.label(t)).collect(),
        rows,
        sheets,
        n_inputs: data.inputs.len(),
        n_gallery: data.gallery.len(),
        reference_per_group: real.iter().map(Vec::len).collect(),
        judge: analyzer.judge_name().map(str::to_string),
        timings: analyzer.timings(),
        same_person_pairs: same_person_pairs(
            &data.gallery,
            &gallery.embeddings,
            bins,
            analyzer.threshold() as f64,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_groups_are_written_as_their_labels() {
        assert_eq!(
            serde_json::to_string(&RowGroup::Overall).unwrap(),
            "\"overall\""
        );
        let g = RowGroup::Group("30-39".into());
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"30-39\"");
        let back: RowGroup = serde_json::from_str("\"overall\"").unwrap();
        assert!(back.is_overall());
        let back: RowGroup = serde_json::from_str("\"50+\"").unwrap();
        assert_eq!(back, RowGroup::Group("50+".into()));
        assert_eq!(back.to_string(), "50+");
    }

    /// Paints every output one colour, whatever the input.
    struct Painter(AgeBins);

    impl AgeGenerator for Painter {
        fn generate(&self, input: &Tensor, _targets: &[AgeGroup]) -> Result<Tensor> {
            let (n, _, h, w) = input.dims4()?;
            // R = 0.5, G = -0.25, B = -1 in [-1, 1].
            let rgb = Tensor::new(&[0.5f32, -0.25, -1.0], input.device())?;
            Ok(rgb
                .reshape((1, 3, 1, 1))?
                .broadcast_as((n, 3, h, w))?
                .contiguous()?)
        }
        fn age_bins(&self) -> &AgeBins {
            &self.0
        }
        fn image_size(&self) -> usize {
            2
        }
    }

    #[test]
    fn a_grey_input_gets_a_grey_output_unless_colour_is_asked_for() {
        let grey = FaceImage::new(2, 2, vec![90; 12]).unwrap();
        let colour = FaceImage::new(2, 2, [200u8, 90, 40].repeat(4)).unwrap();
        let faces: Vec<EvalFace> = [grey, colour]
            .into_iter()
            .enumerate()
            .map(|(i, image)| EvalFace {
                image,
                age: 30.0,
                subject: None,
                key: format!("{i}"),
            })
            .collect();
        let images = images_to_tensor(
            &faces.iter().map(|f| f.image.clone()).collect::<Vec<_>>(),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let painter = Painter(AgeBins::default());
        let targets = [AgeGroup(5), AgeGroup(5)];
        let req = RenderRequest {
            images: &images,
            faces: faces.iter().collect(),
            ids: &[0, 1],
            targets: &targets,
        };
        let render = |m: GeneratorMethod| match m.render(&req).unwrap() {
            Rendered::Images(v) => v,
            other => panic!("expected images, got {other:?}"),
        };
        let kept = render(GeneratorMethod::new("painter", &painter));
        // The grey input's output is the paint's luma, the colour input's the paint.
        let paint = [191u8, 96, 0];
        // Rec. 601 in integers; blue is 0.
        let luma = ((299 * 191 + 587 * 96 + 500) / 1000) as u8;
        assert!(kept[0].is_grey());
        assert_eq!(&kept[0].pixels()[..3], &[luma; 3]);
        assert_eq!(&kept[1].pixels()[..3], &paint);
        let own = render(GeneratorMethod::new("painter", &painter).keep_grey(false));
        assert!(!own[0].is_grey());
        assert_eq!(&own[0].pixels()[..3], &paint);
    }

    fn face(age: f32, subject: Option<u32>, key: &str) -> EvalFace {
        EvalFace {
            image: FaceImage::new(1, 1, vec![0, 0, 0]).unwrap(),
            age,
            subject,
            key: key.into(),
        }
    }

    #[test]
    fn same_person_pairs_measure_one_persons_photos_across_groups() {
        let bins = AgeBins::default();
        let faces = vec![
            face(5.0, Some(1), "1a05"),
            face(25.0, Some(1), "1a25"),
            face(27.0, Some(1), "1a27"),
            face(24.0, Some(2), "2a24"),
            face(60.0, None, "anon"),
        ];
        // One-D "embeddings" along x: distances are differences.
        let e = |x: f32| vec![x, 0.0];
        let emb = vec![e(0.0), e(0.7), e(0.2), e(0.0), e(0.0)];
        let pairs = same_person_pairs(&faces, &emb, &bins, 0.6);
        // Subject 1: 0-9 x 20-29 (0.7 and 0.2), 20-29 x 20-29 (0.5);
        // subject 2 has one photo, the anonymous face none.
        assert_eq!(pairs.len(), 2);
        let young = &pairs[0];
        assert_eq!((young.from.as_str(), young.to.as_str()), ("0-9", "20-29"));
        assert_eq!((young.people, young.pairs), (1, 2));
        assert!((young.mean_l2 - 0.45).abs() < 1e-6);
        assert!((young.verified - 0.5).abs() < 1e-9);
        let same = &pairs[1];
        assert_eq!((same.from.as_str(), same.to.as_str()), ("20-29", "20-29"));
        assert!((same.mean_l2 - 0.5).abs() < 1e-6 && same.verified == 1.0);
        assert!(same_person_pairs(&faces[4..], &emb[4..], &bins, 0.6).is_empty());
    }

    #[test]
    fn same_person_picks_the_persons_own_photo_nearest_the_group_centre() {
        let bins = AgeBins::default();
        // Subject 1 at 4, 22, 28, 61 and a second photo at 28; subject 2 at 25.
        let gallery = vec![
            face(4.0, Some(1), "1a04"),
            face(22.0, Some(1), "1a22"),
            face(28.0, Some(1), "1a28"),
            face(28.0, Some(1), "1a28b"),
            face(61.0, Some(1), "1a61"),
            face(25.0, Some(2), "2a25"),
        ];
        let r = SamePersonReal::new(&gallery, &bins);
        assert!(r.has_rows());
        let centre = bins.centre(AgeGroup(2));
        // From the photo at 4: the 20-29 pick is the one nearest the centre.
        let want = if (22.0 - centre).abs() <= (28.0 - centre).abs() {
            1
        } else {
            2
        };
        assert_eq!(r.pick(0, AgeGroup(2)), Some(want));
        assert_eq!(r.pick(0, AgeGroup(5)), Some(4));
        // Never the input photo itself, never another person.
        assert_eq!(r.pick(0, AgeGroup(0)), None);
        assert_eq!(r.pick(4, AgeGroup(0)), Some(0));
        assert_eq!(r.pick(4, AgeGroup(5)), None);
        assert_eq!(r.pick(5, AgeGroup(2)), None);
        assert_eq!(r.pick(2, AgeGroup(2)), Some(if want == 2 { 3 } else { 1 }));
        // Without subjects there is nothing to pick.
        let anon = vec![face(4.0, None, "a"), face(25.0, None, "b")];
        assert!(!SamePersonReal::new(&anon, &bins).has_rows());
    }

    #[test]
    fn random_real_picks_the_target_group_never_the_same_person() {
        let bins = AgeBins::default();
        // Pool: two faces of 20-29 (subjects 1 and 2), one of 0-9 (subject 2).
        let pool = vec![
            face(25.0, Some(1), "a"),
            face(22.0, Some(2), "b"),
            face(5.0, Some(2), "c"),
        ];
        let r = RandomReal::new(pool, &bins, 9);
        assert_eq!(r.pool().map(<[EvalFace]>::len), Some(3));
        let input = face(40.0, Some(1), "x");
        for id in 0..20 {
            // 20-29 without subject 1 leaves face 1 only; 0-9 face 2; 50+ none.
            assert_eq!(r.pick(id, &input, AgeGroup(2)), Some(1));
            assert_eq!(r.pick(id, &input, AgeGroup(0)), Some(2));
            assert_eq!(r.pick(id, &input, AgeGroup(5)), None);
        }
        // Without subjects only the photo itself is excluded; the picks are a
        // function of (seed, input, group).
        let anon = face(40.0, None, "a");
        assert_eq!(r.pick(3, &anon, AgeGroup(2)), Some(1));
        let other = face(40.0, None, "z");
        let picks: Vec<_> = (0..32).map(|id| r.pick(id, &other, AgeGroup(2))).collect();
        assert!(picks.contains(&Some(0)) && picks.contains(&Some(1)));
        let again: Vec<_> = (0..32).map(|id| r.pick(id, &other, AgeGroup(2))).collect();
        assert_eq!(picks, again);
    }
}
