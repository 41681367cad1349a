//! The error type shared by the library crates.

use std::path::PathBuf;

/// Result alias with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in agesynth's libraries.
///
/// Variants that concern a file name it, so that a message printed with its
/// cause chain tells the user which file and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Reading or writing a file failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("reading", "writing", "renaming", ...).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file could not be read or written.
    #[error("bad JSON in {path}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A safetensors file is malformed or truncated.
    #[error("bad safetensors file {path}")]
    Safetensors {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// A weights file lacks a tensor the model needs.
    #[error("weights file {path} has no tensor `{name}`")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The missing tensor's name.
        name: String,
    },

    /// A tensor in a weights file has another shape than the model needs.
    #[error("weights file {path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// An image could not be decoded or is unusable.
    #[error("image {path}: {reason}")]
    Image {
        /// The image file (or a description of the in-memory source).
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },

    /// A dataset file or folder is malformed.
    #[error("dataset {path}: {reason}")]
    Dataset {
        /// The file or folder concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A caller passed an argument that violates a documented precondition.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The requested device is not available in this build or on this machine.
    #[error("device unavailable: {0}")]
    Device(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Image`] for `path`.
    pub fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Image {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Dataset`] for `path`.
    pub fn dataset(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Dataset {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
