//! Where the pipeline finds its networks.

use std::path::{Path, PathBuf};

/// Environment variable naming the weights folder.
pub const WEIGHTS_ENV: &str = "AGESYNTH_WEIGHTS";

/// The FaceGAN generator the repository ships (with its `.json` config
/// sidecar).
pub const FACEGAN_WEIGHTS: &str = "facegan-cpu64.safetensors";

/// The cStyleGAN generator the repository ships (with its `.json` config
/// sidecar); `agesynth demo` renders its identities.
pub const CSTYLEGAN_WEIGHTS: &str = "cstylegan-cpu64.safetensors";

/// The MTCNN detector's weights.
pub const MTCNN_WEIGHTS: &str = agesynth_face::import::mtcnn::MTCNN_WEIGHTS;

/// The dlib age estimator's weights.
pub const AGE_WEIGHTS: &str = agesynth_face::import::AGE_WEIGHTS;

/// The weights folder baked in at compile time: the repository's
/// `weights/`.
pub fn repository_weights_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../weights"))
}

/// The weights folder to use when the user names none: `$AGESYNTH_WEIGHTS`
/// when set, else `./weights` when it exists, else the repository's
/// `weights/` (so that a binary built from a clone runs from anywhere).
pub fn default_weights_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(WEIGHTS_ENV) {
        if !dir.is_empty() {
            return PathBuf::from(dir);
        }
    }
    let local = Path::new("weights");
    if local.is_dir() {
        return local.to_path_buf();
    }
    let repo = repository_weights_dir();
    repo.canonicalize().unwrap_or(repo)
}

/// The folder `dir` when given, else [`default_weights_dir`].
pub fn resolve_weights_dir(dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf)
        .unwrap_or_else(default_weights_dir)
}
