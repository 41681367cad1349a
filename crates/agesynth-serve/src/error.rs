//! The service's errors: [`ServeError`] for starting and running the server,
//! [`ApiError`] for one request (each variant is one HTTP status and a
//! message in words, sent as `{"error": "...", "status": N}`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result alias with [`ServeError`] as the error type.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound (in use, not allowed, not local).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The async runtime or the inference threads could not be started.
    #[error("cannot start the {what}")]
    Start {
        /// What failed to start ("async runtime", "inference workers").
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// Accepting or serving connections failed.
    #[error("the server stopped")]
    Serve(#[source] std::io::Error),

    /// A weights file could not be read to compute its hash.
    #[error("cannot read the weights file {}", path.display())]
    Weights {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A setting is out of its range (zero workers, a zero limit, ...).
    #[error("bad server setting: {0}")]
    Config(String),

    /// Loading the networks failed (boxed: the pipeline's error is large).
    #[error(transparent)]
    Pipeline(Box<agesynth_pipeline::PipelineError>),
}

impl From<agesynth_pipeline::PipelineError> for ServeError {
    fn from(e: agesynth_pipeline::PipelineError) -> Self {
        ServeError::Pipeline(Box::new(e))
    }
}

/// What went wrong with one request: an HTTP status and a message that says
/// why in words. Serialised as [`ErrorBody`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed: not multipart, no `photo` field, bad
    /// target ages (400).
    #[error("{0}")]
    BadRequest(String),

    /// The request body is larger than the limit (413).
    #[error("the request is larger than the limit of {} ({limit} bytes)", human_bytes(.limit))]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },

    /// The photo cannot be used: not a JPEG or PNG, corrupt, truncated, or
    /// more pixels than the limit (422; the message is the decoder's reason).
    #[error("{0}")]
    Unprocessable(String),

    /// Every inference worker is busy and the queue is full (503, with a
    /// `Retry-After` header).
    #[error("the server is busy ({queued} request(s) queued, the limit); retry in {} s", whole_secs(.retry_after))]
    Busy {
        /// Requests already waiting.
        queued: usize,
        /// When to try again.
        retry_after: Duration,
    },

    /// The request took longer than the server's limit, upload and ageing
    /// together (504).
    #[error("the request took longer than the server's limit of {} s", .limit.as_secs_f64())]
    Timeout {
        /// The limit.
        limit: Duration,
    },

    /// A failure inside the server (a network error, a caught panic); the
    /// server keeps running (500).
    #[error("internal error: {0}")]
    Internal(String),

    /// Any other status, with the message given (404, 405, ...).
    #[error("{message}")]
    Other {
        /// The status.
        status: StatusCode,
        /// The message.
        message: String,
    },
}

/// The JSON body of every error response.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// The HTTP status code, repeated.
    pub status: u16,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Other { status, .. } => *status,
        }
    }

    /// The JSON body this error is sent as.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
            status: self.status().as_u16(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        if let ApiError::Busy { retry_after, .. } = &self {
            let secs = retry_after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// `64 KiB`, `25 MiB`, `1.5 MiB`, `700 bytes`.
pub fn human_bytes(n: &usize) -> String {
    let n = *n as f64;
    let (v, unit) = if n >= 1048576.0 {
        (n / 1048576.0, "MiB")
    } else if n >= 1024.0 {
        (n / 1024.0, "KiB")
    } else {
        return format!("{n} bytes");
    };
    let text = format!("{v:.1}");
    format!("{} {unit}", text.trim_end_matches(".0"))
}

fn whole_secs(d: &Duration) -> u64 {
    d.as_secs().max(1)
}
