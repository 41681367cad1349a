//! UTKFace: aligned 200×200 face chips labelled by their file names,
//! `AGE_GENDER_RACE_DATETIME.jpg.chip.jpg` (gender 0 male, 1 female; race 0
//! White, 1 Black, 2 Asian, 3 Indian, 4 Others).
//!
//! The real set has malformed names. [`parse_name`] keeps every file that
//! still has an age and notes what was odd about it ([`Quirk`]); files
//! without a usable age are left out with a [`SkipReason`], never a panic.

use std::path::{Path, PathBuf};

use agesynth_core::{Error, FaceDataset, FaceImage, FaceMeta, Gender, Result};
use serde::{Deserialize, Serialize};

use crate::{
    scan::{is_image_name, list_files},
    transform::{self, DecodeLimits},
    Skipped,
};

/// Oldest age accepted in a name (UTKFace's oldest is 116).
pub const MAX_AGE: u32 = 130;

/// Something odd about a name that was parsed anyway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quirk {
    /// Three fields: the race is missing (`39_1_20170116174525125.jpg.chip.jpg`).
    MissingRace,
    /// No date-time field.
    MissingDatetime,
    /// No gender field (only an age and a date-time).
    MissingGender,
    /// The `.` before `jpg.chip.jpg` is missing (`..._357jpg.chip.jpg`).
    MalformedExtension,
    /// White space inside the name (`..._657 .jpg.chip.jpg`).
    Whitespace,
    /// The gender field is neither 0 nor 1.
    UnknownGender(String),
    /// The race field is not 0–4.
    UnknownRace(String),
    /// The name does not end in `.jpg.chip.jpg`.
    UnusualSuffix,
    /// More than four `_`-separated fields.
    ExtraFields,
}

impl std::fmt::Display for Quirk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quirk::MissingRace => write!(f, "race field missing"),
            Quirk::MissingDatetime => write!(f, "date-time field missing"),
            Quirk::MissingGender => write!(f, "gender field missing"),
            Quirk::MalformedExtension => {
                write!(f, "malformed extension (`jpg.chip.jpg` without the dot)")
            }
            Quirk::Whitespace => write!(f, "white space in the name"),
            Quirk::UnknownGender(g) => write!(f, "unknown gender code `{g}`"),
            Quirk::UnknownRace(r) => write!(f, "unknown race code `{r}`"),
            Quirk::UnusualSuffix => write!(f, "name does not end in `.jpg.chip.jpg`"),
            Quirk::ExtraFields => write!(f, "more than four fields"),
        }
    }
}

/// Why a file was left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipReason {
    /// The name is not valid UTF-8.
    NotUtf8,
    /// Not a `.jpg`/`.jpeg`/`.png` file.
    NotAnImage,
    /// The first field is not a whole number of years.
    NoAge(String),
    /// The age is above [`MAX_AGE`].
    AgeOutOfRange(u32),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotUtf8 => write!(f, "file name is not UTF-8"),
            SkipReason::NotAnImage => write!(f, "not an image file"),
            SkipReason::NoAge(s) => write!(f, "no age in the name (first field `{s}`)"),
            SkipReason::AgeOutOfRange(a) => write!(f, "age {a} out of range 0-{MAX_AGE}"),
        }
    }
}

/// The labels in a UTKFace file name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtkName {
    /// Age in years.
    pub age: u32,
    /// Gender, when the field is 0 or 1.
    pub gender: Option<Gender>,
    /// Race code 0–4, when present and valid.
    pub race: Option<u8>,
    /// The date-time field as written (17 digits in the real set).
    pub datetime: Option<String>,
    /// What was odd about the name.
    pub quirks: Vec<Quirk>,
}

/// Parses a UTKFace file name (the name only, not a path).
///
/// ```
/// use agesynth_data::utkface::{parse_name, Quirk};
/// let n = parse_name("39_1_20170116174525125.jpg.chip.jpg").unwrap();
/// assert_eq!((n.age, n.race), (39, None));
/// assert_eq!(n.quirks, vec![Quirk::MissingRace]);
/// ```
pub fn parse_name(name: &str) -> Result<UtkName, SkipReason> {
    if !is_image_name(name) {
        return Err(SkipReason::NotAnImage);
    }
    let mut quirks = Vec::new();
    let lower = name.to_ascii_lowercase();
    let stem = if lower.ends_with(".jpg.chip.jpg") {
        &name[..name.len() - ".jpg.chip.jpg".len()]
    } else if lower.ends_with("jpg.chip.jpg") {
        quirks.push(Quirk::MalformedExtension);
        &name[..name.len() - "jpg.chip.jpg".len()]
    } else {
        quirks.push(Quirk::UnusualSuffix);
        // Strip the one extension is_image_name accepted.
        match name.rfind('.') {
            Some(dot) => &name[..dot],
            None => name,
        }
    };
    if stem.chars().any(char::is_whitespace) {
        quirks.push(Quirk::Whitespace);
    }
    let fields: Vec<&str> = stem.split('_').map(str::trim).collect();
    let age_field = fields[0];
    let age: u32 = age_field
        .parse()
        .map_err(|_| SkipReason::NoAge(age_field.to_string()))?;
    if age > MAX_AGE {
        return Err(SkipReason::AgeOutOfRange(age));
    }
    let gender_of = |g: &str, q: &mut Vec<Quirk>| match g {
        "0" => Some(Gender::Male),
        "1" => Some(Gender::Female),
        other => {
            q.push(Quirk::UnknownGender(other.to_string()));
            None
        }
    };
    let race_of = |r: &str, q: &mut Vec<Quirk>| match r.parse::<u8>() {
        Ok(v) if v <= 4 => Some(v),
        _ => {
            q.push(Quirk::UnknownRace(r.to_string()));
            None
        }
    };
    // A date-time is a long run of digits; race and gender are one digit.
    let is_datetime = |s: &str| s.len() > 2 && s.bytes().all(|b| b.is_ascii_digit());
    let (gender, race, datetime) = match &fields[1..] {
        [] => {
            quirks.push(Quirk::MissingGender);
            quirks.push(Quirk::MissingRace);
            quirks.push(Quirk::MissingDatetime);
            (None, None, None)
        }
        [g] if is_datetime(g) => {
            quirks.push(Quirk::MissingGender);
            quirks.push(Quirk::MissingRace);
            (None, None, Some(g.to_string()))
        }
        [g] => {
            quirks.push(Quirk::MissingRace);
            quirks.push(Quirk::MissingDatetime);
            (gender_of(g, &mut quirks), None, None)
        }
        [g, d] if is_datetime(d) => {
            quirks.push(Quirk::MissingRace);
            (gender_of(g, &mut quirks), None, Some(d.to_string()))
        }
        [g, r] => {
            quirks.push(Quirk::MissingDatetime);
            (gender_of(g, &mut quirks), race_of(r, &mut quirks), None)
        }
        [g, r, d, rest @ ..] => {
            if !rest.is_empty() {
                quirks.push(Quirk::ExtraFields);
            }
            (
                gender_of(g, &mut quirks),
                race_of(r, &mut quirks),
                Some(d.to_string()),
            )
        }
    };
    Ok(UtkName {
        age,
        gender,
        race,
        datetime,
        quirks,
    })
}

/// A folder of UTKFace chips.
///
/// Faces load as the chip centre-cropped to a square and resized (area
/// filter) to the requested size; the chips are already aligned.
#[derive(Clone, Debug)]
pub struct UtkFace {
    root: PathBuf,
    metas: Vec<FaceMeta>,
    quirks: Vec<(usize, Vec<Quirk>)>,
    skipped: Vec<Skipped>,
    limits: DecodeLimits,
}

impl UtkFace {
    /// Scans `dir` (not recursively). Every regular file is either a face or
    /// listed in [`UtkFace::skipped`] with its reason. Errors only when the
    /// folder cannot be read.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::dataset(&root, "not a folder"));
        }
        let mut metas = Vec::new();
        let mut quirks = Vec::new();
        let mut skipped = Vec::new();
        for path in list_files(&root)? {
            let name = path.file_name().and_then(|n| n.to_str());
            let parsed = match name {
                Some(n) => parse_name(n),
                None => Err(SkipReason::NotUtf8),
            };
            match parsed {
                Ok(n) => {
                    if !n.quirks.is_empty() {
                        quirks.push((metas.len(), n.quirks));
                    }
                    metas.push(FaceMeta {
                        path,
                        age: n.age as f32,
                        gender: n.gender,
                        race: n.race,
                        subject: None,
                    });
                }
                Err(reason) => skipped.push(Skipped {
                    path,
                    reason: reason.to_string(),
                }),
            }
        }
        Ok(UtkFace {
            root,
            metas,
            quirks,
            skipped,
            limits: DecodeLimits::chips(),
        })
    }

    /// The same dataset with other decoding limits.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Files left out, with reasons.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Faces whose names were odd but kept: (index, quirks).
    pub fn quirks(&self) -> &[(usize, Vec<Quirk>)] {
        &self.quirks
    }

    /// Labels of every face.
    pub fn metas(&self) -> &[FaceMeta] {
        &self.metas
    }
}

impl FaceDataset for UtkFace {
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
                self.root.display()
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
    fn names_table() {
        use Gender::*;
        use Quirk::*;
        // (name, age, gender, race, datetime, quirks)
        #[allow(clippy::type_complexity)]
        let ok: &[(
            &str,
            u32,
            Option<Gender>,
            Option<u8>,
            Option<&str>,
            Vec<Quirk>,
        )] = &[
            (
                "100_0_0_20170112215240346.jpg.chip.jpg",
                100,
                Some(Male),
                Some(0),
                Some("20170112215240346"),
                vec![],
            ),
            (
                "1_1_4_20161221193016140.jpg.chip.jpg",
                1,
                Some(Female),
                Some(4),
                Some("20161221193016140"),
                vec![],
            ),
            (
                "26_1_2_20170116184028385.JPG.CHIP.JPG",
                26,
                Some(Female),
                Some(2),
                Some("20170116184028385"),
                vec![],
            ),
            // The shared README's quirks, verbatim.
            (
                "39_1_20170116174525125.jpg.chip.jpg",
                39,
                Some(Female),
                None,
                Some("20170116174525125"),
                vec![MissingRace],
            ),
            (
                "61_1_20170109142408075.jpg.chip.jpg",
                61,
                Some(Female),
                None,
                Some("20170109142408075"),
                vec![MissingRace],
            ),
            (
                "55_0_0_20170116232725357jpg.chip.jpg",
                55,
                Some(Male),
                Some(0),
                Some("20170116232725357"),
                vec![MalformedExtension],
            ),
            (
                "24_0_1_20170116220224657 .jpg.chip.jpg",
                24,
                Some(Male),
                Some(1),
                Some("20170116220224657"),
                vec![Whitespace],
            ),
            // Other damage that still leaves an age.
            (
                "30_2_1_20170116220224657.jpg.chip.jpg",
                30,
                None,
                Some(1),
                Some("20170116220224657"),
                vec![UnknownGender("2".into())],
            ),
            (
                "30_0_9_20170116220224657.jpg.chip.jpg",
                30,
                Some(Male),
                None,
                Some("20170116220224657"),
                vec![UnknownRace("9".into())],
            ),
            (
                "30_0_x_20170116220224657.jpg.chip.jpg",
                30,
                Some(Male),
                None,
                Some("20170116220224657"),
                vec![UnknownRace("x".into())],
            ),
            (
                "30_0_1.jpg.chip.jpg",
                30,
                Some(Male),
                Some(1),
                None,
                vec![MissingDatetime],
            ),
            (
                "30_1.jpg.chip.jpg",
                30,
                Some(Female),
                None,
                None,
                vec![MissingRace, MissingDatetime],
            ),
            (
                "30.jpg.chip.jpg",
                30,
                None,
                None,
                None,
                vec![MissingGender, MissingRace, MissingDatetime],
            ),
            (
                "30_20170116174525125.jpg.chip.jpg",
                30,
                None,
                None,
                Some("20170116174525125"),
                vec![MissingGender, MissingRace],
            ),
            (
                "30_0_1_2017_extra.jpg.chip.jpg",
                30,
                Some(Male),
                Some(1),
                Some("2017"),
                vec![ExtraFields],
            ),
            (
                "45_0_3_20170119171718392.jpg",
                45,
                Some(Male),
                Some(3),
                Some("20170119171718392"),
                vec![UnusualSuffix],
            ),
            (
                "45_1_3_20170119171718392.png",
                45,
                Some(Female),
                Some(3),
                Some("20170119171718392"),
                vec![UnusualSuffix],
            ),
            (
                "0_0_0_20170110215920045.jpg.chip.jpg",
                0,
                Some(Male),
                Some(0),
                Some("20170110215920045"),
                vec![],
            ),
        ];
        for (name, age, gender, race, dt, quirks) in ok {
            let n = parse_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(n.age, *age, "{name}");
            assert_eq!(n.gender, *gender, "{name}");
            assert_eq!(n.race, *race, "{name}");
            assert_eq!(n.datetime.as_deref(), *dt, "{name}");
            assert_eq!(&n.quirks, quirks, "{name}");
        }
        let bad: &[(&str, SkipReason)] = &[
            ("README.md", SkipReason::NotAnImage),
            ("notes.txt", SkipReason::NotAnImage),
            ("Thumbs.db", SkipReason::NotAnImage),
            (
                "x_0_0_20170116220224657.jpg.chip.jpg",
                SkipReason::NoAge("x".into()),
            ),
            (
                "_0_0_20170116220224657.jpg.chip.jpg",
                SkipReason::NoAge(String::new()),
            ),
            (
                "-3_0_0_20170116220224657.jpg.chip.jpg",
                SkipReason::NoAge("-3".into()),
            ),
            ("12.5_0_0_1.jpg.chip.jpg", SkipReason::NoAge("12.5".into())),
            (
                "999_0_0_20170116220224657.jpg.chip.jpg",
                SkipReason::AgeOutOfRange(999),
            ),
            (
                "99999999999999999999_0_0_1.jpg.chip.jpg",
                SkipReason::NoAge("99999999999999999999".into()),
            ),
            (".jpg.chip.jpg", SkipReason::NoAge(String::new())),
        ];
        for (name, reason) in bad {
            assert_eq!(parse_name(name).as_ref(), Err(reason), "{name}");
            assert!(!reason.to_string().is_empty());
        }
    }
}
