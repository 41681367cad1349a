//! FG-NET: scanned photos `images/PPPAaa[b].JPG` (subject PPP, age aa, a
//! letter for a second photo at that age; any letter case) with 68-point
//! landmarks `points/pppaaa[b].pts`.
//!
//! Faces load aligned from their landmarks (FG-NET's own 68-point markup,
//! [`LandmarkScheme::FgNet68`], not the iBUG one) onto the template UTKFace's
//! chips were cut with (see [`crate::align`]), so that FG-NET faces are framed like
//! the training data at any size. Greyscale scans become three equal
//! channels.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use agesynth_core::{geometry::FaceTemplate, Error, FaceDataset, FaceImage, FaceMeta, Result};
use serde::{Deserialize, Serialize};

use crate::{
    align::{self, LandmarkScheme, N_LANDMARKS},
    scan::list_files,
    transform::{self, DecodeLimits},
    Skipped,
};

/// 68 landmarks `[x, y]` in pixel coordinates of the photo.
pub type Landmarks = [[f64; 2]; N_LANDMARKS];

/// Subject, age and suffix of an FG-NET file name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FgNetName {
    /// Subject number (`001`–`082` in FG-NET).
    pub subject: u32,
    /// Age in years.
    pub age: u32,
    /// The letter marking a further photo at the same age, lower case.
    pub suffix: Option<char>,
}

impl FgNetName {
    /// The name's stem in lower case (`001a02b`), the key that pairs an image
    /// with its `.pts` file.
    pub fn key(&self) -> String {
        match self.suffix {
            Some(c) => format!("{:03}a{:02}{c}", self.subject, self.age),
            None => format!("{:03}a{:02}", self.subject, self.age),
        }
    }
}

/// Parses an FG-NET stem or file name, `PPPAaa[b]` with an optional
/// extension, in any letter case (`001A02.JPG`, `001a02.jpg`, `078A11b.JPG`,
/// `001a02.pts`). `None` when the name does not have that form.
pub fn parse_name(name: &str) -> Option<FgNetName> {
    let stem = match name.rfind('.') {
        Some(dot) => &name[..dot],
        None => name,
    };
    let b = stem.as_bytes();
    let well_formed = (b.len() == 6 || b.len() == 7)
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3].eq_ignore_ascii_case(&b'a')
        && b[4..6].iter().all(u8::is_ascii_digit)
        && (b.len() == 6 || b[6].is_ascii_alphabetic());
    if !well_formed {
        return None;
    }
    let suffix = b.get(6).map(|c| c.to_ascii_lowercase() as char);
    let age = stem[4..6].parse().ok()?;
    Some(FgNetName {
        subject: stem[..3].parse().ok()?,
        age,
        suffix,
    })
}

/// Parses the text of a 68-point `.pts` file:
/// `version: 1` / `n_points: 68` / `{` / 68 lines `x y` / `}`. `path` names
/// the file in errors.
pub fn parse_pts(text: &str, path: &Path) -> Result<Landmarks> {
    let bad = |reason: String| Error::dataset(path, reason);
    let mut lines = text
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty());
    let mut header = |want: &str| -> Result<String> {
        match lines.next() {
            Some((_, l)) => Ok(l.to_string()),
            None => Err(bad(format!("ends before `{want}`"))),
        }
    };
    let version = header("version: 1")?;
    let v = version
        .strip_prefix("version:")
        .map(str::trim)
        .ok_or_else(|| bad(format!("expected `version: 1`, found `{version}`")))?;
    if v != "1" {
        return Err(bad(format!("unsupported .pts version `{v}`")));
    }
    let np = header("n_points: 68")?;
    let n: usize = np
        .strip_prefix("n_points:")
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(format!("expected `n_points: 68`, found `{np}`")))?;
    if n != N_LANDMARKS {
        return Err(bad(format!("has {n} points, expected {N_LANDMARKS}")));
    }
    let open = header("{")?;
    if open != "{" {
        return Err(bad(format!("expected `{{`, found `{open}`")));
    }
    let mut pts = [[0f64; 2]; N_LANDMARKS];
    for (k, p) in pts.iter_mut().enumerate() {
        let (line_no, line) = lines
            .next()
            .ok_or_else(|| bad(format!("ends after {k} of {N_LANDMARKS} points")))?;
        if line == "}" {
            return Err(bad(format!("has only {k} of {N_LANDMARKS} points")));
        }
        let mut it = line.split_whitespace().map(str::parse::<f64>);
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(x)), Some(Ok(y)), None) if x.is_finite() && y.is_finite() => *p = [x, y],
            _ => {
                return Err(bad(format!(
                    "line {}: expected two numbers `x y`, found `{line}`",
                    line_no + 1
                )))
            }
        }
    }
    match lines.next() {
        Some((_, "}")) => {}
        Some((n, l)) => {
            return Err(bad(format!(
                "line {}: expected `}}` after {N_LANDMARKS} points, found `{l}`",
                n + 1
            )))
        }
        None => return Err(bad("missing the closing `}`".to_string())),
    }
    if let Some((n, l)) = lines.next() {
        return Err(bad(format!("line {}: unexpected `{l}` after `}}`", n + 1)));
    }
    Ok(pts)
}

/// The largest `.pts` file read (a 68-point file is about 1 KiB).
pub const MAX_PTS_BYTES: u64 = 1 << 20;

/// Reads and parses a `.pts` file (at most [`MAX_PTS_BYTES`]).
pub fn read_pts(path: &Path) -> Result<Landmarks> {
    let bytes = agesynth_core::io::read_limited(path, MAX_PTS_BYTES, "a .pts landmarks file")?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::dataset(path, "not a text file (invalid UTF-8)"))?;
    parse_pts(text, path)
}

/// An FG-NET folder: `images/` and `points/`.
#[derive(Clone, Debug)]
pub struct FgNet {
    root: PathBuf,
    metas: Vec<FaceMeta>,
    landmarks: Vec<Landmarks>,
    skipped: Vec<Skipped>,
    padding: f64,
    limits: DecodeLimits,
}

impl FgNet {
    /// Scans `dir/images` and `dir/points`. Images whose name is not FG-NET's
    /// form, or whose landmarks are missing or malformed, are left out and
    /// listed in [`FgNet::skipped`]. Errors when either folder is missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let (img_dir, pts_dir) = (root.join("images"), root.join("points"));
        for d in [&img_dir, &pts_dir] {
            if !d.is_dir() {
                return Err(Error::dataset(
                    &root,
                    format!(
                        "an FG-NET folder needs `images/` and `points/`; {} is missing",
                        d.display()
                    ),
                ));
            }
        }
        let mut points: HashMap<String, PathBuf> = HashMap::new();
        let mut skipped = Vec::new();
        for p in list_files(&pts_dir)? {
            let key = p
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| n.to_ascii_lowercase().ends_with(".pts"))
                .and_then(parse_name)
                .map(|n| n.key());
            match key {
                Some(k) => {
                    if let Some(prev) = points.insert(k, p.clone()) {
                        skipped.push(Skipped {
                            path: prev,
                            reason: format!(
                                "duplicate landmarks for the same photo as {}",
                                p.display()
                            ),
                        });
                    }
                }
                None => skipped.push(Skipped {
                    path: p,
                    reason: "not an FG-NET landmarks name `pppaaa[b].pts`".into(),
                }),
            }
        }
        let mut metas = Vec::new();
        let mut landmarks = Vec::new();
        let mut used = std::collections::HashSet::new();
        for path in list_files(&img_dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let lower = name.to_ascii_lowercase();
            if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")) {
                skipped.push(Skipped {
                    path,
                    reason: "not an image file".into(),
                });
                continue;
            }
            let Some(n) = parse_name(name) else {
                skipped.push(Skipped {
                    path,
                    reason: "not an FG-NET name `PPPAaa[b].JPG`".into(),
                });
                continue;
            };
            let key = n.key();
            let Some(pts_path) = points.get(&key) else {
                skipped.push(Skipped {
                    path,
                    reason: format!("no landmarks file points/{key}.pts"),
                });
                continue;
            };
            match read_pts(pts_path) {
                Ok(l) => {
                    used.insert(key);
                    landmarks.push(l);
                    metas.push(FaceMeta {
                        path,
                        age: n.age as f32,
                        gender: None,
                        race: None,
                        subject: Some(n.subject),
                    });
                }
                Err(e) => skipped.push(Skipped {
                    path,
                    reason: format!("bad landmarks: {e}"),
                }),
            }
        }
        let mut orphans: Vec<_> = points
            .into_iter()
            .filter(|(k, _)| !used.contains(k))
            .map(|(_, p)| p)
            .collect();
        orphans.sort();
        for p in orphans {
            if !skipped
                .iter()
                .any(|s| s.reason.contains(&p.display().to_string()))
            {
                skipped.push(Skipped {
                    path: p,
                    reason: "landmarks without a usable image".into(),
                });
            }
        }
        Ok(FgNet {
            root,
            metas,
            landmarks,
            skipped,
            padding: FaceTemplate::UTKFACE_PADDING,
            limits: DecodeLimits::default(),
        })
    }

    /// The same dataset framed with another template padding (default
    /// [`FaceTemplate::UTKFACE_PADDING`], UTKFace's framing).
    pub fn with_padding(mut self, padding: f64) -> Self {
        self.padding = padding;
        self
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

    /// Files left out, with reasons (images and `.pts` files).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Labels of every face.
    pub fn metas(&self) -> &[FaceMeta] {
        &self.metas
    }

    /// The landmarks of face `index`, in the photo's pixel coordinates.
    pub fn landmarks(&self, index: usize) -> Option<&Landmarks> {
        self.landmarks.get(index)
    }

    /// The distinct subjects, ascending.
    pub fn subjects(&self) -> Vec<u32> {
        let mut s: Vec<u32> = self.metas.iter().filter_map(|m| m.subject).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The unaligned photo of face `index`, as RGB.
    pub fn load_photo(&self, index: usize) -> Result<FaceImage> {
        let meta = self.metas.get(index).ok_or_else(|| {
            Error::InvalidInput(format!(
                "face {index} of {} in {}",
                self.metas.len(),
                self.root.display()
            ))
        })?;
        transform::decode_file(&meta.path, &self.limits)
    }
}

impl FaceDataset for FgNet {
    fn len(&self) -> usize {
        self.metas.len()
    }

    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        self.metas.get(index)
    }

    fn load(&self, index: usize, size: u32) -> Result<FaceImage> {
        let photo = self.load_photo(index)?;
        let template = FaceTemplate {
            size,
            padding: self.padding,
        };
        align::align(
            &photo,
            &self.landmarks[index],
            LandmarkScheme::FgNet68,
            &template,
        )
        .map_err(|e| Error::image(&self.metas[index].path, format!("aligning: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        let ok = [
            ("001A02.JPG", 1, 2, None),
            ("001a02.jpg", 1, 2, None),
            ("001A43a.JPG", 1, 43, Some('a')),
            ("078A11B.jpg", 78, 11, Some('b')),
            ("006a61.pts", 6, 61, None),
            ("010A00", 10, 0, None),
            ("082A69.jpeg", 82, 69, None),
        ];
        for (name, subject, age, suffix) in ok {
            let n = parse_name(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                (n.subject, n.age, n.suffix),
                (subject, age, suffix),
                "{name}"
            );
        }
        assert_eq!(parse_name("078A11B.JPG").unwrap().key(), "078a11b");
        assert_eq!(parse_name("001A02.JPG").unwrap().key(), "001a02");
        for bad in [
            "",
            "A02.JPG",
            "01A02.JPG",
            "001B02.JPG",
            "001A2.JPG",
            "001A02bc.JPG",
            "001A0x.JPG",
            "xyzA02.JPG",
            "001A02_.JPG",
            "0001A02.JPG",
            "001A.JPG",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    fn pts_text(n: usize) -> String {
        let mut s = format!("version: 1\nn_points: {n}\n{{\n");
        for i in 0..n {
            s += &format!("{}.5 {}.25\n", i, 2 * i);
        }
        s + "}\n"
    }

    #[test]
    fn pts_parsing() {
        let p = Path::new("x.pts");
        let l = parse_pts(&pts_text(68), p).unwrap();
        assert_eq!(l[0], [0.5, 0.25]);
        assert_eq!(l[67], [67.5, 134.25]);
        // Windows line ends and blank lines are fine.
        let crlf = pts_text(68).replace('\n', "\r\n") + "\r\n";
        assert_eq!(parse_pts(&crlf, p).unwrap(), l);
        let cases = [
            (String::new(), "version"),
            (pts_text(67), "67 points"),
            (
                pts_text(68).replace("version: 1", "version: 2"),
                "version `2`",
            ),
            (pts_text(68).replace("n_points", "points"), "n_points"),
            (pts_text(68).replace('{', "["), "`{`"),
            (pts_text(68).replace("5.5 10.25", "5.5 ten"), "line 9"),
            (pts_text(68).replace("5.5 10.25", "5.5 10.25 1"), "line 9"),
            (pts_text(68).replace("5.5 10.25", "NaN 1"), "line 9"),
            (pts_text(68).replace('}', ""), "closing"),
            (pts_text(68).replace("67.5 134.25\n", ""), "only 67"),
            (pts_text(68) + "1 2\n", "after `}`"),
        ];
        for (text, want) in cases {
            let err = parse_pts(&text, p).unwrap_err().to_string();
            assert!(err.contains("x.pts") && err.contains(want), "{want}: {err}");
        }
    }
}
