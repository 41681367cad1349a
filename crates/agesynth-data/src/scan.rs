//! Scanning dataset folders.

use std::path::{Path, PathBuf};

use agesynth_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A file a dataset left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was left out, in words.
    pub reason: String,
}

/// The regular files of `dir` (symlinks followed), sorted by name, so that a
/// dataset's order does not depend on the file system.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("listing folder", dir, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("listing folder", dir, e))?;
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// True for names ending in `.jpg`, `.jpeg` or `.png`, any case.
pub(crate) fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")
}
