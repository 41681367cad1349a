//! `agesynth serve`: the web page and JSON API (see `agesynth_serve`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agesynth_core::DeviceSpec;
use agesynth_pipeline::weights;
use agesynth_serve::{App, Limits, ServeConfig, Server};
use anyhow::Context;
use clap::Args;

/// Options of `agesynth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default is reachable from this machine
    /// only; `0.0.0.0` opens the server to the network (no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Weights folder (default: $AGESYNTH_WEIGHTS, else ./weights, else the
    /// repository's weights/).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
    /// Requests aged at once (each already uses every core).
    #[arg(long, default_value_t = ServeConfig::default().workers)]
    pub workers: usize,
    /// Requests that may wait for a worker; more get 503 with Retry-After.
    #[arg(long, default_value_t = ServeConfig::default().queue)]
    pub queue: usize,
    /// Largest request body, in MiB (larger: 413).
    #[arg(long, default_value_t = Limits::default().max_request_bytes >> 20)]
    pub max_upload_mib: usize,
    /// Largest photo, in megapixels (larger: 422).
    #[arg(long, default_value_t = Limits::default().max_pixels as f64 / 1e6)]
    pub max_megapixels: f64,
    /// Longest a request may take, in seconds (longer: 504).
    #[arg(long, default_value_t = Limits::default().timeout.as_secs_f64())]
    pub timeout: f64,
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    if !(a.max_megapixels > 0.0 && a.timeout > 0.0 && a.max_upload_mib > 0) {
        anyhow::bail!("--max-upload-mib, --max-megapixels and --timeout must be above zero");
    }
    let device = a.device.open()?;
    let dir = weights::resolve_weights_dir(a.weights.as_deref());
    let t0 = std::time::Instant::now();
    let app = App::load(&dir, &device)
        .with_context(|| format!("loading the networks from {}", dir.display()))?;
    eprintln!(
        "loaded the networks from {} in {:.1} s ({} on {})",
        dir.display(),
        t0.elapsed().as_secs_f64(),
        app.info()
            .weights
            .iter()
            .map(|w| w.file.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        app.info().device,
    );
    let config = ServeConfig {
        addr: SocketAddr::new(a.host, a.port),
        workers: a.workers,
        queue: a.queue,
        kernel_threads: 0,
        stop_on_signal: true,
        limits: Limits {
            max_request_bytes: a.max_upload_mib.saturating_mul(1 << 20),
            max_pixels: (a.max_megapixels * 1e6).round() as u64,
            timeout: Duration::from_secs_f64(a.timeout),
            ..Limits::default()
        },
    };
    if !a.host.is_loopback() {
        eprintln!(
            "warning: listening on {}: anyone who can reach this machine can use the server",
            a.host
        );
    }
    let server = Server::start(&app, &config)?;
    // Scripts read the port from this line when --port 0 picked one.
    eprintln!("agesynth serve: listening on {}", server.url());
    eprintln!(
        "open {} in a browser; Ctrl-C stops the server",
        server.url()
    );
    server.wait()?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
