//! A plain folder of face images labelled by a CSV file of `file,age`: how
//! users bring their own data.
//!
//! The CSV may start with a header naming its columns (`file` or `path`,
//! `age`, and optionally `gender` as `m`/`f`/`male`/`female`/`0`/`1`);
//! without a header the first column is the file and the second the age.
//! Files are relative to the CSV's folder. Fields may be quoted
//! (`"a, b.jpg",31`). Rows that cannot be used are listed with their line
//! number and reason, never a panic.
//!
//! Images are expected to be framed faces (like UTKFace chips); they load
//! centre-cropped to a square and resized.

use std::path::{Path, PathBuf};

use agesynth_core::{Error, FaceDataset, FaceImage, FaceMeta, Gender, Result};

use crate::{
    transform::{self, DecodeLimits},
    Skipped,
};

/// The largest labels CSV read (64 MiB: a million rows).
pub const MAX_CSV_BYTES: u64 = 64 << 20;

/// Splits one CSV line into fields (RFC 4180 quoting within the line:
/// `"` doubles as `""` inside a quoted field). `None` for an unterminated
/// quote.
pub fn split_csv_line(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => quoted = false,
                _ => cur.push(c),
            }
        } else {
            match c {
                '"' if at_start => {
                    quoted = true;
                    at_start = false;
                    // Quoted fields keep leading spaces only inside quotes.
                    cur.clear();
                }
                ',' => {
                    fields.push(std::mem::take(&mut cur).trim().to_string());
                    at_start = true;
                }
                c if c.is_whitespace() && at_start => {}
                _ => {
                    cur.push(c);
                    at_start = false;
                }
            }
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur.trim().to_string());
    Some(fields)
}

fn parse_gender(s: &str) -> Option<Gender> {
    match s.to_ascii_lowercase().as_str() {
        "0" | "m" | "male" => Some(Gender::Male),
        "1" | "f" | "female" => Some(Gender::Female),
        _ => None,
    }
}

/// A folder of face images with a CSV of labels.
#[derive(Clone, Debug)]
pub struct CsvFolder {
    csv: PathBuf,
    metas: Vec<FaceMeta>,
    skipped: Vec<Skipped>,
    limits: DecodeLimits,
}

impl CsvFolder {
    /// Opens a CSV file, or a folder holding exactly one `.csv` file (or one
    /// named `labels.csv`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let csv = if path.is_dir() {
            find_csv(path)?
        } else {
            path.to_path_buf()
        };
        let bytes = agesynth_core::io::read_limited(&csv, MAX_CSV_BYTES, "a labels CSV")?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::dataset(&csv, "not a text file (invalid UTF-8)"))?;
        let dir = csv.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}')))
            .filter(|(_, l)| !l.trim().is_empty());
        let mut metas = Vec::new();
        let mut skipped = Vec::new();
        let (mut file_col, mut age_col, mut gender_col) = (0usize, 1usize, None);
        let mut pending = None;
        if let Some((n, first)) = lines.next() {
            let fields = split_csv_line(first)
                .ok_or_else(|| Error::dataset(&csv, format!("line {n}: unterminated quote")))?;
            let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            let is_header = fields.get(1).is_some_and(|a| a.parse::<f32>().is_err())
                && lower.iter().any(|f| f == "age");
            if is_header {
                let find = |names: &[&str]| lower.iter().position(|f| names.contains(&f.as_str()));
                file_col = find(&["file", "path", "filename", "image"]).ok_or_else(|| {
                    Error::dataset(&csv, "header has no `file` (or `path`) column")
                })?;
                age_col = find(&["age"]).unwrap_or(1);
                gender_col = find(&["gender", "sex"]);
            } else {
                pending = Some((n, first));
            }
        }
        for (n, line) in pending.into_iter().chain(lines) {
            let row = |reason: String| Skipped {
                path: csv.clone(),
                reason: format!("line {n}: {reason}"),
            };
            let Some(fields) = split_csv_line(line) else {
                skipped.push(row("unterminated quote".into()));
                continue;
            };
            let file = fields.get(file_col).map(String::as_str).unwrap_or("");
            if file.is_empty() {
                skipped.push(row("no file name".into()));
                continue;
            }
            let age_s = fields.get(age_col).map(String::as_str).unwrap_or("");
            let age = match age_s.parse::<f32>() {
                Ok(a) if a.is_finite() && (0.0..=130.0).contains(&a) => a,
                _ => {
                    skipped.push(row(format!("`{file}`: no valid age (`{age_s}`)")));
                    continue;
                }
            };
            let path = dir.join(file);
            if !path.is_file() {
                skipped.push(Skipped {
                    path,
                    reason: format!("line {n}: file not found"),
                });
                continue;
            }
            let gender = gender_col
                .and_then(|c| fields.get(c))
                .and_then(|g| parse_gender(g));
            metas.push(FaceMeta {
                path,
                age,
                gender,
                race: None,
                subject: None,
            });
        }
        Ok(CsvFolder {
            csv,
            metas,
            skipped,
            limits: DecodeLimits::chips(),
        })
    }

    /// The same dataset with other decoding limits.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The CSV file read.
    pub fn csv_path(&self) -> &Path {
        &self.csv
    }

    /// Rows and files left out, with reasons.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Labels of every face.
    pub fn metas(&self) -> &[FaceMeta] {
        &self.metas
    }
}

/// The CSV file of a folder: `labels.csv`, else the only `.csv` file.
pub fn find_csv(dir: &Path) -> Result<PathBuf> {
    let labels = dir.join("labels.csv");
    if labels.is_file() {
        return Ok(labels);
    }
    let csvs: Vec<PathBuf> = crate::scan::list_files(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
        .collect();
    match csvs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::dataset(dir, "no .csv file of `file,age` labels")),
        _ => Err(Error::dataset(
            dir,
            format!(
                "{} .csv files and none named labels.csv: name the one to use",
                csvs.len()
            ),
        )),
    }
}

impl FaceDataset for CsvFolder {
    fn len(&self) -> usize {
        self.metas.len()
    }

    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        self.metas.get(index)
    }

    fn load(&self, index: usize, size: u32) -> Result<FaceImage> {
        let meta = self.metas.get(index).ok_or_else(|| {
            Error::InvalidInput(format!(
                "face {index} of {} in {}",
                self.metas.len(),
                self.csv.display()
            ))
        })?;
        let img = transform::decode_file(&meta.path, &self.limits)?;
        transform::square(&img, size).map_err(|e| Error::image(&meta.path, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines() {
        let cases: &[(&str, Option<Vec<&str>>)] = &[
            ("a.jpg,31", Some(vec!["a.jpg", "31"])),
            (" a.jpg , 31 ", Some(vec!["a.jpg", "31"])),
            ("\"a, b.jpg\",31", Some(vec!["a, b.jpg", "31"])),
            (
                "\"say \"\"hi\"\".jpg\",2,f",
                Some(vec!["say \"hi\".jpg", "2", "f"]),
            ),
            ("a.jpg,", Some(vec!["a.jpg", ""])),
            ("\"open.jpg,3", None),
        ];
        for (line, want) in cases {
            let got = split_csv_line(line);
            let want: Option<Vec<String>> = want
                .as_ref()
                .map(|v| v.iter().map(|s| s.to_string()).collect());
            assert_eq!(got, want, "{line}");
        }
    }
}
