//! What a dataset folder holds: the numbers behind `agesynth data stats`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    str::FromStr,
};

use agesynth_core::{AgeBins, Error, FaceDataset, Gender, Result};
use serde::{Deserialize, Serialize};

use crate::{
    csv_folder, scan,
    transform::{self, DecodeLimits},
    utkface, CsvFolder, FgNet, Skipped, UtkFace,
};

/// The kinds of dataset folder agesynth reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// UTKFace chips named `AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`.
    UtkFace,
    /// FG-NET: `images/` and `points/`.
    FgNet,
    /// A folder of images with a CSV of `file,age`.
    Csv,
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DatasetKind::UtkFace => "utkface",
            DatasetKind::FgNet => "fgnet",
            DatasetKind::Csv => "csv",
        })
    }
}

impl FromStr for DatasetKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "utkface" | "utk" => Ok(DatasetKind::UtkFace),
            "fgnet" => Ok(DatasetKind::FgNet),
            "csv" => Ok(DatasetKind::Csv),
            _ => Err(Error::Config(format!(
                "unknown dataset kind `{s}` (expected utkface, fgnet or csv)"
            ))),
        }
    }
}

impl DatasetKind {
    /// Tells the kind of a folder: `images/` + `points/` is FG-NET, a
    /// `labels.csv` (or a single `.csv`) a CSV folder, and files named like
    /// UTKFace chips UTKFace.
    pub fn detect(dir: &Path) -> Result<DatasetKind> {
        if !dir.is_dir() {
            return Err(Error::dataset(dir, "not a folder"));
        }
        if dir.join("images").is_dir() && dir.join("points").is_dir() {
            return Ok(DatasetKind::FgNet);
        }
        if csv_folder::find_csv(dir).is_ok() {
            return Ok(DatasetKind::Csv);
        }
        let files = scan::list_files(dir)?;
        let utk = files
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .filter(|n| utkface::parse_name(n).is_ok_and(|p| p.datetime.is_some()))
            .count();
        if utk > 0 {
            return Ok(DatasetKind::UtkFace);
        }
        Err(Error::dataset(
            dir,
            "cannot tell the dataset kind: no UTKFace names, no images/ + points/ (FG-NET), \
             no .csv of labels",
        ))
    }
}

/// An opened dataset of any kind.
#[derive(Clone, Debug)]
pub enum AnyDataset {
    /// UTKFace.
    UtkFace(UtkFace),
    /// FG-NET.
    FgNet(FgNet),
    /// CSV folder.
    Csv(CsvFolder),
}

impl AnyDataset {
    /// Opens `dir` as `kind`, or as the detected kind when `None`.
    pub fn open(dir: &Path, kind: Option<DatasetKind>) -> Result<AnyDataset> {
        let kind = match kind {
            Some(k) => k,
            None => DatasetKind::detect(dir)?,
        };
        Ok(match kind {
            DatasetKind::UtkFace => AnyDataset::UtkFace(UtkFace::open(dir)?),
            DatasetKind::FgNet => AnyDataset::FgNet(FgNet::open(dir)?),
            DatasetKind::Csv => AnyDataset::Csv(CsvFolder::open(dir)?),
        })
    }

    /// Its kind.
    pub fn kind(&self) -> DatasetKind {
        match self {
            AnyDataset::UtkFace(_) => DatasetKind::UtkFace,
            AnyDataset::FgNet(_) => DatasetKind::FgNet,
            AnyDataset::Csv(_) => DatasetKind::Csv,
        }
    }

    /// As a [`FaceDataset`].
    pub fn as_dataset(&self) -> &dyn FaceDataset {
        match self {
            AnyDataset::UtkFace(d) => d,
            AnyDataset::FgNet(d) => d,
            AnyDataset::Csv(d) => d,
        }
    }

    /// Files left out, with reasons.
    pub fn skipped(&self) -> &[Skipped] {
        match self {
            AnyDataset::UtkFace(d) => d.skipped(),
            AnyDataset::FgNet(d) => d.skipped(),
            AnyDataset::Csv(d) => d.skipped(),
        }
    }
}

/// Faces in one age group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCount {
    /// The group's label (`20-29`, `50+`).
    pub group: String,
    /// Faces in it.
    pub count: usize,
}

/// Faces per gender label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenderCounts {
    /// Labelled male.
    pub male: usize,
    /// Labelled female.
    pub female: usize,
    /// Without a gender label.
    pub unknown: usize,
}

/// What a dataset folder holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// The folder.
    pub root: PathBuf,
    /// Its kind.
    pub kind: DatasetKind,
    /// Faces kept.
    pub faces: usize,
    /// Files (or CSV rows) left out.
    pub skipped_count: usize,
    /// Distinct subjects, for datasets that name them (FG-NET).
    pub subjects: Option<usize>,
    /// Youngest, mean and oldest age; `None` for an empty dataset.
    pub age_min: Option<f32>,
    /// Mean age.
    pub age_mean: Option<f32>,
    /// Oldest age.
    pub age_max: Option<f32>,
    /// Faces per age group, youngest first.
    pub age_groups: Vec<GroupCount>,
    /// Faces per gender.
    pub genders: GenderCounts,
    /// Faces kept although their names were odd (UTKFace), per oddity.
    pub quirks: BTreeMap<String, usize>,
    /// Every file left out, with its reason.
    pub skipped: Vec<Skipped>,
}

impl DatasetStats {
    /// Counts the faces of an opened dataset by `bins`. Every image file is
    /// checked without decoding its pixels ([`transform::check_file`]: a
    /// readable JPEG or PNG header within the decode limits, no truncated
    /// JPEG, no image under the chip minimum): one that fails is not
    /// counted as a face but listed as skipped with the reason.
    pub fn of(root: &Path, data: &AnyDataset, bins: &AgeBins) -> Result<DatasetStats> {
        use rayon::prelude::*;
        let ds = data.as_dataset();
        let limits = match data {
            AnyDataset::FgNet(_) => DecodeLimits::default(),
            _ => DecodeLimits::chips(),
        };
        let unusable: Vec<Option<Skipped>> = (0..ds.len())
            .into_par_iter()
            .map(|i| {
                let m = ds.meta(i)?;
                transform::check_file(&m.path, &limits)
                    .err()
                    .map(|e| Skipped {
                        path: m.path.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect();
        let mut skipped: Vec<Skipped> = data.skipped().to_vec();
        let mut groups = vec![0usize; bins.len()];
        let mut genders = GenderCounts::default();
        let mut subjects = std::collections::BTreeSet::new();
        let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
        let mut n = 0usize;
        for (i, bad) in unusable.into_iter().enumerate() {
            if let Some(b) = bad {
                skipped.push(b);
                continue;
            }
            let Some(m) = ds.meta(i) else { continue };
            n += 1;
            groups[bins.group(m.age)?.0] += 1;
            match m.gender {
                Some(Gender::Male) => genders.male += 1,
                Some(Gender::Female) => genders.female += 1,
                None => genders.unknown += 1,
            }
            if let Some(s) = m.subject {
                subjects.insert(s);
            }
            lo = lo.min(m.age);
            hi = hi.max(m.age);
            sum += m.age as f64;
        }
        let mut quirks = BTreeMap::new();
        if let AnyDataset::UtkFace(u) = data {
            for (_, qs) in u.quirks() {
                for q in qs {
                    *quirks.entry(q.to_string()).or_insert(0) += 1;
                }
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(DatasetStats {
            root: root.to_path_buf(),
            kind: data.kind(),
            faces: n,
            skipped_count: skipped.len(),
            subjects: (!subjects.is_empty()).then_some(subjects.len()),
            age_min: (n > 0).then_some(lo),
            age_mean: (n > 0).then_some((sum / n as f64) as f32),
            age_max: (n > 0).then_some(hi),
            age_groups: bins
                .groups()
                .map(|g| GroupCount {
                    group: bins.label(g),
                    count: groups[g.0],
                })
                .collect(),
            genders,
            quirks,
            skipped,
        })
    }

    /// Opens `dir` (as `kind`, or detected) and counts its faces.
    pub fn scan(dir: &Path, kind: Option<DatasetKind>, bins: &AgeBins) -> Result<DatasetStats> {
        let data = AnyDataset::open(dir, kind)?;
        Self::of(dir, &data, bins)
    }
}
