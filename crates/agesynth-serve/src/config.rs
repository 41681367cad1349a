//! The server's settings and the limits it holds every request to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the server listens and how much work it takes on.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// The address to listen on. The default, `127.0.0.1:8080`, is reachable
    /// from this machine only; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Inference worker threads: requests aged at once (default 1: the
    /// kernels already use every core for one request).
    pub workers: usize,
    /// Requests that may wait for a worker; beyond them the server answers
    /// 503 with `Retry-After` (default 4).
    pub queue: usize,
    /// Threads of the parallel CPU kernels (0: one per core).
    pub kernel_threads: usize,
    /// Stop gracefully on Ctrl-C or SIGTERM (the command line does; tests
    /// do not).
    pub stop_on_signal: bool,
    /// The limits every request is held to.
    pub limits: Limits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            workers: 1,
            queue: 4,
            kernel_threads: 0,
            stop_on_signal: false,
            limits: Limits::default(),
        }
    }
}

impl ServeConfig {
    /// The default settings listening on a free loopback port (port 0).
    pub fn ephemeral() -> Self {
        ServeConfig {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            ..ServeConfig::default()
        }
    }
}

/// What one request may ask for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request body in bytes, the photo and the form together
    /// (larger: 413). Default 25 MiB.
    pub max_request_bytes: usize,
    /// Largest photo in pixels, width × height, checked from the header
    /// before any pixel is decoded (more: 422 naming the limit; a guard
    /// against decompression bombs). Default 25 megapixels.
    pub max_pixels: u64,
    /// Most target ages in one request (more: 400). Default 10.
    pub max_ages: usize,
    /// Longest a request may take, upload, queueing and ageing together
    /// (longer: 504). Default 120 s.
    #[serde(rename = "timeout_s", with = "secs")]
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 25 << 20,
            max_pixels: 25_000_000,
            max_ages: 10,
            timeout: Duration::from_secs(120),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}
