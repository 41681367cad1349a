//! Writing an evaluation's results: `report.md`, `metrics.json`, one PNG
//! chart per metric and the sample sheet, each written atomically.

use std::{fmt::Write as _, path::Path};

use agesynth_core::{io, Error, Result};
use serde::{Deserialize, Serialize};

use crate::{
    evaluate::{EvalResult, Row, RowGroup, SamePersonPair},
    plot,
};

/// Label of the Fréchet distance wherever it is shown.
pub const FRECHET_LABEL: &str = "identity-feature Fréchet distance (not Inception FID)";

/// `metrics.json`: the settings and every table row. Deterministic for a
/// seed (no wall times in it: those are in `report.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    /// What was evaluated and how (model, data, seed, limits...).
    pub settings: serde_json::Value,
    /// Inputs evaluated.
    pub n_inputs: usize,
    /// Faces in the gallery.
    pub n_gallery: usize,
    /// Real faces per group in the reference pool.
    pub reference_per_group: Vec<usize>,
    /// The age groups' labels.
    pub groups: Vec<String>,
    /// The methods' names.
    pub methods: Vec<String>,
    /// The second age judge (`"face-api"`), `None` when it was not run.
    #[serde(default)]
    pub judge: Option<String>,
    /// Per method, per target group then overall.
    pub rows: Vec<Row>,
    /// Real photos of one person across groups (FG-NET; empty without
    /// people in the data).
    #[serde(default)]
    pub same_person_pairs: Vec<SamePersonPair>,
}

/// Rounds to 6 decimals so that the file does not show float noise.
fn round6(v: Option<f64>) -> Option<f64> {
    v.map(|x| (x * 1e6).round() / 1e6)
}

impl MetricsFile {
    /// The file's content for `result` run with `settings`.
    pub fn new(result: &EvalResult, settings: serde_json::Value) -> Self {
        let rows = result
            .rows
            .iter()
            .map(|r| Row {
                detection_rate: round6(r.detection_rate),
                identity_l2: round6(r.identity_l2),
                verification_rate: round6(r.verification_rate),
                nearest_real_l2: round6(r.nearest_real_l2),
                age_accuracy: round6(r.age_accuracy),
                age_mae: round6(r.age_mae),
                judge_age_accuracy: round6(r.judge_age_accuracy),
                judge_age_mae: round6(r.judge_age_mae),
                gender_kept: round6(r.gender_kept),
                teacher_age_accuracy: round6(r.teacher_age_accuracy),
                teacher_gender_kept: round6(r.teacher_gender_kept),
                frechet: round6(r.frechet),
                ..r.clone()
            })
            .collect();
        MetricsFile {
            settings,
            n_inputs: result.n_inputs,
            n_gallery: result.n_gallery,
            reference_per_group: result.reference_per_group.clone(),
            groups: result.groups.clone(),
            methods: result.methods.clone(),
            judge: result.judge.clone(),
            rows,
            same_person_pairs: result
                .same_person_pairs
                .iter()
                .map(|p| SamePersonPair {
                    mean_l2: round6(Some(p.mean_l2)).unwrap_or(p.mean_l2),
                    verified: round6(Some(p.verified)).unwrap_or(p.verified),
                    ..p.clone()
                })
                .collect(),
        }
    }
}

fn cell(v: Option<f64>, pct: bool) -> String {
    match v {
        None => "–".into(),
        Some(x) if pct => format!("{:.1}%", 100.0 * x),
        Some(x) => format!("{x:.3}"),
    }
}

/// The metrics plotted, as (file stem, title, accessor, axis maximum).
type Metric = (
    &'static str,
    &'static str,
    fn(&Row) -> Option<f64>,
    Option<f64>,
);

/// Every metric charted (those without a value, such as the second age
/// judge's when it was not run, are skipped).
pub const METRICS: [Metric; 10] = [
    (
        "detection_rate",
        "Face detection rate (MTCNN)",
        |r| r.detection_rate,
        Some(1.0),
    ),
    (
        "identity_l2",
        "Identity: L2 to the input",
        |r| r.identity_l2,
        None,
    ),
    (
        "verification_rate",
        "Verification rate at 0.6",
        |r| r.verification_rate,
        Some(1.0),
    ),
    (
        "nearest_real_l2",
        "L2 to the real photo nearest the target age",
        |r| r.nearest_real_l2,
        None,
    ),
    (
        "age_accuracy",
        "Age-group accuracy",
        |r| r.age_accuracy,
        Some(1.0),
    ),
    (
        "age_mae",
        "Age MAE to the group centre (years)",
        |r| r.age_mae,
        None,
    ),
    (
        "age_accuracy_face_api",
        "Age-group accuracy (face-api)",
        |r| r.judge_age_accuracy,
        Some(1.0),
    ),
    (
        "age_mae_face_api",
        "Age MAE to the group centre, face-api (years)",
        |r| r.judge_age_mae,
        None,
    ),
    (
        "gender_kept_face_api",
        "Gender kept, face-api",
        |r| r.gender_kept,
        Some(1.0),
    ),
    (
        "frechet",
        "Identity-feature Frechet distance (not FID)",
        |r| r.frechet,
        None,
    ),
];

/// The Markdown table of `rows`. The age columns are dlib's age
/// estimator's; when `judge` names a second age judge, its age-group
/// accuracy and MAE follow them; when a row has a training critic's reading
/// ([`Row::teacher_age_accuracy`]), a column for it comes last, and after
/// it one for a training gender critic's ([`Row::teacher_gender_kept`]).
pub fn markdown_table(rows: &[Row], judge: Option<&str>) -> String {
    let taught = rows.iter().any(|r| r.teacher_age_accuracy.is_some());
    let gender_taught = rows.iter().any(|r| r.teacher_gender_kept.is_some());
    let mut s = String::new();
    s += "| target | method | n | detection | identity L2 ↓ | verif. @0.6 ↑ | L2 to nearest-age real photo ↓ | age-group acc. (dlib) ↑ | age MAE to centre (dlib) ↓ |";
    if let Some(j) = judge {
        let _ = write!(
            s,
            " age-group acc. ({j}) ↑ | age MAE to centre ({j}) ↓ | gender kept ({j}) ↑ |"
        );
    }
    s += " Fréchet (id. features) ↓ |";
    if taught {
        s += " target read by the training critic (not a judge) |";
    }
    if gender_taught {
        s += " gender kept by the training gender critic (not a judge) |";
    }
    s += "\n|---|---|---:|---:|---:|---:|---:|---:|---:|";
    if judge.is_some() {
        s += "---:|---:|---:|";
    }
    s += "---:|";
    if taught {
        s += "---:|";
    }
    if gender_taught {
        s += "---:|";
    }
    s += "\n";
    for r in rows {
        let judged = match judge {
            Some(_) => format!(
                " {} | {} | {} |",
                cell(r.judge_age_accuracy, true),
                cell(r.judge_age_mae, false),
                cell(r.gender_kept, true)
            ),
            None => String::new(),
        };
        let mut teacher = if taught {
            format!(" {} |", cell(r.teacher_age_accuracy, true))
        } else {
            String::new()
        };
        if gender_taught {
            let _ = write!(teacher, " {} |", cell(r.teacher_gender_kept, true));
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |{judged} {} |{teacher}",
            r.group,
            r.method,
            r.n,
            cell(r.detection_rate, true),
            cell(r.identity_l2, false),
            cell(r.verification_rate, true),
            match r.nearest_real_l2 {
                Some(_) => format!(
                    "{} (n={})",
                    cell(r.nearest_real_l2, false),
                    r.n_nearest_real
                ),
                None => "–".into(),
            },
            cell(r.age_accuracy, true),
            cell(r.age_mae, false),
            match r.frechet {
                Some(_) => format!("{} (real n={})", cell(r.frechet, false), r.n_real),
                None => "–".into(),
            },
        );
    }
    s
}

/// Rows ordered by target group, then method (the order of the report).
pub fn rows_by_group(result: &EvalResult) -> Vec<Row> {
    let mut order: Vec<RowGroup> = result.groups.iter().cloned().map(RowGroup::Group).collect();
    order.push(RowGroup::Overall);
    let mut out = Vec::new();
    for g in &order {
        for m in &result.methods {
            if let Some(r) = result.rows.iter().find(|r| &r.group == g && &r.method == m) {
                out.push(r.clone());
            }
        }
    }
    out
}

/// The methods and metrics explained, for the report of a FaceGAN
/// evaluation at `size` px.
pub fn facegan_notes(size: u32) -> String {
    use crate::features::{DETECT_MIN_FACE, DETECT_SIZE};
    format!(
        "Every input is rendered at every target group by each method: the generator(s) under evaluation, \
         **copy input** (the output is the input: perfect identity, no ageing) and **random real \
         face** (a seeded real face of the target group, never the input photo nor the same \
         person: right age, wrong identity; with a UTKFace reference it draws from faces apart \
         from those the Fréchet distance compares with, so that its Fréchet distance is that of \
         two real samples); where the data names people (FG-NET), also **same person, real \
         photo** (the person's own photo whose age is in the target group, nearest its centre; \
         rows only where one exists: what a perfect ageing would give, so its identity columns \
         are what real ageing costs by the same judge). Outputs are \
         quantised to 8 bits like saved images.\n\n\
         - detection: MTCNN (min face {DETECT_MIN_FACE} px) finds at least one face in the output \
         upsampled (bilinear) from {size} px to {DETECT_SIZE} px — MTCNN cannot find faces in a \
         {size} px chip reliably;\n\
         - identity: L2 distance between dlib's 128-D embeddings of output and input, and the \
         fraction below dlib's 0.6 threshold; on FG-NET also the distance to the same person's \
         real photo (not the input) whose age is nearest the target group's centre;\n\
         - age: dlib's age estimator on the output; accuracy = its group is the target, MAE to the \
         group's centre (50+: 54.5);\n\
         - Fréchet: {FRECHET_LABEL}, between the embeddings of a method's outputs at a group and \
         those of the real reference faces of that group."
    )
}

/// The second age judge explained, for the notes of a report; with
/// `missing` (why it was not run, naming the file) a line saying that its
/// columns are left out instead.
pub fn age_judge_note(missing: Option<&str>) -> String {
    match missing {
        Some(why) => format!("- age (face-api): not measured, {why}."),
        None => "- age (face-api): a second age judge, face-api's age-gender network \
                 (`@vladmandic/face-api` 1.7.15 AgeGenderNet, TinyXception) on the face box its \
                 detector draws on a UTKFace-framed chip; same accuracy and MAE. It was trained on \
                 80% of UTKFace and of FG-NET (among other sets), so on real photos of those sets it \
                 partly sees its training data; its error on UTKFace is about 5 years (dlib's: about \
                 6).\n- gender kept (face-api): the share of outputs whose gender, as the same network \
                 reads it (female probability above or below 0.5), is the one it reads in the input, \
                 over the inputs aged 20 or more (a child's gender reads close to a coin toss at \
                 64 px): a woman given a moustache, or a man a woman's face, counts against it. \
                 Copying scores 100%, a random real face about 50%."
            .to_string(),
    }
}

/// The file names of the sample sheets of `result`: `samples.png` when one
/// method renders images, else `samples-<method>.png` for each (the name
/// lower-cased, anything but letters and digits turned into `-`; the
/// method's position instead where that leaves nothing or repeats a name).
pub fn sample_sheet_files(result: &EvalResult) -> Vec<String> {
    if result.sheets.len() == 1 {
        return vec!["samples.png".into()];
    }
    let mut seen = std::collections::HashSet::new();
    result
        .sheets
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let slug: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            let slug = slug.trim_matches('-');
            let file = format!("samples-{slug}.png");
            if slug.is_empty() || !seen.insert(file.clone()) {
                format!("samples-{}.png", i + 1)
            } else {
                file
            }
        })
        .collect()
}

/// Writes `report.md`, `metrics.json`, `plot_<metric>.png` and the sample
/// sheets (see [`sample_sheet_files`]) into `out` (created if needed). `title` heads the report,
/// `notes` (Markdown) follows the settings, `wall_s` is the total time.
pub fn write_report(
    out: &Path,
    title: &str,
    result: &EvalResult,
    settings: serde_json::Value,
    notes: &str,
    wall_s: f64,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating", out, e))?;
    let metrics = MetricsFile::new(result, settings.clone());
    io::save_json(out.join("metrics.json"), &metrics)?;
    let mut clusters = result.groups.clone();
    clusters.push("all".into());
    let mut cluster_rows: Vec<RowGroup> =
        result.groups.iter().cloned().map(RowGroup::Group).collect();
    cluster_rows.push(RowGroup::Overall);
    let mut charts = Vec::new();
    for (stem, name, get, y_max) in METRICS {
        let values: Vec<Vec<Option<f64>>> = result
            .methods
            .iter()
            .map(|m| {
                cluster_rows
                    .iter()
                    .map(|g| {
                        result
                            .rows
                            .iter()
                            .find(|r| &r.method == m && &r.group == g)
                            .and_then(get)
                    })
                    .collect()
            })
            .collect();
        if values.iter().flatten().all(Option::is_none) {
            continue;
        }
        let img = plot::bar_chart(name, &clusters, &result.methods, &values, y_max)?;
        let file = format!("plot_{stem}.png");
        agesynth_data::draw::save_png(out.join(&file), &img)?;
        charts.push((name, file));
    }
    let sheet_files = sample_sheet_files(result);
    for ((_, sheet), file) in result.sheets.iter().zip(&sheet_files) {
        agesynth_data::draw::save_png(out.join(file), sheet)?;
    }
    let t = &result.timings;
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n");
    let _ = writeln!(s, "## Settings\n");
    if let Some(obj) = settings.as_object() {
        for (k, v) in obj {
            let _ = writeln!(s, "- {k}: {}", v.to_string().trim_matches('"'));
        }
    }
    let _ = writeln!(
        s,
        "- inputs: {} ({} faces loaded in all); real reference faces per group: {}",
        result.n_inputs,
        result.n_gallery,
        result
            .groups
            .iter()
            .zip(&result.reference_per_group)
            .map(|(g, n)| format!("{g}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "- wall time: {wall_s:.1} s (loading {:.1} s, generator {:.1} s, embedder {:.1} s, age estimator {:.1} s, age-gender judge {:.1} s, detection {:.1} s)",
        t.load_s, t.generate_s, t.embed_s, t.age_s, t.age_gender_s, t.detect_s
    );
    let _ = writeln!(s, "\n{notes}\n");
    let _ = writeln!(s, "## Results\n");
    let rows = rows_by_group(result);
    s += &markdown_table(&rows, result.judge.as_deref());
    if rows.iter().any(|r| r.teacher_age_accuracy.is_some()) {
        let _ = writeln!(
            s,
            "\nLast column: the share of images in which a training critic (an age classifier a \
             generator learnt from, given to the evaluation for comparison only) reads the target \
             group; for a real face of that group (random real face) it is the critic's own \
             accuracy. A generator whose outputs it reads at the target far more often than the \
             judges do, and more often than real faces of that age, has learnt to satisfy its \
             teacher rather than to draw the age."
        );
    }
    if rows.iter().any(|r| r.teacher_gender_kept.is_some()) {
        let _ = writeln!(
            s,
            "\nGender kept by the training gender critic: the gender-kept share as a gender \
             classifier a generator learnt from (given to the evaluation for comparison only) \
             reads it, on the same inputs. Where it is far above the judge's, the generator \
             satisfies its teacher, or the teacher does not see what the judge reads as a change \
             of sex."
        );
    }
    let _ = writeln!(
        s,
        "\nFréchet: {FRECHET_LABEL}; rates in %, distances in dlib embedding units (same person below {:.1}).",
        0.6
    );
    if !result.same_person_pairs.is_empty() {
        s += &same_person_table(&result.groups, &result.same_person_pairs);
    }
    let _ = writeln!(s, "\n## Plots\n");
    for (name, file) in &charts {
        let _ = writeln!(s, "![{name}]({file})\n");
    }
    if !result.sheets.is_empty() {
        let _ = writeln!(
            s,
            "## Samples\n\nEach row: the input, then the output at every target group."
        );
        for ((name, _), file) in result.sheets.iter().zip(&sheet_files) {
            if result.sheets.len() > 1 {
                let _ = writeln!(s, "\n### {name}");
            }
            let _ = writeln!(s, "\n![samples of {name}]({file})");
        }
    }
    io::atomic_write_bytes(out.join("report.md"), s.as_bytes())
}

/// The report's section on real ageing: for each pair of groups, the
/// judge's mean distance between two real photos of one person and the
/// share verified, as a matrix (younger group in the rows).
pub(crate) fn same_person_table(groups: &[String], pairs: &[SamePersonPair]) -> String {
    let mut s = String::from(
        "\n## Real ageing: one person's photos across groups\n\n\
         For every two real photos of one person (the data names its people), dlib's L2 distance \
         between them by the groups their ages fall in: the mean, the share verified as one \
         person (below 0.6) and the pairs (people). It is what time does to the identity judge, \
         the scale on which a generator's identity columns are read.\n\n|  |",
    );
    for g in groups {
        let _ = write!(s, " {g} |");
    }
    s += "\n|---|";
    s += &"---:|".repeat(groups.len());
    s += "\n";
    for a in groups {
        let _ = write!(s, "| **{a}** |");
        for b in groups {
            let p = pairs.iter().find(|p| &p.from == a && &p.to == b);
            match p {
                Some(p) => {
                    let _ = write!(
                        s,
                        " {:.3}, {:.0}% ({}, {}) |",
                        p.mean_l2,
                        100.0 * p.verified,
                        p.pairs,
                        p.people
                    );
                }
                None => s += " |",
            }
        }
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_person_table_puts_each_pair_in_its_cell() {
        let groups: Vec<String> = ["0-9", "10-19"].iter().map(|s| s.to_string()).collect();
        let pairs = vec![SamePersonPair {
            from: "0-9".into(),
            to: "10-19".into(),
            people: 2,
            pairs: 5,
            mean_l2: 0.55,
            verified: 0.6,
        }];
        let t = same_person_table(&groups, &pairs);
        assert!(t.contains("| **0-9** | | 0.550, 60% (5, 2) |"), "{t}");
        assert!(t.contains("| **10-19** | | |"), "{t}");
    }

    fn row(judged: bool) -> Row {
        Row {
            method: "FaceGAN".into(),
            group: "20-29".into(),
            n: 3,
            detection_rate: Some(1.0),
            identity_l2: Some(0.4),
            verification_rate: Some(1.0),
            nearest_real_l2: None,
            n_nearest_real: 0,
            age_accuracy: Some(0.5),
            age_mae: Some(4.0),
            judge_age_accuracy: judged.then_some(0.25),
            judge_age_mae: judged.then_some(6.5),
            gender_kept: judged.then_some(0.75),
            teacher_age_accuracy: None,
            teacher_gender_kept: None,
            frechet: None,
            n_real: 0,
        }
    }

    #[test]
    fn the_second_judge_adds_three_columns_beside_dlibs() {
        let with = markdown_table(&[row(true)], Some("face-api"));
        let header = with.lines().next().unwrap();
        assert!(header.contains("age-group acc. (dlib) ↑ | age MAE to centre (dlib) ↓ | age-group acc. (face-api) ↑ | age MAE to centre (face-api) ↓ | gender kept (face-api) ↑ |"), "{header}");
        let line = with.lines().nth(2).unwrap();
        assert!(
            line.contains("| 50.0% | 4.000 | 25.0% | 6.500 | 75.0% |"),
            "{line}"
        );
        // Every line has the same number of cells.
        let cells = |l: &str| l.matches('|').count();
        assert!(with.lines().all(|l| cells(l) == cells(header)), "{with}");
        let without = markdown_table(&[row(false)], None);
        assert!(!without.contains("face-api"), "{without}");
        assert!(
            without.lines().all(|l| cells(l) == cells(header) - 3),
            "{without}"
        );
        assert!(age_judge_note(Some("x.safetensors not found")).contains("not measured"));
        assert!(!with.contains("training critic"), "{with}");
    }

    #[test]
    fn a_training_critics_reading_comes_last_and_only_when_measured() {
        let mut taught = row(true);
        taught.teacher_age_accuracy = Some(0.875);
        let table = markdown_table(&[taught, row(true)], Some("face-api"));
        let header = table.lines().next().unwrap();
        assert!(
            header.ends_with("| target read by the training critic (not a judge) |"),
            "{header}"
        );
        let cells = |l: &str| l.matches('|').count();
        assert!(table.lines().all(|l| cells(l) == cells(header)), "{table}");
        assert!(
            table.lines().nth(2).unwrap().ends_with("| 87.5% |"),
            "{table}"
        );
        assert!(table.lines().nth(3).unwrap().ends_with("| – |"), "{table}");
        // A gender teacher's column comes after the age teacher's.
        let mut both = row(true);
        both.teacher_age_accuracy = Some(0.875);
        both.teacher_gender_kept = Some(0.625);
        let table = markdown_table(&[both, row(true)], Some("face-api"));
        let header = table.lines().next().unwrap();
        assert!(
            header.ends_with(
                "| target read by the training critic (not a judge) | gender kept by the training gender critic (not a judge) |"
            ),
            "{header}"
        );
        assert!(table.lines().all(|l| cells(l) == cells(header)), "{table}");
        assert!(
            table.lines().nth(2).unwrap().ends_with("| 87.5% | 62.5% |"),
            "{table}"
        );
    }
}
