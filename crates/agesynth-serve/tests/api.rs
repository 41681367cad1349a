//! The API against a real server on an ephemeral loopback port, through a
//! real HTTP client: a FG-NET photo aged to several ages (skipped with a
//! message without the shared data), and every bad input with its status
//! and message. The networks are the shipped ones under `weights/`, loaded
//! once for all tests.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use agesynth_core::FaceImage;
use agesynth_serve::{AgeResponse, App, ErrorBody, Health, ServeConfig, Server, VersionInfo};
use base64::Engine;
use candle_core::Device;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = agesynth_pipeline::weights::repository_weights_dir();
        App::load(&dir, &Device::Cpu).expect("the shipped weights load")
    })
}

fn start(config: ServeConfig) -> Server {
    Server::start(app(), &config).expect("the server starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn png(img: &FaceImage) -> Vec<u8> {
    agesynth_serve::api::encode_png(img).unwrap()
}

/// A smooth gradient: a valid photo with no face in it.
fn gradient(w: u32, h: u32) -> FaceImage {
    let px = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
        })
        .collect();
    FaceImage::new(w, h, px).unwrap()
}

fn photo_form(bytes: Vec<u8>, name: &str) -> Form {
    Form::new().part("photo", Part::bytes(bytes).file_name(name.to_string()))
}

async fn post(server: &Server, form: Form) -> reqwest::Response {
    client()
        .post(format!("{}/api/age", server.url()))
        .multipart(form)
        .send()
        .await
        .expect("the server answers")
}

/// The status and JSON error body of a refused request.
async fn refused(resp: reqwest::Response) -> (StatusCode, ErrorBody) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{status}: {ct}");
    let body: ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.status, status.as_u16());
    (status, body)
}

fn decode_b64_png(b64: &str) -> image::RgbImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid base64");
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("a PNG")
        .to_rgb8()
}

fn fgnet_photo(test: &str) -> Option<PathBuf> {
    let dir = agesynth_data::testing::shared_subdir("fgnet-dev", test)?;
    let path = dir.join("images/001A28.JPG");
    if !path.is_file() {
        println!("skipping: {test}: {} not found", path.display());
        return None;
    }
    Some(path)
}

#[tokio::test]
async fn a_fgnet_photo_is_aged_to_several_ages() {
    let Some(path) = fgnet_photo("a_fgnet_photo_is_aged_to_several_ages") else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let original = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let server = start(ServeConfig::ephemeral());
    let form = photo_form(bytes, "001A28.JPG")
        .text("ages", "5, 30,50,70")
        .text("strip", "true");
    let resp = post(&server, form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let r: AgeResponse = resp.json().await.unwrap();

    assert_eq!((r.width, r.height), original.dimensions());
    assert_eq!(r.faces.len(), 1, "{:?}", r.faces);
    assert!(r.message.is_none());
    let face = &r.faces[0];
    let [x1, y1, x2, y2] = face.bbox;
    assert!(
        0.0 <= x1 && x1 < x2 && x2 <= r.width as f64,
        "{:?}",
        face.bbox
    );
    assert!(
        0.0 <= y1 && y1 < y2 && y2 <= r.height as f64,
        "{:?}",
        face.bbox
    );
    assert!(face.score > 0.9, "{}", face.score);
    let est = face.estimated_age.expect("an age estimate");
    assert!((5.0..70.0).contains(&est), "estimated age {est}");

    let labels: Vec<&str> = r.images.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(labels, ["0-9", "30-39", "50+", "50+"]);
    assert_eq!(r.images[1].caption, "age 30 (group 30-39)");
    let aged: Vec<image::RgbImage> = r
        .images
        .iter()
        .map(|i| decode_b64_png(&i.png_base64))
        .collect();
    for (img, target) in aged.iter().zip(&r.images) {
        assert_eq!(
            img.dimensions(),
            original.dimensions(),
            "age {}",
            target.age
        );
        // Aged inside the face, the original's pixels bit for bit in the
        // corners (far from the face).
        let changed = img
            .pixels()
            .zip(original.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            changed > 500,
            "age {}: {changed} pixels changed",
            target.age
        );
        for (x, y) in [(0, 0), (r.width - 1, r.height - 1)] {
            assert_eq!(img.get_pixel(x, y), original.get_pixel(x, y));
        }
    }
    // Different groups give different faces; one group, the same face.
    assert_ne!(aged[0], aged[1]);
    assert_ne!(aged[1], aged[2]);
    assert_eq!(aged[2], aged[3]);
    let strip = decode_b64_png(r.strip_png_base64.as_deref().expect("a strip"));
    assert!(strip.width() > strip.height(), "{:?}", strip.dimensions());

    let health: Health = client()
        .get(format!("{}/api/health", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health.pool.completed, 1);
    assert_eq!((health.pool.queued, health.pool.running), (0, 0));
    server.shutdown().unwrap();
}

#[tokio::test]
async fn version_health_and_the_page() {
    let server = start(ServeConfig::ephemeral());
    let c = client();
    let v: VersionInfo = c
        .get(format!("{}/api/version", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.name, "agesynth");
    assert_eq!(v.device, "cpu");
    let files: Vec<&str> = v.weights.iter().map(|w| w.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "facegan-cpu64.safetensors",
            "facegan-cpu64.json",
            "mtcnn.safetensors",
            "age.safetensors"
        ]
    );
    let dir = agesynth_pipeline::weights::repository_weights_dir();
    for w in &v.weights {
        assert_eq!(w.sha256.len(), 64);
        assert!(w.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(w.bytes, std::fs::metadata(dir.join(&w.file)).unwrap().len());
    }
    let labels: Vec<&str> = v.age_groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["0-9", "10-19", "20-29", "30-39", "40-49", "50+"]);
    assert_eq!(v.chip_size, 64);

    let h: Health = c
        .get(format!("{}/api/health", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h.status, "ok");
    assert_eq!((h.pool.workers, h.pool.queue_limit), (1, 4));
    assert_eq!(h.limits, agesynth_serve::Limits::default());

    for (path, kind, holds) in [
        ("/", "text/html", "id=\"age\""),
        ("/app.js", "text/javascript", "/api/age"),
        ("/style.css", "text/css", ".box"),
    ] {
        let resp = c
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let headers = resp.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        let text = resp.text().await.unwrap();
        assert!(text.contains(holds), "{path}");
        assert!(
            !text.contains("https://"),
            "{path} fetches nothing from elsewhere"
        );
    }

    let (status, body) = refused(
        c.get(format!("{}/nope", server.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.error.contains("no such page: /nope"), "{}", body.error);
    let (status, _) = refused(
        c.get(format!("{}/api/age", server.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    server.shutdown().unwrap();
}

#[tokio::test]
async fn bad_inputs_get_their_status_and_message() {
    let server = start(ServeConfig::ephemeral());
    let photo = png(&gradient(160, 120));

    // Each case: the form, the status, words the message must hold.
    let jpeg = agesynth_pipeline::testing::jpeg_with_orientation(&gradient(64, 48), 1).unwrap();
    let mut corrupt = photo.clone();
    let n = corrupt.len();
    for b in &mut corrupt[60..n - 20] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    let cases: Vec<(&str, Form, StatusCode, &str)> = vec![
        (
            "not an image",
            photo_form(b"hello, I am a text file".to_vec(), "notes.txt"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot decode the photo: not a JPEG or PNG image (unrecognised header)",
        ),
        (
            "a GIF",
            photo_form(gif, "anim.gif"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot decode the photo: unsupported format Gif: only JPEG and PNG are read",
        ),
        (
            "a truncated JPEG",
            photo_form(jpeg[..jpeg.len() / 2].to_vec(), "cut.jpg"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot decode the photo: truncated JPEG",
        ),
        (
            "a corrupt PNG",
            photo_form(corrupt, "corrupt.png"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot decode the photo: corrupt or truncated Png (160x120): ",
        ),
        (
            "an empty file",
            photo_form(Vec::new(), "empty.png"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "the file is empty",
        ),
        (
            "no photo",
            Form::new().text("ages", "30"),
            StatusCode::BAD_REQUEST,
            "no `photo` field",
        ),
        (
            "an age that is no number",
            photo_form(photo.clone(), "p.png").text("ages", "thirty"),
            StatusCode::BAD_REQUEST,
            "bad target age `thirty`",
        ),
        (
            "a negative age",
            photo_form(photo.clone(), "p.png").text("ages", "-5"),
            StatusCode::BAD_REQUEST,
            "target age -5 is out of range",
        ),
        (
            "too many ages",
            photo_form(photo.clone(), "p.png").text("ages", "1,2,3,4,5,6,7,8,9,10,11"),
            StatusCode::BAD_REQUEST,
            "11 target ages asked for; the limit is 10",
        ),
        (
            "an unknown field",
            photo_form(photo.clone(), "p.png").text("age", "30"),
            StatusCode::BAD_REQUEST,
            "unknown form field `age`",
        ),
        (
            "strip neither true nor false",
            photo_form(photo.clone(), "p.png").text("strip", "maybe"),
            StatusCode::BAD_REQUEST,
            "field `strip` must be true or false",
        ),
    ];
    for (what, form, status, says) in cases {
        let (got, body) = refused(post(&server, form).await).await;
        assert_eq!(got, status, "{what}: {}", body.error);
        assert!(body.error.contains(says), "{what}: {}", body.error);
    }
    // A PNG cut inside its header: the decoder's own reason.
    let cut = photo[..20].to_vec();
    let (status, body) = refused(post(&server, photo_form(cut, "cut.png")).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.error
            .starts_with("cannot decode the photo: unreadable Png header: "),
        "{}",
        body.error
    );

    // Not multipart at all.
    let resp = client()
        .post(format!("{}/api/age", server.url()))
        .json(&serde_json::json!({"photo": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = refused(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.error.contains("expected a multipart/form-data body"),
        "{}",
        body.error
    );

    // No face: 200, an empty list and a message.
    let resp = post(
        &server,
        photo_form(photo.clone(), "gradient.png").text("ages", "all"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let r: AgeResponse = resp.json().await.unwrap();
    assert_eq!((r.width, r.height), (160, 120));
    assert!(r.faces.is_empty() && r.images.is_empty() && r.strip_png_base64.is_none());
    assert!(r.message.unwrap().starts_with("no face found in the photo"));
    server.shutdown().unwrap();
}

#[tokio::test]
async fn size_and_pixel_limits() {
    let mut config = ServeConfig::ephemeral();
    config.limits.max_request_bytes = 64 << 10;
    config.limits.max_pixels = 100_000;
    let server = start(config);
    // 413: a body over the limit, refused before it is read.
    let big = vec![0u8; 200 << 10];
    let (status, body) = refused(post(&server, photo_form(big, "big.png")).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body.error,
        "the request is larger than the limit of 64 KiB (65536 bytes)"
    );
    // 422 naming the limit: 400 × 300 = 120,000 pixels, in a small file.
    let photo = png(&gradient(400, 300));
    assert!(photo.len() < 60 << 10, "{}", photo.len());
    let (status, body) = refused(post(&server, photo_form(photo, "wide.png")).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body.error,
        "cannot decode the photo: 400x300 image (120000 pixels) exceeds the limit of 100000 \
         pixels (possible decompression bomb)"
    );
    // Under both limits: served.
    let resp = post(&server, photo_form(png(&gradient(200, 150)), "ok.png")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    server.shutdown().unwrap();
}

/// Occupies the pool's workers and queue places with jobs that wait for
/// the returned sender to be dropped (or `hold` to pass).
fn occupy(server: &Server, jobs: usize, hold: Duration) -> mpsc::Sender<()> {
    let (release, wait) = mpsc::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
    for _ in 0..jobs {
        let state = server.state().clone();
        let wait = wait.clone();
        tokio::spawn(async move {
            state
                .pool()
                .run(move |_| {
                    let _ = wait.lock().unwrap().recv_timeout(hold);
                })
                .await
        });
    }
    release
}

async fn wait_until(server: &Server, what: &str, ok: impl Fn(&agesynth_serve::PoolStats) -> bool) {
    for _ in 0..500 {
        if ok(&server.state().pool().stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: {:?}", server.state().pool().stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let mut config = ServeConfig::ephemeral();
    config.workers = 1;
    config.queue = 1;
    let server = start(config);
    let release = occupy(&server, 2, Duration::from_secs(60));
    wait_until(&server, "one running, one queued", |s| {
        s.running == 1 && s.queued == 1
    })
    .await;
    let photo = png(&gradient(160, 120));
    let resp = post(&server, photo_form(photo.clone(), "p.png")).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    let (status, body) = refused(resp).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.error
            .starts_with("the server is busy (1 request(s) queued, the limit)"),
        "{}",
        body.error
    );
    assert_eq!(server.state().pool().stats().rejected, 1);
    // Once the queue drains, the same request is served.
    drop(release);
    wait_until(&server, "drained", |s| s.running == 0 && s.queued == 0).await;
    let resp = post(&server, photo_form(photo, "p.png")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    server.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_times_out_with_504_and_is_not_run() {
    let mut config = ServeConfig::ephemeral();
    config.limits.timeout = Duration::from_millis(700);
    let server = start(config);
    let release = occupy(&server, 1, Duration::from_secs(60));
    wait_until(&server, "the worker is busy", |s| s.running == 1).await;
    let resp = post(&server, photo_form(png(&gradient(160, 120)), "p.png")).await;
    let (status, body) = refused(resp).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        body.error,
        "the request took longer than the server's limit of 0.7 s"
    );
    // The abandoned request is dropped unrun once the worker is free.
    drop(release);
    wait_until(&server, "abandoned", |s| s.abandoned == 1 && s.queued == 0).await;
    assert_eq!(server.state().pool().stats().completed, 1);
    server.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_job_only() {
    let server = start(ServeConfig::ephemeral());
    let out = server
        .state()
        .pool()
        .run(|_| -> u32 { panic!("deliberate test panic") })
        .await;
    assert_eq!(
        out,
        Err(agesynth_serve::PoolError::Panicked(
            "deliberate test panic".into()
        ))
    );
    // The worker lives on and the server still ages photos.
    let resp = post(&server, photo_form(png(&gradient(160, 120)), "p.png")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stats = server.state().pool().stats();
    assert_eq!((stats.panicked, stats.completed), (1, 2));
    server.shutdown().unwrap();
}

#[test]
fn the_default_address_is_loopback() {
    let c = ServeConfig::default();
    assert!(c.addr.ip().is_loopback());
    assert_eq!(c.addr.port(), 8080);
    assert!(ServeConfig::ephemeral().addr.ip().is_loopback());
}
