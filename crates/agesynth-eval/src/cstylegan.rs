//! Measuring a cStyleGAN: for every age group, faces generated at that
//! group — does the age estimator (and the second age judge, face-api's
//! age-gender network) put them in it, does MTCNN find a face, and how far
//! are they, in identity-feature Fréchet distance, from real faces of the
//! group. The same latents are rendered at every group, so the second
//! judge's genders also say whether a latent keeps its gender across ages.

use std::{fmt::Write as _, path::Path, time::Instant};

use agesynth_core::{
    batch::tensor_to_images, io, AgeBins, AgeGroup, Error, FaceImage, Gender, Result,
};
use agesynth_cstylegan::{seeded_latents, GenerateOptions, Generator, Noise};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{
    evaluate::{same_person_pairs, EvalData, EvalFace, SamePersonPair},
    features::{Analyzer, Timings},
    metrics, plot,
    report::{same_person_table, FRECHET_LABEL},
};

/// Settings of [`evaluate_cstylegan`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CStyleGanEvalOptions {
    /// Faces generated per age group (the same latents at every group).
    pub count: usize,
    /// Truncation ψ (1: none).
    pub truncation: f64,
    /// Seed of the latents and noise.
    pub seed: u64,
    /// Latents per generator batch.
    pub batch: usize,
    /// Latents shown in the sample sheet.
    pub sheet_rows: usize,
    /// Synthesis layers that read the latent's age-free `w`
    /// ([`agesynth_cstylegan::GenerateOptions::age_free_layers`]; 0: the
    /// model's own, none unless its config names some).
    #[serde(default)]
    pub age_free_layers: usize,
}

impl Default for CStyleGanEvalOptions {
    fn default() -> Self {
        CStyleGanEvalOptions {
            count: 200,
            truncation: 1.0,
            seed: 0,
            batch: 32,
            sheet_rows: 8,
            age_free_layers: 0,
        }
    }
}

/// One row: an age group (or `"overall"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CStyleGanRow {
    /// The conditioned group, or all of them.
    pub group: crate::RowGroup,
    /// Faces generated.
    pub n: usize,
    /// Fraction whose estimated age group is the conditioned one.
    pub age_accuracy: Option<f64>,
    /// Mean absolute error of the estimated age to the group's centre.
    pub age_mae: Option<f64>,
    /// The same age-group accuracy by the second age judge (face-api);
    /// `None` without one.
    #[serde(default)]
    pub judge_age_accuracy: Option<f64>,
    /// The same MAE by the second age judge; `None` without one.
    #[serde(default)]
    pub judge_age_mae: Option<f64>,
    /// Fraction the second judge reads as female; `None` without one.
    #[serde(default)]
    pub female_share: Option<f64>,
    /// Fraction in which MTCNN finds a face.
    pub detection_rate: Option<f64>,
    /// Identity-feature Fréchet distance (not Inception FID) to the real
    /// faces of the group.
    pub frechet: Option<f64>,
    /// Real faces compared with.
    pub n_real: usize,
    /// The same age-group accuracy on those real faces (their own group):
    /// what the age estimator reaches on real photos, the ceiling.
    pub real_age_accuracy: Option<f64>,
    /// Detection rate on those real faces.
    pub real_detection_rate: Option<f64>,
    /// The second judge's age-group accuracy on those real faces.
    #[serde(default)]
    pub real_judge_age_accuracy: Option<f64>,
}

/// Does a latent keep its gender across age groups? Measured by the second
/// judge over the groups from 10–19 up (its gender is unreliable on young
/// children).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenderAgreement {
    /// The groups compared (lower bound ≥ 10 years).
    pub groups: Vec<String>,
    /// Latents (identities) compared.
    pub identities: usize,
    /// Identities read as the same gender at every one of those groups.
    pub consistent: usize,
    /// For a gender-conditioned model: identities read as the gender they
    /// were asked for at every one of those groups (`None` for a model
    /// without a gender condition).
    #[serde(default)]
    pub as_asked: Option<usize>,
}

impl GenderAgreement {
    /// Share of identities read as one gender at every compared group.
    pub fn share(&self) -> f64 {
        self.consistent as f64 / self.identities.max(1) as f64
    }

    /// Share of identities read as their asked gender at every compared
    /// group (a gender-conditioned model).
    pub fn as_asked_share(&self) -> Option<f64> {
        self.as_asked
            .map(|k| k as f64 / self.identities.max(1) as f64)
    }

    /// Counts, among the compared identities, those read as their asked
    /// gender (`asked[latent]`) at every compared group, into
    /// [`Self::as_asked`]. `female[group][latent]` as for
    /// [`gender_agreement`].
    pub fn with_asked(mut self, bins: &AgeBins, female: &[Vec<f32>], asked: &[Gender]) -> Self {
        let groups = compared_groups(bins, female.len());
        let n = self.identities.min(asked.len());
        self.as_asked = Some(
            (0..n)
                .filter(|&k| {
                    let want = asked[k] == Gender::Female;
                    groups.iter().all(|t| (female[t.0][k] >= 0.5) == want)
                })
                .count(),
        );
        self
    }
}

/// Does the estimated age of a latent's renders follow the conditioned
/// group? The mean estimated age per group beside that of real faces of the
/// group, and how many latents' estimated ages rise from every group to the
/// next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgeSpread {
    /// One row per group, youngest first.
    pub groups: Vec<AgeSpreadRow>,
    /// Latents compared (rendered at every group).
    pub identities: usize,
    /// Latents whose age by the estimator (dlib) rises strictly from each
    /// group to the next, over all groups.
    pub rising: usize,
    /// The same by the second judge (face-api); `None` without one.
    pub judge_rising: Option<usize>,
}

impl AgeSpread {
    /// Share of latents whose estimated age (dlib) rises across all groups.
    pub fn rising_share(&self) -> f64 {
        self.rising as f64 / self.identities.max(1) as f64
    }

    /// The same share by the second judge.
    pub fn judge_rising_share(&self) -> Option<f64> {
        self.judge_rising
            .map(|k| k as f64 / self.identities.max(1) as f64)
    }
}

/// A group of [`AgeSpread`]: mean estimated ages in years.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgeSpreadRow {
    /// The conditioned group.
    pub group: String,
    /// Mean age of the renders by the estimator (dlib).
    pub mean_age: Option<f64>,
    /// Mean age of the renders by the second judge.
    pub judge_mean_age: Option<f64>,
    /// Mean age of real faces of the group by the estimator.
    pub real_mean_age: Option<f64>,
    /// Mean age of real faces of the group by the second judge.
    pub real_judge_mean_age: Option<f64>,
}

/// The latents (columns of `ages[group][latent]`, the same latents at every
/// group) whose value rises strictly from each group to the next, and how
/// many latents were compared (those present at every group). A single
/// group compares nothing: `(0, 0)`.
pub fn rising_across_groups(ages: &[Vec<f32>]) -> (usize, usize) {
    if ages.len() < 2 {
        return (0, 0);
    }
    let n = ages.iter().map(Vec::len).min().unwrap_or(0);
    let rising = (0..n)
        .filter(|&k| ages.windows(2).all(|w| w[1][k] > w[0][k]))
        .count();
    (rising, n)
}

/// [`AgeSpread`] of the renders' ages `ages[group][latent]` (and the second
/// judge's, where run) beside real faces' ages per group; `None` with fewer
/// than two groups or no latent.
pub fn age_spread(
    bins: &AgeBins,
    ages: &[Vec<f32>],
    judge_ages: Option<&[Vec<f32>]>,
    real_ages: &[Vec<f32>],
    real_judge_ages: &[Vec<f32>],
) -> Option<AgeSpread> {
    let (rising, identities) = rising_across_groups(ages);
    if identities == 0 {
        return None;
    }
    let mean = |v: Option<&Vec<f32>>| {
        v.filter(|v| !v.is_empty())
            .map(|v| v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64)
    };
    let groups = (0..ages.len())
        .map(|t| AgeSpreadRow {
            group: bins.label(AgeGroup(t)),
            mean_age: mean(ages.get(t)),
            judge_mean_age: judge_ages.and_then(|j| mean(j.get(t))),
            real_mean_age: mean(real_ages.get(t)),
            real_judge_mean_age: mean(real_judge_ages.get(t)),
        })
        .collect();
    Some(AgeSpread {
        groups,
        identities,
        rising,
        judge_rising: judge_ages.map(|j| rising_across_groups(j).0),
    })
}

/// The result of [`evaluate_cstylegan`].
#[derive(Clone, Debug)]
pub struct CStyleGanResult {
    /// A row per group, then `"overall"`.
    pub rows: Vec<CStyleGanRow>,
    /// The second age judge's name (`"face-api"`), `None` without one.
    pub judge: Option<String>,
    /// Gender agreement across groups (with a second judge and at least
    /// two groups from 10–19 up).
    pub gender_agreement: Option<GenderAgreement>,
    /// Mean estimated age per group and how many latents' ages rise across
    /// the groups.
    pub age_spread: Option<AgeSpread>,
    /// Does a latent stay one person across groups (dlib distances between
    /// its renders)?
    pub consistency: Option<Consistency>,
    /// The same measures on the latents a pair filter keeps (with a filter).
    pub kept: Option<KeptSubset>,
    /// The first latents at every group.
    pub sheet: FaceImage,
    /// The contact sheet: the sheet's latents × groups at 160 px, each
    /// render under what the judges read (`F 31 d27`: face-api's gender and
    /// age, dlib's age; `? 31` where face-api's net is absent).
    pub contact: FaceImage,
    /// Time spent per network.
    pub timings: Timings,
    /// Real people's photos across groups by the same judge, the scale the
    /// same-latent distances are read on (empty unless measured:
    /// [`real_people_pairs`]).
    pub real_people: Vec<SamePersonPair>,
    /// Real people identified across groups by the renders' protocol
    /// (with `--fgnet`; see [`real_people_identification`]).
    pub real_identification: Option<RealIdentification>,
}

/// What real ageing does to the identity judge, for comparison with a
/// latent's renders: [`same_person_pairs`] over every photo of `data` (a
/// data set that names its people, as FG-NET does), embedded by
/// `analyzer`'s recognition network.
pub fn real_people_pairs(
    data: &EvalData,
    analyzer: &Analyzer,
    bins: &AgeBins,
) -> Result<Vec<SamePersonPair>> {
    let images: Vec<FaceImage> = data.gallery.iter().map(|f| f.image.clone()).collect();
    let features = analyzer.analyze(&images)?;
    Ok(same_person_pairs(
        &data.gallery,
        &features.embeddings,
        bins,
        analyzer.threshold() as f64,
    ))
}

/// Identity across groups, judged by the recognition network (dlib): the
/// same latent's renders should be one person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// The group every other group is identified against (20–29, or the
    /// middle group).
    pub reference_group: String,
    /// Per group: the share of latents whose render at that group is
    /// nearest (dlib L2) to its own render at the reference group among all
    /// latents' reference renders.
    pub identification: Vec<(String, f64)>,
    /// Per group: the share of latents whose render at that group is nearer
    /// its own reference render than every one of `among_real_of` real
    /// faces of the reference group (all in grey): the protocol
    /// [`RealIdentification`] measures real people by. Empty where not
    /// measured.
    #[serde(default)]
    pub among_real: Vec<(String, f64)>,
    /// How many real faces the `among_real` gallery holds besides the own
    /// reference.
    #[serde(default)]
    pub among_real_of: usize,
    /// Mean dlib L2 between a latent's renders at group `i` and group `j`
    /// (row `i`, column `j`).
    pub same_latent_distance: Vec<Vec<f64>>,
    /// The group labels of the table's rows and columns.
    pub groups: Vec<String>,
}

impl Consistency {
    /// Adds [`Consistency::among_real`]: [`identification_among_real`] of the
    /// grey embeddings `grey[group][latent]` against `distractors` (left
    /// empty when either is).
    pub fn with_among_real(
        mut self,
        bins: &AgeBins,
        grey: &[Vec<Vec<f32>>],
        distractors: &[Vec<f32>],
        keep: Option<&[bool]>,
    ) -> Self {
        self.among_real = identification_among_real(bins, grey, distractors, keep);
        self.among_real_of = if self.among_real.is_empty() {
            0
        } else {
            distractors.len()
        };
        self
    }
}

/// The latents a [`agesynth_critic::pair_filter::PairFilter`] keeps, measured again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptSubset {
    /// The filter's largest accepted inconsistency (`None`: no limit).
    pub max_distance: Option<f32>,
    /// Whether the filter also dropped latents its gender critic reads as
    /// changing gender.
    #[serde(default)]
    pub gender_checked: bool,
    /// Latents kept.
    pub kept: usize,
    /// Latents measured.
    pub of: usize,
    /// Gender agreement among the kept latents (with the second judge).
    pub gender_agreement: Option<GenderAgreement>,
    /// Identity across groups among the kept latents (the gallery is the
    /// kept latents too).
    pub consistency: Option<Consistency>,
}

/// [`Consistency`] of `emb[group][latent]` (dlib embeddings, the same
/// latents at every group) over the latents `keep` (all when `None`).
pub fn consistency(
    bins: &AgeBins,
    emb: &[Vec<Vec<f32>>],
    keep: Option<&[bool]>,
) -> Option<Consistency> {
    let g = emb.len();
    let n = emb.iter().map(Vec::len).min()?;
    let ids: Vec<usize> = (0..n)
        .filter(|&k| {
            keep.map(|m| m.get(k).copied().unwrap_or(false))
                .unwrap_or(true)
        })
        .collect();
    if g < 2 || ids.len() < 2 {
        return None;
    }
    let l2 = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let reference = reference_group(bins);
    let mut identification = Vec::with_capacity(g);
    for t in 0..g {
        let hits = ids
            .iter()
            .filter(|&&k| {
                let own = l2(&emb[t][k], &emb[reference][k]);
                ids.iter()
                    .all(|&j| j == k || l2(&emb[t][k], &emb[reference][j]) > own)
            })
            .count();
        identification.push((bins.label(AgeGroup(t)), hits as f64 / ids.len() as f64));
    }
    let same_latent_distance = (0..g)
        .map(|i| {
            (0..g)
                .map(|j| {
                    ids.iter().map(|&k| l2(&emb[i][k], &emb[j][k])).sum::<f64>() / ids.len() as f64
                })
                .collect()
        })
        .collect();
    Some(Consistency {
        reference_group: bins.label(AgeGroup(reference)),
        identification,
        among_real: Vec::new(),
        among_real_of: 0,
        same_latent_distance,
        groups: bins.groups().map(|t| bins.label(t)).collect(),
    })
}

/// The group identity is measured against: the one holding 25 years
/// (20–29 with the default bins), else the middle one.
pub fn reference_group(bins: &AgeBins) -> usize {
    let g = bins.len().max(1);
    bins.groups()
        .find(|t| bins.range(*t).0 <= 25.0 && bins.range(*t).1.is_none_or(|hi| 25.0 < hi))
        .map(|t| t.0)
        .unwrap_or(g / 2)
        .min(g - 1)
}

/// True when `probe` is nearer (dlib L2) to `own` than to every one of
/// `distractors`: identified in a gallery of its own reference and them.
pub fn identified_among(probe: &[f32], own: &[f32], distractors: &[Vec<f32>]) -> bool {
    let d = metrics::l2(probe, own);
    distractors.iter().all(|x| metrics::l2(probe, x) > d)
}

/// Per group, the share of the latents `keep` (all when `None`) whose
/// embedding `emb[group][latent]` is [`identified_among`] its own
/// reference-group embedding and `distractors` (real faces of the
/// reference group, embedded the same way).
pub fn identification_among_real(
    bins: &AgeBins,
    emb: &[Vec<Vec<f32>>],
    distractors: &[Vec<f32>],
    keep: Option<&[bool]>,
) -> Vec<(String, f64)> {
    let reference = reference_group(bins);
    let Some(refs) = emb.get(reference) else {
        return Vec::new();
    };
    let ids: Vec<usize> = (0..emb.iter().map(Vec::len).min().unwrap_or(0))
        .filter(|&k| keep.is_none_or(|m| m.get(k).copied().unwrap_or(false)))
        .collect();
    if ids.is_empty() || distractors.is_empty() {
        return Vec::new();
    }
    emb.iter()
        .enumerate()
        .map(|(t, at)| {
            let hits = ids
                .iter()
                .filter(|&&k| identified_among(&at[k], &refs[k], distractors))
                .count();
            (bins.label(AgeGroup(t)), hits as f64 / ids.len() as f64)
        })
        .collect()
}

/// Real people identified across groups, by the protocol the renders'
/// [`Consistency::among_real`] uses: a photo of a person at a group is
/// identified when it is nearer one of the person's own photos at the
/// reference group than every one of `distractors` real faces of that
/// group (all in grey, so that a scanned grey photo is not found by its
/// colour). The ceiling real ageing sets for a generator's identification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealIdentification {
    /// The reference group (20–29).
    pub reference_group: String,
    /// Real faces of the reference group in the gallery besides the own photo.
    pub distractors: usize,
    /// Per group with at least one trial.
    pub rows: Vec<RealIdentificationRow>,
}

/// One group of a [`RealIdentification`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealIdentificationRow {
    /// The probe photos' group.
    pub group: String,
    /// People with a photo at this group and one at the reference group.
    pub people: usize,
    /// (probe photo, own reference photo) trials: every photo of a person
    /// at the group against every other of their photos at the reference
    /// group.
    pub trials: usize,
    /// Share of the trials identified.
    pub identified: f64,
}

/// [`RealIdentification`] of `faces` (a data set that names its people)
/// with their `embeddings` (in order) against `distractors`; `None` when
/// no person has photos at the reference group and another, or there are
/// no distractors.
pub fn identify_real_people(
    faces: &[EvalFace],
    embeddings: &[Vec<f32>],
    bins: &AgeBins,
    distractors: &[Vec<f32>],
) -> Option<RealIdentification> {
    if distractors.is_empty() {
        return None;
    }
    let reference = reference_group(bins);
    let group = |f: &EvalFace| bins.group_of_years(f.age.max(0.0) as u32).0;
    let n = faces.len().min(embeddings.len());
    let mut trials = vec![(0usize, 0usize); bins.len()];
    let mut people: Vec<std::collections::BTreeSet<u32>> = vec![Default::default(); bins.len()];
    for p in 0..n {
        let Some(s) = faces[p].subject else { continue };
        let t = group(&faces[p]);
        for r in 0..n {
            if r == p || faces[r].subject != Some(s) || group(&faces[r]) != reference {
                continue;
            }
            let hit = identified_among(&embeddings[p], &embeddings[r], distractors);
            trials[t].0 += 1;
            trials[t].1 += usize::from(hit);
            people[t].insert(s);
        }
    }
    let rows: Vec<RealIdentificationRow> = bins
        .groups()
        .filter(|t| trials[t.0].0 > 0)
        .map(|t| RealIdentificationRow {
            group: bins.label(t),
            people: people[t.0].len(),
            trials: trials[t.0].0,
            identified: trials[t.0].1 as f64 / trials[t.0].0 as f64,
        })
        .collect();
    (!rows.is_empty()).then(|| RealIdentification {
        reference_group: bins.label(AgeGroup(reference)),
        distractors: distractors.len(),
        rows,
    })
}

/// The grey embeddings of `reference`'s faces at the reference group: the
/// distractors of [`Consistency::among_real`] and [`RealIdentification`].
pub fn real_distractors(
    reference: &[EvalFace],
    analyzer: &Analyzer,
    bins: &AgeBins,
) -> Result<Vec<Vec<f32>>> {
    let r = reference_group(bins);
    let grey: Vec<FaceImage> = reference
        .iter()
        .filter(|f| bins.group_of_years(f.age.max(0.0) as u32).0 == r)
        .map(|f| f.image.to_grey())
        .collect();
    if grey.is_empty() {
        return Ok(Vec::new());
    }
    analyzer.embed(&grey)
}

/// [`identify_real_people`] over every photo of `data` (FG-NET), greyed and
/// embedded by `analyzer`, against [`real_distractors`] of `reference`.
pub fn real_people_identification(
    data: &EvalData,
    reference: &[EvalFace],
    analyzer: &Analyzer,
    bins: &AgeBins,
) -> Result<Option<RealIdentification>> {
    let distractors = real_distractors(reference, analyzer, bins)?;
    let grey: Vec<FaceImage> = data.gallery.iter().map(|f| f.image.to_grey()).collect();
    if grey.is_empty() {
        return Ok(None);
    }
    let emb = analyzer.embed(&grey)?;
    Ok(identify_real_people(
        &data.gallery,
        &emb,
        bins,
        &distractors,
    ))
}

/// Generates `opts.count` faces at every group of `generator` and measures
/// them against `reference` (real faces, grouped by their age).
pub fn evaluate_cstylegan(
    generator: &Generator,
    reference: &[EvalFace],
    analyzer: &Analyzer,
    opts: &CStyleGanEvalOptions,
) -> Result<CStyleGanResult> {
    evaluate_cstylegan_filtered(generator, reference, analyzer, opts, None)
}

/// [`evaluate_cstylegan`], and with `filter` the gender agreement and
/// identity across groups again on the latents the filter keeps: what a
/// filtered synthetic-pairs set would hold.
pub fn evaluate_cstylegan_filtered(
    generator: &Generator,
    reference: &[EvalFace],
    analyzer: &Analyzer,
    opts: &CStyleGanEvalOptions,
    filter: Option<&agesynth_critic::pair_filter::PairFilter>,
) -> Result<CStyleGanResult> {
    if opts.count == 0 {
        return Err(Error::Config("count must be at least 1".into()));
    }
    let cfg = generator.config();
    let bins = cfg.bins()?;
    let g = bins.len();
    let device = generator.w_avg().device().clone();
    let z_all = seeded_latents(opts.count, cfg.z_dim, opts.seed, &device)?;
    let ref_imgs: Vec<FaceImage> = reference.iter().map(|f| f.image.clone()).collect();
    let real_feats = analyzer.analyze(&ref_imgs)?;
    let mut real: Vec<Vec<Vec<f32>>> = vec![Vec::new(); g];
    let mut real_ages: Vec<Vec<f32>> = vec![Vec::new(); g];
    let mut real_det: Vec<Vec<bool>> = vec![Vec::new(); g];
    let mut real_judge: Vec<Vec<f32>> = vec![Vec::new(); g];
    for (k, f) in reference.iter().enumerate() {
        let t = bins.group_of_years(f.age.max(0.0) as u32).0;
        real[t].push(real_feats.embeddings[k].clone());
        real_ages[t].push(real_feats.ages[k]);
        real_det[t].push(real_feats.detected[k]);
        if real_feats.has_judge() {
            real_judge[t].push(real_feats.judge_ages[k]);
        }
    }
    let mut rows = Vec::new();
    let mut sheet_tiles: Vec<Vec<FaceImage>> = vec![Vec::new(); opts.sheet_rows.min(opts.count)];
    let mut sheet_captions: Vec<Vec<String>> = vec![Vec::new(); opts.sheet_rows.min(opts.count)];
    let (mut all_embs, mut all_det) = (Vec::new(), Vec::new());
    let (mut hits, mut abs_err, mut n_all) = (0usize, 0f64, 0usize);
    let (mut judge_hits, mut judge_err, mut judge_n) = (0usize, 0f64, 0usize);
    let (mut females, mut all_female) = (0usize, Vec::with_capacity(g));
    let mut dlib_by_group: Vec<Vec<Vec<f32>>> = Vec::with_capacity(g);
    // The same renders in grey, for identification among real faces.
    let mut grey_by_group: Vec<Vec<Vec<f32>>> = Vec::with_capacity(g);
    let distractors = real_distractors(reference, analyzer, &bins)?;
    let (mut ages_by_group, mut judge_by_group) = (Vec::with_capacity(g), Vec::with_capacity(g));
    let mut renders: Vec<Tensor> = Vec::new();
    for t in bins.groups() {
        let mut images = Vec::with_capacity(opts.count);
        for (b, start) in (0..opts.count).step_by(opts.batch.max(1)).enumerate() {
            let len = opts.batch.max(1).min(opts.count - start);
            let z = z_all.narrow(0, start, len)?;
            let gen_opts = GenerateOptions {
                truncation: opts.truncation,
                mixing: None,
                noise: Noise::Seeded(opts.seed.wrapping_mul(1000).wrapping_add(b as u64)),
                age_free_layers: opts.age_free_layers,
            };
            let clock = Instant::now();
            let out = generator
                .forward(&z, &vec![t; len], &gen_opts)?
                .clamp(-1f32, 1f32)?;
            analyzer.add_time(|x| &mut x.generate_s, clock.elapsed());
            images.extend(tensor_to_images(&out)?);
            if filter.is_some() {
                renders.push(out);
            }
        }
        for (row, tiles) in sheet_tiles.iter_mut().enumerate() {
            tiles.push(images[row].clone());
        }
        let f = analyzer.analyze(&images)?;
        if !distractors.is_empty() {
            let grey: Vec<FaceImage> = images.iter().map(FaceImage::to_grey).collect();
            grey_by_group.push(analyzer.embed(&grey)?);
        }
        for (row, caps) in sheet_captions.iter_mut().enumerate() {
            let dlib = f.ages.get(row).copied().unwrap_or(f32::NAN);
            caps.push(if f.has_judge() {
                let female = f.female.get(row).copied().unwrap_or(0.5) >= 0.5;
                let age = f.judge_ages.get(row).copied().unwrap_or(f32::NAN);
                format!("{} {:.0} d{:.0}", if female { "F" } else { "M" }, age, dlib)
            } else {
                format!("? d{dlib:.0}")
            });
        }
        let (acc, mae) = metrics::age_accuracy_and_mae(&bins, &f.ages, t).unzip();
        hits += f
            .ages
            .iter()
            .filter(|&&a| bins.group(a).map(|x| x == t).unwrap_or(false))
            .count();
        abs_err += f
            .ages
            .iter()
            .map(|&a| (a as f64 - bins.centre(t) as f64).abs())
            .sum::<f64>();
        n_all += f.ages.len();
        let judged = f.has_judge();
        let (judge_acc, judge_mae) = if judged {
            metrics::age_accuracy_and_mae(&bins, &f.judge_ages, t).unzip()
        } else {
            (None, None)
        };
        let female_share = judged.then(|| {
            let k = f.female.iter().filter(|&&p| p >= 0.5).count();
            females += k;
            k as f64 / f.female.len().max(1) as f64
        });
        if judged {
            judge_hits += f
                .judge_ages
                .iter()
                .filter(|&&a| bins.group(a).is_ok_and(|x| x == t))
                .count();
            judge_err += f
                .judge_ages
                .iter()
                .map(|&a| (a as f64 - bins.centre(t) as f64).abs())
                .sum::<f64>();
            judge_n += f.judge_ages.len();
            all_female.push(f.female.clone());
        }
        rows.push(CStyleGanRow {
            group: crate::RowGroup::Group(bins.label(t)),
            n: f.len(),
            age_accuracy: acc,
            age_mae: mae,
            judge_age_accuracy: judge_acc,
            judge_age_mae: judge_mae,
            female_share,
            detection_rate: metrics::detection_rate(&f.detected),
            frechet: metrics::frechet_distance(&f.embeddings, &real[t.0])?,
            n_real: real[t.0].len(),
            real_age_accuracy: metrics::age_accuracy_and_mae(&bins, &real_ages[t.0], t)
                .map(|x| x.0),
            real_detection_rate: metrics::detection_rate(&real_det[t.0]),
            real_judge_age_accuracy: metrics::age_accuracy_and_mae(&bins, &real_judge[t.0], t)
                .map(|x| x.0),
        });
        all_det.extend(f.detected);
        ages_by_group.push(f.ages.clone());
        if judged {
            judge_by_group.push(f.judge_ages.clone());
        }
        dlib_by_group.push(f.embeddings.clone());
        all_embs.extend(f.embeddings);
    }
    let real_all: Vec<Vec<f32>> = real.iter().flatten().cloned().collect();
    let real_hits: usize = bins
        .groups()
        .map(|t| {
            real_ages[t.0]
                .iter()
                .filter(|&&a| bins.group(a).is_ok_and(|x| x == t))
                .count()
        })
        .sum();
    let n_real_all = real_ages.iter().map(Vec::len).sum::<usize>();
    let real_overall = (n_real_all > 0).then(|| real_hits as f64 / n_real_all as f64);
    let real_judge_hits: usize = bins
        .groups()
        .map(|t| {
            real_judge[t.0]
                .iter()
                .filter(|&&a| bins.group(a).is_ok_and(|x| x == t))
                .count()
        })
        .sum();
    let n_real_judge = real_judge.iter().map(Vec::len).sum::<usize>();
    rows.push(CStyleGanRow {
        group: crate::RowGroup::Overall,
        n: n_all,
        age_accuracy: (n_all > 0).then(|| hits as f64 / n_all as f64),
        age_mae: (n_all > 0).then(|| abs_err / n_all as f64),
        judge_age_accuracy: (judge_n > 0).then(|| judge_hits as f64 / judge_n as f64),
        judge_age_mae: (judge_n > 0).then(|| judge_err / judge_n as f64),
        female_share: (judge_n > 0).then(|| females as f64 / judge_n as f64),
        detection_rate: metrics::detection_rate(&all_det),
        frechet: metrics::frechet_distance(&all_embs, &real_all)?,
        n_real: real_all.len(),
        real_age_accuracy: real_overall,
        real_detection_rate: metrics::detection_rate(&real_det.concat()),
        real_judge_age_accuracy: (n_real_judge > 0)
            .then(|| real_judge_hits as f64 / n_real_judge as f64),
    });
    let asked = generator.latent_genders(&z_all)?;
    let gender_agreement = (all_female.len() == g)
        .then(|| gender_agreement(&bins, &all_female))
        .flatten()
        .map(|a| match &asked {
            Some(asked) => a.with_asked(&bins, &all_female, asked),
            None => a,
        });
    let kept = match filter {
        None => None,
        Some(f) => {
            // renders: group-major batches → (count, groups, 3, S, S).
            let all = Tensor::cat(&renders, 0)?;
            let (_, c, h, w) = all.dims4()?;
            let all = all
                .reshape((g, opts.count, c, h, w))?
                .transpose(0, 1)?
                .contiguous()?;
            let mut keep = Vec::with_capacity(opts.count);
            for start in (0..opts.count).step_by(opts.batch.max(1)) {
                let len = opts.batch.max(1).min(opts.count - start);
                keep.extend(
                    f.judge(&all.narrow(0, start, len)?)
                        .map_err(|e| Error::InvalidInput(format!("pair filter: {e}")))?
                        .into_iter()
                        .map(|v| v.keep),
                );
            }
            let female_kept: Vec<Vec<f32>> = all_female
                .iter()
                .map(|col: &Vec<f32>| {
                    col.iter()
                        .zip(&keep)
                        .filter(|(_, &k)| k)
                        .map(|(&p, _)| p)
                        .collect()
                })
                .collect();
            Some(KeptSubset {
                max_distance: f.max_distance.is_finite().then_some(f.max_distance),
                gender_checked: f.gender.is_some(),
                kept: keep.iter().filter(|&&k| k).count(),
                of: keep.len(),
                gender_agreement: (female_kept.len() == g)
                    .then(|| self::gender_agreement(&bins, &female_kept))
                    .flatten(),
                consistency: consistency(&bins, &dlib_by_group, Some(&keep))
                    .map(|c| c.with_among_real(&bins, &grey_by_group, &distractors, Some(&keep))),
            })
        }
    };
    let tiles: Vec<FaceImage> = sheet_tiles.into_iter().flatten().collect();
    let labels: Vec<String> = bins.groups().map(|t: AgeGroup| bins.label(t)).collect();
    let sheet = agesynth_data::draw::grid(&tiles, g, Some(&labels))?;
    let big = tiles
        .iter()
        .map(|t| agesynth_data::transform::resize(t, 160, 160))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let captions: Vec<String> = sheet_captions
        .into_iter()
        .flat_map(|row| {
            row.into_iter()
                .zip(&labels)
                .map(|(c, l)| format!("{l}: {c}"))
                .collect::<Vec<_>>()
        })
        .collect();
    let contact = agesynth_data::draw::strip(&big, g, &captions)?;
    let age_spread = age_spread(
        &bins,
        &ages_by_group,
        (judge_by_group.len() == g).then_some(judge_by_group.as_slice()),
        &real_ages,
        &real_judge,
    );
    Ok(CStyleGanResult {
        rows,
        judge: analyzer.judge_name().map(str::to_string),
        gender_agreement,
        age_spread,
        consistency: consistency(&bins, &dlib_by_group, None)
            .map(|c| c.with_among_real(&bins, &grey_by_group, &distractors, None)),
        kept,
        sheet,
        contact,
        timings: analyzer.timings(),
        real_people: Vec::new(),
        real_identification: None,
    })
}

/// Gender agreement of `female[group][latent]` (probabilities of female,
/// the same latents at every group) over the groups whose lower bound is at
/// least 10 years; `None` with fewer than two such groups or no latent.
/// A latent is read as female where the probability is at least 0.5 (as
/// face-api calls "male" only above 0.5 for male).
pub fn gender_agreement(bins: &AgeBins, female: &[Vec<f32>]) -> Option<GenderAgreement> {
    let groups = compared_groups(bins, female.len());
    let identities = groups.iter().map(|t| female[t.0].len()).min()?;
    if groups.len() < 2 || identities == 0 {
        return None;
    }
    let consistent = (0..identities)
        .filter(|&k| {
            let first = female[groups[0].0][k] >= 0.5;
            groups.iter().all(|t| (female[t.0][k] >= 0.5) == first)
        })
        .count();
    Some(GenderAgreement {
        groups: groups.iter().map(|&t| bins.label(t)).collect(),
        identities,
        consistent,
        as_asked: None,
    })
}

/// The groups whose gender is compared: lower bound at least 10 years (the
/// judge's gender is unreliable on young children), among the first `n`.
fn compared_groups(bins: &AgeBins, n: usize) -> Vec<AgeGroup> {
    bins.groups()
        .filter(|t| bins.range(*t).0 >= 10.0 && t.0 < n)
        .collect()
}

/// A chart: file stem, title, the value of a row, the axis maximum.
type Chart = (
    &'static str,
    &'static str,
    fn(&CStyleGanRow) -> Option<f64>,
    Option<f64>,
);

/// `metrics.json` of the cStyleGAN evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CStyleGanMetricsFile {
    /// Model, data, options.
    pub settings: serde_json::Value,
    /// The second age judge (`"face-api"`), `None` when it was not run.
    #[serde(default)]
    pub judge: Option<String>,
    /// Per group, then overall.
    pub rows: Vec<CStyleGanRow>,
    /// Gender agreement across groups by the second judge.
    #[serde(default)]
    pub gender_agreement: Option<GenderAgreement>,
    /// Mean estimated age per group; latents whose age rises across groups.
    #[serde(default)]
    pub age_spread: Option<AgeSpread>,
    /// Identity across groups (dlib).
    #[serde(default)]
    pub consistency: Option<Consistency>,
    /// The measures again on the latents a pair filter keeps.
    #[serde(default)]
    pub kept: Option<KeptSubset>,
    /// Real people's photos across groups (with `--fgnet`; else empty).
    #[serde(default)]
    pub real_people: Vec<SamePersonPair>,
    /// Real people identified across groups (with `--fgnet`).
    #[serde(default)]
    pub real_identification: Option<RealIdentification>,
}

/// Writes `report.md`, `metrics.json`, `samples.png` and one chart per
/// metric into `out`.
pub fn write_cstylegan_report(
    out: &Path,
    result: &CStyleGanResult,
    settings: serde_json::Value,
    wall_s: f64,
) -> Result<()> {
    write_cstylegan_report_with_notes(out, result, settings, wall_s, None)
}

/// [`write_cstylegan_report`], with `judge_missing` (why the second age
/// judge was not run, naming its weights file) said in the report when the
/// result has no judge.
pub fn write_cstylegan_report_with_notes(
    out: &Path,
    result: &CStyleGanResult,
    settings: serde_json::Value,
    wall_s: f64,
    judge_missing: Option<&str>,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating", out, e))?;
    let r6 = |v: Option<f64>| v.map(|x| (x * 1e6).round() / 1e6);
    let rows: Vec<CStyleGanRow> = result
        .rows
        .iter()
        .map(|r| CStyleGanRow {
            age_accuracy: r6(r.age_accuracy),
            age_mae: r6(r.age_mae),
            judge_age_accuracy: r6(r.judge_age_accuracy),
            judge_age_mae: r6(r.judge_age_mae),
            female_share: r6(r.female_share),
            detection_rate: r6(r.detection_rate),
            frechet: r6(r.frechet),
            real_age_accuracy: r6(r.real_age_accuracy),
            real_detection_rate: r6(r.real_detection_rate),
            real_judge_age_accuracy: r6(r.real_judge_age_accuracy),
            ..r.clone()
        })
        .collect();
    io::save_json(
        out.join("metrics.json"),
        &CStyleGanMetricsFile {
            settings: settings.clone(),
            judge: result.judge.clone(),
            rows: rows.clone(),
            gender_agreement: result.gender_agreement.clone(),
            age_spread: result.age_spread.clone(),
            consistency: result.consistency.clone(),
            kept: result.kept.clone(),
            real_people: result.real_people.clone(),
            real_identification: result.real_identification.clone(),
        },
    )?;
    agesynth_data::draw::save_png(out.join("samples.png"), &result.sheet)?;
    agesynth_data::draw::save_png(out.join("contact.png"), &result.contact)?;
    let clusters: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.group.is_overall() {
                "all".into()
            } else {
                r.group.label().to_string()
            }
        })
        .collect();
    let charts: [Chart; 5] = [
        (
            "age_accuracy",
            "Estimated group = conditioned group",
            |r| r.age_accuracy,
            Some(1.0),
        ),
        (
            "age_accuracy_face_api",
            "Estimated group = conditioned group, face-api",
            |r| r.judge_age_accuracy,
            Some(1.0),
        ),
        (
            "age_mae",
            "Age MAE to the group centre (years)",
            |r| r.age_mae,
            None,
        ),
        (
            "detection_rate",
            "Face detection rate (MTCNN)",
            |r| r.detection_rate,
            Some(1.0),
        ),
        (
            "frechet",
            "Identity-feature Frechet distance (not FID)",
            |r| r.frechet,
            None,
        ),
    ];
    let mut drawn = Vec::new();
    for (stem, title, get, y_max) in charts {
        let values = vec![rows.iter().map(get).collect::<Vec<_>>()];
        if values[0].iter().all(Option::is_none) {
            continue;
        }
        let img = plot::bar_chart(title, &clusters, &["cStyleGAN".into()], &values, y_max)?;
        agesynth_data::draw::save_png(out.join(format!("plot_{stem}.png")), &img)?;
        drawn.push((stem, title));
    }
    let t = &result.timings;
    let mut s = String::from("# cStyleGAN evaluation\n\n## Settings\n\n");
    if let Some(obj) = settings.as_object() {
        for (k, v) in obj {
            let _ = writeln!(s, "- {k}: {}", v.to_string().trim_matches('"'));
        }
    }
    let _ = writeln!(
        s,
        "- wall time: {wall_s:.1} s (loading {:.1} s, generator {:.1} s, embedder {:.1} s, age estimator {:.1} s, age-gender judge {:.1} s, detection {:.1} s)\n",
        t.load_s, t.generate_s, t.embed_s, t.age_s, t.age_gender_s, t.detect_s
    );
    let _ = writeln!(
        s,
        "Age: dlib's age estimator on each generated face; accuracy = its group equals the \
         conditioned group; MAE to the group's centre. Detection: MTCNN on the face upsampled to \
         {} px. Fréchet: {FRECHET_LABEL}, between the 128-D dlib embeddings of the generated faces \
         and of real UTKFace test-split faces of the group. The \"real faces\" columns measure those \
         real faces the same way: the age estimator's accuracy on real photos is the ceiling for \
         the generated ones.\n",
        crate::features::DETECT_SIZE
    );
    let judge = result.judge.as_deref();
    match (judge, judge_missing) {
        (Some(j), _) => {
            let _ = writeln!(
                s,
                "Second age judge ({j}): face-api's age-gender network on the face box its detector \
                 draws on a UTKFace-framed chip; the same accuracy and MAE, on the generated and on \
                 the real faces, and the share of faces it reads as female. It was trained on 80% \
                 of UTKFace (among other sets), so on the real faces it partly sees its training \
                 data.\n"
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "Second age judge (face-api): not measured, {why}.\n");
        }
        (None, None) => {}
    }
    s += "| group | n | estimated group = conditioned (dlib) ↑ | age MAE to centre (dlib) ↓ |";
    if let Some(j) = judge {
        let _ = write!(
            s,
            " estimated group = conditioned ({j}) ↑ | age MAE to centre ({j}) ↓ | read as female ({j}) |"
        );
    }
    s += " detection ↑ | Fréchet (id. features) ↓ | real n | real faces: estimated group = own group (dlib) |";
    if let Some(j) = judge {
        let _ = write!(s, " real faces: estimated group = own group ({j}) |");
    }
    s += " real faces: detection |\n";
    s += "|---|---:|---:|---:|";
    if judge.is_some() {
        s += "---:|---:|---:|";
    }
    s += "---:|---:|---:|---:|";
    if judge.is_some() {
        s += "---:|";
    }
    s += "---:|\n";
    let pct = |v: Option<f64>| {
        v.map(|x| format!("{:.1}%", 100.0 * x))
            .unwrap_or("–".into())
    };
    let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or("–".into());
    for r in &rows {
        let (judged, real_judged) = match judge {
            Some(_) => (
                format!(
                    " {} | {} | {} |",
                    pct(r.judge_age_accuracy),
                    num(r.judge_age_mae),
                    pct(r.female_share)
                ),
                format!(" {} |", pct(r.real_judge_age_accuracy)),
            ),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |{judged} {} | {} | {} | {} |{real_judged} {} |",
            r.group,
            r.n,
            pct(r.age_accuracy),
            num(r.age_mae),
            pct(r.detection_rate),
            num(r.frechet),
            r.n_real,
            pct(r.real_age_accuracy),
            pct(r.real_detection_rate),
        );
    }
    if let Some(a) = &result.gender_agreement {
        let _ = writeln!(
            s,
            "\nGender agreement ({}): {}/{} identities ({:.1}%) are read as the same gender at \
             every group from {} to {} (the same latent rendered at each group).",
            judge.unwrap_or("face-api"),
            a.consistent,
            a.identities,
            100.0 * a.share(),
            a.groups.first().map(String::as_str).unwrap_or("–"),
            a.groups.last().map(String::as_str).unwrap_or("–"),
        );
        if let (Some(k), Some(share)) = (a.as_asked, a.as_asked_share()) {
            let _ = writeln!(
                s,
                "Gender as asked (the model is gender-conditioned): {}/{} identities ({:.1}%) are \
                 read as the gender they were asked for at every one of those groups.",
                k,
                a.identities,
                100.0 * share,
            );
        }
    }
    if let Some(a) = &result.age_spread {
        write_age_spread(&mut s, a, judge);
    }
    if let Some(c) = &result.consistency {
        write_consistency(&mut s, c, "all latents");
    }
    if !result.real_people.is_empty() {
        let groups: Vec<String> = result
            .rows
            .iter()
            .filter(|r| !r.group.is_overall())
            .map(|r| r.group.label().to_string())
            .collect();
        s += &same_person_table(&groups, &result.real_people);
    }
    if let Some(r) = &result.real_identification {
        write_real_identification(&mut s, r);
    }
    if let Some(k) = &result.kept {
        let mut rule = Vec::new();
        if let Some(d) = k.max_distance {
            rule.push(format!(
                "the identity critic's largest distance between renders at neighbouring groups \
                 at most {d}"
            ));
        }
        if k.gender_checked {
            rule.push(
                "the gender critic reads one gender at every group from 10-19 up".to_string(),
            );
        }
        let _ = writeln!(
            s,
            "\n### Latents a pair filter keeps\n\nKept where {}: {}/{} latents ({:.1}%).",
            rule.join(" and "),
            k.kept,
            k.of,
            100.0 * k.kept as f64 / k.of.max(1) as f64
        );
        if let Some(a) = &k.gender_agreement {
            let _ = writeln!(
                s,
                "\nGender agreement among them ({}): {}/{} ({:.1}%).",
                judge.unwrap_or("face-api"),
                a.consistent,
                a.identities,
                100.0 * a.share()
            );
        }
        if let Some(c) = &k.consistency {
            write_consistency(&mut s, c, "kept latents");
        }
    }
    s += "\n![samples](samples.png)\n";
    for (stem, title) in drawn {
        let _ = writeln!(s, "\n![{title}](plot_{stem}.png)");
    }
    io::atomic_write_bytes(out.join("report.md"), s.as_bytes())
}

/// Appends the age-spread table of `a` to a report.
fn write_age_spread(s: &mut String, a: &AgeSpread, judge: Option<&str>) {
    let years = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or("–".into());
    let _ = writeln!(
        s,
        "\nAge spread: the mean estimated age (years) of the renders at each group, beside that \
         of the real faces of the group. The estimated age rises from every group to the next \
         for {}/{} latents ({:.1}%) by dlib{}.\n",
        a.rising,
        a.identities,
        100.0 * a.rising_share(),
        match (judge, a.judge_rising, a.judge_rising_share()) {
            (Some(j), Some(k), Some(share)) =>
                format!(", {k}/{} ({:.1}%) by {j}", a.identities, 100.0 * share),
            _ => String::new(),
        }
    );
    *s += "| group | renders (dlib) | real faces (dlib) |";
    if let Some(j) = judge {
        let _ = write!(s, " renders ({j}) | real faces ({j}) |");
    }
    *s += "\n|---|---:|---:|";
    if judge.is_some() {
        *s += "---:|---:|";
    }
    *s += "\n";
    for r in &a.groups {
        let _ = write!(
            s,
            "| {} | {} | {} |",
            r.group,
            years(r.mean_age),
            years(r.real_mean_age)
        );
        if judge.is_some() {
            let _ = write!(
                s,
                " {} | {} |",
                years(r.judge_mean_age),
                years(r.real_judge_mean_age)
            );
        }
        *s += "\n";
    }
}

/// Appends the identity-across-groups tables of `c` to a report.
fn write_real_identification(s: &mut String, r: &RealIdentification) {
    let _ = writeln!(
        s,
        "\n## Real people identified across groups\n\n\
         The renders' \"among real faces\" protocol on real people: a photo at a group is \
         identified when it is nearer one of the same person's {g} photos than every one of {n} \
         real {g} faces (all in grey); every (photo, own {g} photo) pair is a trial. At {g} the \
         probe is another photo of that group. What real ageing leaves identifiable, the scale \
         for the renders' column.\n\n\
         | group | identified | trials | people |\n|---|---:|---:|---:|",
        g = r.reference_group,
        n = r.distractors
    );
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {:.1}% | {} | {} |",
            row.group,
            100.0 * row.identified,
            row.trials,
            row.people
        );
    }
}

fn write_consistency(s: &mut String, c: &Consistency, whose: &str) {
    let _ = writeln!(
        s,
        "\nIdentity across groups ({whose}, dlib): the share of latents whose render at a group \
         is nearest to its own {} render among all of them, and the mean same-latent distance \
         between groups (same person below 0.6).\n",
        c.reference_group
    );
    let among_real = !c.among_real.is_empty();
    if among_real {
        let _ = writeln!(
            s,
            "\"Among real faces\": the share nearer its own {r} render than every one of {n} \
             real {r} faces (UTKFace test split; renders and faces in grey): the protocol real \
             people are measured by below (with `--fgnet`), not flattered by the likeness of \
             truncated latents to one another.\n",
            r = c.reference_group,
            n = c.among_real_of
        );
    }
    *s += "| group | identified against the reference |";
    if among_real {
        *s += " identified among real faces |";
    }
    for g in &c.groups {
        let _ = write!(s, " L2 to {g} |");
    }
    *s += "\n|---|---:|";
    if among_real {
        *s += "---:|";
    }
    *s += &"---:|".repeat(c.groups.len());
    *s += "\n";
    for (i, (g, rate)) in c.identification.iter().enumerate() {
        let _ = write!(s, "| {g} | {:.1}% |", 100.0 * rate);
        if among_real {
            match c.among_real.get(i) {
                Some((_, r)) => {
                    let _ = write!(s, " {:.1}% |", 100.0 * r);
                }
                None => *s += " – |",
            }
        }
        for d in &c.same_latent_distance[i] {
            let _ = write!(s, " {d:.3} |");
        }
        *s += "\n";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gender_agreement_compares_the_groups_from_ten_up() {
        let bins = AgeBins::default();
        // Latent 0 is female from 10-19 up (male as a child: not compared);
        // latent 1 turns male at 50+; latent 2 is male throughout.
        let female: Vec<Vec<f32>> = vec![
            vec![0.1, 0.9, 0.2],
            vec![0.8, 0.9, 0.1],
            vec![0.7, 0.6, 0.3],
            vec![0.9, 0.7, 0.4],
            vec![0.6, 0.5, 0.0],
            vec![0.9, 0.4, 0.2],
        ];
        let a = gender_agreement(&bins, &female).unwrap();
        assert_eq!(a.groups, ["10-19", "20-29", "30-39", "40-49", "50+"]);
        assert_eq!((a.identities, a.consistent), (3, 2));
        assert!((a.share() - 2.0 / 3.0).abs() < 1e-12);
        // Fewer than two groups from ten up: nothing to compare.
        assert!(gender_agreement(&bins, &female[..2]).is_none());
        // Asked female, male, female: latent 0 is read as asked throughout,
        // latent 1 (female until 40-49, asked male) is not, and latent 2 is
        // consistent but the wrong gender.
        assert_eq!(a.as_asked, None);
        let asked = [Gender::Female, Gender::Male, Gender::Female];
        let b = a.with_asked(&bins, &female, &asked);
        assert_eq!(b.as_asked, Some(1));
        assert!((b.as_asked_share().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let b = b.with_asked(
            &bins,
            &female,
            &[Gender::Female, Gender::Male, Gender::Male],
        );
        assert_eq!(b.as_asked, Some(2));
    }

    #[test]
    fn age_spread_counts_latents_whose_age_rises_at_every_group() {
        let bins = AgeBins::default();
        // Three latents over six groups: the first rises throughout, the
        // second is level once, the third falls at the end.
        let ages: Vec<Vec<f32>> = (0..6)
            .map(|t| {
                let t = t as f32;
                vec![
                    5.0 + 10.0 * t,
                    if t == 3.0 { 25.0 } else { 5.0 + 10.0 * t },
                    if t == 5.0 { 1.0 } else { 5.0 + 10.0 * t },
                ]
            })
            .collect();
        assert_eq!(rising_across_groups(&ages), (1, 3));
        assert_eq!(rising_across_groups(&ages[..1]), (0, 0));
        let real: Vec<Vec<f32>> = (0..6)
            .map(|t| vec![10.0 * t as f32, 10.0 * t as f32 + 2.0])
            .collect();
        let judge: Vec<Vec<f32>> = ages
            .iter()
            .map(|v| v.iter().map(|a| a + 1.0).collect())
            .collect();
        let a = age_spread(&bins, &ages, Some(&judge), &real, &[]).unwrap();
        assert_eq!((a.rising, a.identities, a.judge_rising), (1, 3, Some(1)));
        assert!((a.rising_share() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.groups.len(), 6);
        assert_eq!(a.groups[0].real_mean_age, Some(1.0));
        assert_eq!(a.groups[5].real_judge_mean_age, None);
        // Group 5: (55 + 55 + 1) / 3.
        assert!((a.groups[5].mean_age.unwrap() - 37.0).abs() < 1e-9);
        assert!((a.groups[5].judge_mean_age.unwrap() - 38.0).abs() < 1e-9);
        assert!(age_spread(&bins, &ages, None, &real, &[])
            .unwrap()
            .judge_rising
            .is_none());
        assert!(age_spread(&bins, &[], None, &real, &[]).is_none());
    }

    #[test]
    fn consistency_identifies_own_renders_and_tabulates_distances() {
        let bins = AgeBins::default();
        // Three latents, six groups; latent k sits at (k, 0) at every group
        // except latent 2 at 50+, which moves onto latent 0's place.
        let emb: Vec<Vec<Vec<f32>>> = (0..6)
            .map(|t| {
                (0..3)
                    .map(|k| {
                        if k == 2 && t == 5 {
                            vec![0.0, 0.0]
                        } else {
                            vec![k as f32, 0.0]
                        }
                    })
                    .collect()
            })
            .collect();
        let c = consistency(&bins, &emb, None).unwrap();
        assert_eq!(c.reference_group, bins.label(AgeGroup(2)));
        // At 50+, latent 2 is nearer latent 0's 20–29 render (0) than its own
        // (2): latents 0 and 1 are identified, latent 2 is not.
        let at = |g: usize| c.identification[g].1;
        assert!((at(0) - 1.0).abs() < 1e-12);
        assert!((at(5) - 2.0 / 3.0).abs() < 1e-12, "{:?}", c.identification);
        // Same-latent distance 50+ ↔ 20–29: (0 + 0 + 2) / 3.
        assert!((c.same_latent_distance[5][2] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.same_latent_distance[1][3], 0.0);
        // Keeping only latents 0 and 1: everyone identified.
        let k = consistency(&bins, &emb, Some(&[true, true, false])).unwrap();
        assert!(k
            .identification
            .iter()
            .all(|(_, r)| (*r - 1.0).abs() < 1e-12));
        assert!(consistency(&bins, &emb, Some(&[true, false, false])).is_none());
    }

    #[test]
    fn renders_are_identified_among_real_faces_of_the_reference_group() {
        let bins = AgeBins::default();
        // Two latents at (k, 0) at every group, except latent 1 at 50+,
        // which drifts to (1, 0.8): nearer the real face at (1, 0.5) than
        // its own 20–29 render at (1, 0).
        let emb: Vec<Vec<Vec<f32>>> = (0..6)
            .map(|t| {
                (0..2)
                    .map(|k| {
                        if k == 1 && t == 5 {
                            vec![1.0, 0.8]
                        } else {
                            vec![k as f32, 0.0]
                        }
                    })
                    .collect()
            })
            .collect();
        let real = vec![vec![1.0, 0.5], vec![5.0, 5.0]];
        let r = identification_among_real(&bins, &emb, &real, None);
        assert_eq!(r.len(), 6);
        assert_eq!(r[5].0, "50+");
        assert!((r[5].1 - 0.5).abs() < 1e-12, "{r:?}");
        assert!(
            r[..5].iter().all(|(_, x)| (*x - 1.0).abs() < 1e-12),
            "{r:?}"
        );
        // Only latent 1: none identified at 50+.
        let only = identification_among_real(&bins, &emb, &real, Some(&[false, true]));
        assert_eq!(only[5].1, 0.0);
        // No distractors: nothing measured, and the table keeps its columns.
        assert!(identification_among_real(&bins, &emb, &[], None).is_empty());
        let c = consistency(&bins, &emb, None)
            .unwrap()
            .with_among_real(&bins, &emb, &real, None);
        assert_eq!(c.among_real_of, 2);
        let mut s = String::new();
        write_consistency(&mut s, &c, "all latents");
        // Among the latents latent 1 is still nearest its own render.
        assert!(s.contains("| 50+ | 100.0% | 50.0% |"), "{s}");
        let none = consistency(&bins, &emb, None)
            .unwrap()
            .with_among_real(&bins, &emb, &[], None);
        assert_eq!(none.among_real_of, 0);
        let mut s = String::new();
        write_consistency(&mut s, &none, "all latents");
        assert!(!s.contains("among real faces"), "{s}");
    }

    #[test]
    fn real_people_are_identified_against_their_own_reference_photos() {
        let bins = AgeBins::default();
        let face = |subject: Option<u32>, age: f32| EvalFace {
            image: FaceImage::new(1, 1, vec![0; 3]).unwrap(),
            age,
            subject,
            key: String::new(),
        };
        // Person 1: two photos at 20-29 (at 0 and 0.2), one at 50+ (0.3, by
        // both nearer than the distractor at 1). Person 2: one photo at 20-29
        // (at 10) and one at 0-9 (at 10.9, nearer the distractor at 11).
        // A photo without a subject is never a probe nor a reference.
        let faces = [
            face(Some(1), 22.0),
            face(Some(1), 27.0),
            face(Some(1), 60.0),
            face(Some(2), 25.0),
            face(Some(2), 5.0),
            face(None, 24.0),
        ];
        let emb: Vec<Vec<f32>> = [0.0, 0.2, 0.3, 10.0, 10.9, 0.1]
            .iter()
            .map(|&x| vec![x])
            .collect();
        let distractors = vec![vec![1.0], vec![11.0]];
        let r = identify_real_people(&faces, &emb, &bins, &distractors).unwrap();
        assert_eq!((r.reference_group.as_str(), r.distractors), ("20-29", 2));
        let row = |g: &str| r.rows.iter().find(|x| x.group == g).cloned();
        // 50+: two trials (against each 20-29 photo of person 1), both hit.
        let old = row("50+").unwrap();
        assert_eq!((old.people, old.trials), (1, 2));
        assert_eq!(old.identified, 1.0);
        // 0-9: one trial, missed (10.9 is 0.9 from its own, 0.1 from 11).
        let young = row("0-9").unwrap();
        assert_eq!((young.people, young.trials, young.identified), (1, 1, 0.0));
        // 20-29: person 1's two photos probe each other; person 2 has no
        // second photo there.
        let mid = row("20-29").unwrap();
        assert_eq!((mid.people, mid.trials, mid.identified), (1, 2, 1.0));
        assert!(row("30-39").is_none());
        assert!(identify_real_people(&faces, &emb, &bins, &[]).is_none());
        let mut s = String::new();
        write_real_identification(&mut s, &r);
        assert!(s.contains("| 0-9 | 0.0% | 1 | 1 |"), "{s}");
    }
}
