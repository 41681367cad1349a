//! What `GET /api/version` says: the program's version, the weights files
//! the networks were loaded from with their sizes and SHA-256 hashes
//! (computed once, at start-up), and the generator's age groups.

use std::io::Read;
use std::path::{Path, PathBuf};

use agesynth_pipeline::Ager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, ServeError};

/// One weights file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WeightsFile {
    /// Which network it holds ("FaceGAN generator", ...).
    pub network: String,
    /// The file's name (no folder: the server's paths are not sent).
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its contents, lower-case hex.
    pub sha256: String,
}

/// One of the generator's age groups.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupInfo {
    /// The group's index (what the generator is conditioned on).
    pub group: usize,
    /// Its label, e.g. `"30-39"` or `"50+"`.
    pub label: String,
    /// Its youngest age, in years.
    pub from: f32,
    /// The age `ages=all` asks for to get this group.
    pub centre: f32,
}

/// The body of `GET /api/version`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VersionInfo {
    /// `"agesynth"`.
    pub name: String,
    /// The agesynth version.
    pub version: String,
    /// The weights files in use.
    pub weights: Vec<WeightsFile>,
    /// The generator's age groups, youngest first.
    pub age_groups: Vec<GroupInfo>,
    /// Side in pixels of the aligned face the generator works on.
    pub chip_size: u32,
    /// The device the networks run on (`"cpu"`, `"cuda:0"`).
    pub device: String,
}

impl VersionInfo {
    /// The version information of `ager`, whose networks were loaded from
    /// `files` (`(network, path)` pairs; each is read and hashed now).
    pub fn new(ager: &Ager, files: &[(&str, PathBuf)], device: &str) -> Result<Self> {
        let weights = files
            .iter()
            .map(|(network, path)| hash_file(network, path))
            .collect::<Result<Vec<_>>>()?;
        let fa = ager.face_ager();
        let bins = fa.bins();
        let age_groups = bins
            .groups()
            .map(|g| GroupInfo {
                group: g.0,
                label: bins.label(g),
                from: bins.range(g).0,
                centre: bins.centre(g),
            })
            .collect();
        Ok(VersionInfo {
            name: "agesynth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            weights,
            age_groups,
            chip_size: fa.chip_size(),
            device: device.into(),
        })
    }
}

/// The size and SHA-256 of the file at `path`.
pub fn hash_file(network: &str, path: &Path) -> Result<WeightsFile> {
    let err = |source| ServeError::Weights {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(WeightsFile {
        network: network.into(),
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        sha256,
    })
}
