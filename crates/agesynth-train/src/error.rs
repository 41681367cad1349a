//! The error type of the training crate.

use std::path::PathBuf;

/// Result alias with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Everything that can stop training or its bookkeeping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// An error from the shared vocabulary (I/O, tensors, configuration...).
    #[error(transparent)]
    Core(agesynth_core::Error),

    /// A loss became NaN or infinite: training stopped at this step, before
    /// anything was saved.
    #[error("loss `{name}` is {value} at step {step}: training stopped, the last checkpoint is kept as it was")]
    NonFinite {
        /// The step whose loss was not finite.
        step: u64,
        /// The name of the loss.
        name: String,
        /// Its value (NaN or ±inf).
        value: f32,
    },

    /// A loss exceeded the divergence limit.
    #[error("loss `{name}` = {value} exceeds the divergence limit {limit} at step {step}: training stopped, the last checkpoint is kept as it was")]
    Diverged {
        /// The step whose loss diverged.
        step: u64,
        /// The name of the loss.
        name: String,
        /// Its value.
        value: f32,
        /// The configured limit.
        limit: f32,
    },

    /// A tensor about to be checkpointed holds NaN or infinite values; the
    /// checkpoint was not written.
    #[error("refusing to checkpoint step {step}: tensor `{tensor}` of `{part}` is not finite")]
    NonFiniteWeights {
        /// The step that was being saved.
        step: u64,
        /// The checkpoint part (file stem) holding the tensor.
        part: String,
        /// The tensor's name.
        tensor: String,
    },

    /// Another live process holds the run folder's writer lock (a second
    /// trainer on the same folder).
    #[error("run folder is in use: {} is held by {} (a running trainer); wait for it to finish or stop it, or choose another folder", .path.display(), holder(.pid))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, when readable.
        pid: Option<u32>,
    },

    /// A checkpoint or run folder is missing or malformed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The folder or file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<agesynth_core::Error> for TrainError {
    /// A checkpoint error of the shared reader stays a
    /// [`TrainError::Checkpoint`]; everything else is [`TrainError::Core`].
    fn from(e: agesynth_core::Error) -> Self {
        match e {
            agesynth_core::Error::Checkpoint { path, reason } => {
                TrainError::Checkpoint { path, reason }
            }
            other => TrainError::Core(other),
        }
    }
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Core(agesynth_core::Error::Candle(e))
    }
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(p) => format!("process {p}"),
        None => "another process".to_string(),
    }
}

impl TrainError {
    /// A [`TrainError::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
