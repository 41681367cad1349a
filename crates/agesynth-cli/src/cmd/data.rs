//! `agesynth data …`: dataset inspection.

use std::{path::PathBuf, process::ExitCode};

use agesynth_core::AgeBins;
use agesynth_data::{DatasetKind, DatasetStats};
use anyhow::Context;
use clap::Subcommand;

/// Skipped files listed in the table (all of them are in `--json`).
const MAX_SKIPPED_SHOWN: usize = 20;

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Faces per age group and gender, and the files left out with reasons.
    Stats {
        /// The dataset folder (UTKFace chips, FG-NET with images/ and
        /// points/, or a folder with a CSV of `file,age`).
        dir: PathBuf,
        /// The dataset kind, instead of detecting it: utkface, fgnet or csv.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<DatasetKind>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

fn parse_kind(s: &str) -> Result<DatasetKind, String> {
    s.parse().map_err(|e: agesynth_core::Error| e.to_string())
}

/// Runs a data command.
pub fn run(cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Stats { dir, kind, json } => {
            let stats = DatasetStats::scan(&dir, kind, &AgeBins::default())
                .with_context(|| format!("reading dataset {}", dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", render(&stats));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Rows of cells as a table: numeric columns (counts, shares) right-
/// aligned, text left-aligned, a rule under the header.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = |c: &str| {
        let c = c.trim_end_matches('%');
        c == "-" || c.parse::<f64>().is_ok()
    };
    let right: Vec<bool> = (0..cols)
        .map(|i| i > 0 && rows.iter().all(|r| r.get(i).is_none_or(|c| numeric(c))))
        .collect();
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate().take(cols) {
            if i > 0 {
                s.push_str("  ");
            }
            if right[i] {
                s.push_str(&format!("{c:>w$}", w = width[i]));
            } else {
                s.push_str(&format!("{c:<w$}", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out += &line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
    for r in rows {
        out += &line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

fn pct(n: usize, total: usize) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / total as f64)
    }
}

/// The human-readable report.
fn render(s: &DatasetStats) -> String {
    let mut out = format!("dataset  {} ({})\n", s.root.display(), s.kind);
    out += &format!("faces    {}\n", s.faces);
    out += &format!("skipped  {}\n", s.skipped_count);
    if let Some(n) = s.subjects {
        out += &format!("subjects {n}\n");
    }
    if let (Some(lo), Some(mean), Some(hi)) = (s.age_min, s.age_mean, s.age_max) {
        out += &format!("ages     {lo}-{hi}, mean {mean:.1}\n");
    }
    out += "\n";
    let mut rows: Vec<Vec<String>> = s
        .age_groups
        .iter()
        .map(|g| vec![g.group.clone(), g.count.to_string(), pct(g.count, s.faces)])
        .collect();
    rows.push(vec![
        "total".into(),
        s.faces.to_string(),
        pct(s.faces, s.faces),
    ]);
    out += &table(&["age group", "faces", "share"], &rows);
    out += "\n";
    let g = &s.genders;
    let rows = vec![
        vec!["male".into(), g.male.to_string(), pct(g.male, s.faces)],
        vec![
            "female".into(),
            g.female.to_string(),
            pct(g.female, s.faces),
        ],
        vec![
            "unknown".into(),
            g.unknown.to_string(),
            pct(g.unknown, s.faces),
        ],
    ];
    out += &table(&["gender", "faces", "share"], &rows);
    if !s.quirks.is_empty() {
        out += "\n";
        let rows: Vec<Vec<String>> = s
            .quirks
            .iter()
            .map(|(q, n)| vec![q.clone(), n.to_string()])
            .collect();
        out += &table(&["kept despite an odd name", "faces"], &rows);
    }
    out += "\n";
    if s.skipped.is_empty() {
        out += "no file skipped\n";
    } else {
        let rows: Vec<Vec<String>> = s
            .skipped
            .iter()
            .take(MAX_SKIPPED_SHOWN)
            .map(|k| {
                let name = k
                    .path
                    .strip_prefix(&s.root)
                    .unwrap_or(&k.path)
                    .display()
                    .to_string();
                vec![name, k.reason.clone()]
            })
            .collect();
        out += &table(&["skipped file", "reason"], &rows);
        if s.skipped.len() > MAX_SKIPPED_SHOWN {
            out += &format!(
                "... and {} more (see --json)\n",
                s.skipped.len() - MAX_SKIPPED_SHOWN
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["a", "count"],
            &[
                vec!["long name".into(), "7".into()],
                vec!["x".into(), "12345".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "a          count");
        assert_eq!(lines[1], "---------  -----");
        assert_eq!(lines[2], "long name      7");
        assert_eq!(lines[3], "x          12345");
        // Text columns are left-aligned.
        let t = table(
            &["file", "reason"],
            &[vec!["a.jpg".into(), "no age".into()]],
        );
        assert_eq!(t.lines().nth(2), Some("a.jpg  no age"));
    }

    #[test]
    fn stats_report_counts_groups_and_lists_skipped_files() {
        let dir = std::env::temp_dir().join(format!("agesynth-cli-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let face = agesynth_data::testing::synthetic_face(8, 8, 1);
        for name in [
            "3_0_0_20170109150557335.jpg.chip.jpg",
            "25_1_2_20170109150557336.jpg.chip.jpg",
            "27_1_20170109150557337.jpg.chip.jpg",
            "x_1_2_20170109150557338.jpg.chip.jpg",
        ] {
            agesynth_data::testing::write_jpeg(dir.join(name), &face).unwrap();
        }
        let stats = DatasetStats::scan(&dir, None, &AgeBins::default());
        let _ = std::fs::remove_dir_all(&dir);
        let text = render(&stats.unwrap());
        assert!(
            text.contains("faces    3\n") && text.contains("skipped  1\n"),
            "{text}"
        );
        assert!(text.contains("0-9            1   33.3%"), "{text}");
        assert!(text.contains("20-29          2   66.7%"), "{text}");
        assert!(text.contains("female       2  66.7%"), "{text}");
        assert!(text.contains("race field missing"), "{text}");
        assert!(
            text.contains("x_1_2_20170109150557338.jpg.chip.jpg  no age in the name"),
            "{text}"
        );
    }
}
