//! # agesynth-serve
//!
//! `agesynth serve`: a local web page to age the faces in a photo, and the
//! JSON API behind it, as a library.
//!
//! - [`App`] holds the networks, loaded once ([`App::load`]), and what
//!   `GET /api/version` reports about them (weights files and their
//!   SHA-256).
//! - [`InferencePool`] runs the ageing on a fixed number of worker threads,
//!   off the async runtime, with a bounded queue: beyond it a request is
//!   refused at once (503 with `Retry-After`), never left in a growing
//!   backlog. A panic fails its request only.
//! - [`router`] is the service: the page ([`page`], embedded in the binary),
//!   `POST /api/age`, `GET /api/health`, `GET /api/version` ([`api`]), and
//!   the layers that hold requests to the [`Limits`] (body size: 413, pixel
//!   count: 422, time: 504). Every error is JSON,
//!   `{"error": "...", "status": N}` ([`ErrorBody`]).
//! - [`Server`] binds an address (loopback unless told otherwise) and
//!   serves on its own threads until shut down.
//! - [`testing`] has what the tests and the examples share (a photo of a
//!   synthetic person, starting `agesynth serve` as a child process).
//!
//! Uploads stay in memory: they are never written to disk and never logged.
//!
//! ```no_run
//! use agesynth_serve::{App, ServeConfig, Server};
//!
//! let dir = agesynth_pipeline::weights::default_weights_dir();
//! let app = App::load(&dir, &candle_core::Device::Cpu)?;
//! let server = Server::start(&app, &ServeConfig::default())?;
//! println!("open {}", server.url());
//! server.wait()?;
//! # Ok::<(), agesynth_serve::ServeError>(())
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod config;
pub mod error;
pub mod info;
pub mod page;
pub mod pool;
pub mod server;
pub mod testing;

pub use api::{AgeResponse, AgedImage, FaceInfo, Health};
pub use config::{Limits, ServeConfig};
pub use error::{ApiError, ErrorBody, Result, ServeError};
pub use info::VersionInfo;
pub use pool::{InferencePool, PoolError, PoolStats};
pub use server::{router, App, AppState, Server};
