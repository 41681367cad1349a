//! The pipeline's error type: every variant that concerns a file names it.

use std::path::PathBuf;

/// Result alias with [`PipelineError`] as the error type.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// What can go wrong while ageing a photo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The photo could not be read or decoded (missing, unreadable, not JPEG
    /// or PNG, corrupt, truncated, too large).
    #[error("cannot decode the photo {}", path.display())]
    Decode {
        /// The photo.
        path: PathBuf,
        /// Why.
        #[source]
        source: agesynth_core::Error,
    },

    /// A folder given as input holds no photo (in it or its subfolders).
    #[error("{} holds no .jpg, .jpeg or .png photo (in it or its subfolders)", path.display())]
    NoPhotos {
        /// The folder.
        path: PathBuf,
    },

    /// The detector found no face in the photo.
    #[error("no face found in {}", path.display())]
    NoFace {
        /// The photo (`<image>` for an in-memory image).
        path: PathBuf,
    },

    /// A target age is not a finite number of years ≥ 0, or none was given.
    #[error("bad target ages: {0}")]
    TargetAge(String),

    /// A weights file is missing or does not load.
    #[error("cannot load the {what} weights {}", path.display())]
    Weights {
        /// Which network ("FaceGAN generator", "MTCNN detector", ...).
        what: &'static str,
        /// The weights file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// Writing an output file failed (nothing half-written is left behind).
    #[error("cannot write {}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: agesynth_core::Error,
    },

    /// Any other failure of the networks or the geometry (tensor errors,
    /// degenerate landmarks, ...).
    #[error(transparent)]
    Core(#[from] agesynth_core::Error),
}

impl PipelineError {
    /// The same error with `path` as the photo it concerns, where it names
    /// one (an in-memory image is named `<image>` until then).
    pub fn with_path(self, path: impl Into<PathBuf>) -> Self {
        match self {
            PipelineError::NoFace { .. } => PipelineError::NoFace { path: path.into() },
            PipelineError::Decode { source, .. } => PipelineError::Decode {
                path: path.into(),
                source,
            },
            other => other,
        }
    }
}

impl From<candle_core::Error> for PipelineError {
    fn from(e: candle_core::Error) -> Self {
        PipelineError::Core(e.into())
    }
}
