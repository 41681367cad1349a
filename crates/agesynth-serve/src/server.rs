//! The router and the server: routes, limits as layers, JSON errors, and a
//! [`Server`] that runs on its own threads until it is shut down.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agesynth_pipeline::{weights, Ager};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use candle_core::Device;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::{Limits, ServeConfig};
use crate::error::{ApiError, Result, ServeError};
use crate::info::VersionInfo;
use crate::pool::{panic_message, InferencePool};

/// The networks, loaded once, and what `GET /api/version` says about them.
/// Cheap to clone; one [`App`] can back several servers.
#[derive(Clone, Debug)]
pub struct App {
    ager: Arc<Ager>,
    info: Arc<VersionInfo>,
}

impl App {
    /// Loads the shipped networks from the weights folder `dir` (the FaceGAN
    /// generator, MTCNN and the age estimator; see
    /// [`Ager::from_weights_dir`]) onto `device`, and hashes their files.
    pub fn load(dir: &Path, device: &Device) -> Result<App> {
        let ager = Ager::from_weights_dir(dir, device)?;
        let facegan = dir.join(weights::FACEGAN_WEIGHTS);
        let mut files = vec![("FaceGAN generator", facegan.clone())];
        let sidecar = facegan.with_extension("json");
        if sidecar.is_file() {
            files.push(("FaceGAN generator config", sidecar));
        }
        files.push(("MTCNN detector", dir.join(weights::MTCNN_WEIGHTS)));
        files.push(("age estimator", dir.join(weights::AGE_WEIGHTS)));
        let info = VersionInfo::new(&ager, &files, &device_name(device))?;
        Ok(App::new(Arc::new(ager), info))
    }

    /// An app from an ager already built and its version information.
    pub fn new(ager: Arc<Ager>, info: VersionInfo) -> App {
        App {
            ager,
            info: Arc::new(info),
        }
    }

    /// The ager.
    pub fn ager(&self) -> &Arc<Ager> {
        &self.ager
    }

    /// What `GET /api/version` answers.
    pub fn info(&self) -> &VersionInfo {
        &self.info
    }
}

/// `"cpu"` or `"cuda:N"`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

struct Shared {
    pool: InferencePool,
    info: Arc<VersionInfo>,
    limits: Limits,
    all_ages: Vec<f32>,
    started: Instant,
}

/// What every handler sees: the inference pool, the limits and the
/// version information.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("pool", &self.0.pool)
            .field("limits", &self.0.limits)
            .finish()
    }
}

impl AppState {
    /// Starts the inference pool of `config` over `app`'s ager.
    pub fn new(app: &App, config: &ServeConfig) -> Result<AppState> {
        let l = &config.limits;
        if l.max_request_bytes == 0 || l.max_pixels == 0 || l.max_ages == 0 {
            return Err(ServeError::Config("the limits must be above zero".into()));
        }
        if l.timeout.is_zero() {
            return Err(ServeError::Config("the timeout must be above zero".into()));
        }
        let pool = InferencePool::new(
            app.ager.clone(),
            config.workers,
            config.queue,
            config.kernel_threads,
        )?;
        let all_ages = app.info.age_groups.iter().map(|g| g.centre).collect();
        Ok(AppState(Arc::new(Shared {
            pool,
            info: app.info.clone(),
            limits: config.limits.clone(),
            all_ages,
            started: Instant::now(),
        })))
    }

    /// The inference pool.
    pub fn pool(&self) -> &InferencePool {
        &self.0.pool
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The version information.
    pub fn info(&self) -> &VersionInfo {
        &self.0.info
    }

    /// The ages `ages=all` stands for: one per age group.
    pub fn all_ages(&self) -> Vec<f32> {
        self.0.all_ages.clone()
    }

    /// Time since the state was made.
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
}

/// The whole service: the page, the API, and the layers that hold every
/// request to the limits (body size: 413; time: 504; a panic: 500) and
/// turn every error into `{"error": "...", "status": N}`.
pub fn router(state: AppState) -> Router {
    let limits = state.limits().clone();
    let api = Router::new()
        .route("/api/age", post(crate::api::age))
        .route("/api/health", get(crate::api::health))
        .route("/api/version", get(crate::api::version))
        .route("/", get(crate::page::index))
        .route("/app.js", get(crate::page::script))
        .route("/style.css", get(crate::page::style))
        .fallback(not_found)
        .with_state(state.clone());
    api.layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.max_request_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |p: Box<dyn std::any::Any + Send>| {
                ApiError::Internal(format!(
                    "the request failed unexpectedly ({}); the server is still running",
                    panic_message(p.as_ref())
                ))
                .into_response()
            },
        ))
        .layer(axum::middleware::map_response_with_state(
            state,
            json_errors,
        ))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::Other {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no such page: {} (the API is POST /api/age, GET /api/health, GET /api/version)",
            uri.path()
        ),
    }
}

/// Gives the errors that the layers and axum's own rejections produce (plain
/// text or empty bodies) the same JSON form as the handlers' errors.
async fn json_errors(State(app): State<AppState>, resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let err = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge {
            limit: app.limits().max_request_bytes,
        },
        StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout {
            limit: app.limits().timeout,
        },
        _ => {
            let text = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            ApiError::Other {
                status,
                message: if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_lowercase()
                } else {
                    text
                },
            }
        }
    };
    err.into_response()
}

/// A running server: its own async runtime on its own thread, the inference
/// pool's workers on theirs. Dropping it shuts it down.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Server {
    /// Binds `config.addr` (port 0: a free port), starts the inference pool
    /// and serves `app` until [`Server::shutdown`] (or Ctrl-C or SIGTERM,
    /// with [`ServeConfig::stop_on_signal`]). Returns once the socket
    /// listens.
    pub fn start(app: &App, config: &ServeConfig) -> Result<Server> {
        let state = AppState::new(app, config)?;
        let listener =
            std::net::TcpListener::bind(config.addr).map_err(|source| ServeError::Bind {
                addr: config.addr,
                source,
            })?;
        let bind_err = |source| ServeError::Bind {
            addr: config.addr,
            source,
        };
        let addr = listener.local_addr().map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("agesynth-http")
            .enable_all()
            .build()
            .map_err(|source| ServeError::Start {
                what: "async runtime",
                source,
            })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app_router = router(state.clone());
        let ctrl_c = config.stop_on_signal;
        let thread = std::thread::Builder::new()
            .name("agesynth-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).map_err(ServeError::Serve)?;
                    let shutdown = async move {
                        if ctrl_c {
                            tokio::select! {
                                _ = stopped => {}
                                _ = stop_signal() => {}
                            }
                        } else {
                            let _ = stopped.await;
                        }
                    };
                    axum::serve(listener, app_router)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .map_err(ServeError::Serve)
                })
            })
            .map_err(|source| ServeError::Start {
                what: "server thread",
                source,
            })?;
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (IPv6 addresses in brackets).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's state (its pool, limits and version information).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections, lets the requests in flight finish, and
    /// waits for the server thread.
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join_thread()
    }

    /// Waits until the server stops by itself (Ctrl-C or SIGTERM, with
    /// [`ServeConfig::stop_on_signal`]) or fails.
    pub fn wait(mut self) -> Result<()> {
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(p)) => Err(ServeError::Serve(std::io::Error::other(format!(
                "the server thread panicked: {}",
                panic_message(p.as_ref())
            )))),
            None => Ok(()),
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
