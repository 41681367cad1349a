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

    /// A checkpoint, run folder or shipped model is missing or malformed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The folder or file concerned.
        path: PathBuf,
        /// What is wrong.
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

    /// A weights file holds a NaN or infinite value: the weights are
    /// damaged, and a model built from them would produce garbage.
    #[error(
        "weights file {path}: tensor `{name}` holds NaN or infinite values (the file is damaged)"
    )]
    NonFiniteTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },

    /// A tensor that must hold weights is not of a floating-point type.
    #[error("weights file {path}: tensor `{name}` is {dtype}, not a floating-point type")]
    TensorDType {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The dtype found, as safetensors names it.
        dtype: String,
    },

    /// Converting a tensor to a narrower float type would turn finite values
    /// into infinities.
    #[error("tensor `{name}` holds values up to {max_abs:e} in magnitude, beyond the largest {dtype} ({}): converting would turn them into infinities", short_number(.dtype_max))]
    ConversionOverflow {
        /// The tensor's name.
        name: String,
        /// Its largest magnitude.
        max_abs: f64,
        /// The target dtype.
        dtype: String,
        /// The target dtype's largest finite value.
        dtype_max: f64,
    },

    /// A file is larger than the limit set for its kind (read no further
    /// than the limit, so endless inputs such as `/dev/zero` stop there).
    #[error("{path} is larger than the limit of {limit} bytes for {what}")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of file it was read as.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },

    /// A command would need more memory than its budget allows; nothing was
    /// allocated.
    #[error("{}", crate::budget::budget_message(.what, .needed, .limit, .source_of_limit, .hint))]
    MemoryBudget {
        /// What would have been allocated.
        what: String,
        /// Its estimated size in bytes.
        needed: u64,
        /// The limit in bytes.
        limit: u64,
        /// Where the limit came from (the variable, or the machine's memory).
        source_of_limit: String,
        /// How to need less (a flag to lower).
        hint: String,
    },

    /// A network produced NaN or infinite values: its output is not a
    /// picture, and is not passed on as one.
    #[error("{what} produced NaN or infinite values (damaged or diverged weights?)")]
    NonFiniteOutput {
        /// The network or output concerned.
        what: String,
    },

    /// Work was stopped by a signal (Ctrl-C, SIGTERM) before it finished;
    /// nothing half-done was left behind.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

/// A number as an integer when it is one below 10^7, else in `e` notation.
fn short_number(v: &f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

impl Error {
    /// An [`Error::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }

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
