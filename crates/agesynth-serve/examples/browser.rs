//! The page in a real browser: headless Chromium driven through WebDriver
//! (`chromedriver`), against the real `agesynth serve`.
//!
//! ```text
//! cargo build -p agesynth-cli
//! cargo run -p agesynth-serve --example browser -- \
//!     [--agesynth target/debug/agesynth] [--chromedriver chromedriver] \
//!     [--photo PHOTO] [--screenshot serve.png]
//! ```
//!
//! It starts the server on a free loopback port and chromedriver on
//! another, loads the page, uploads a photo (by default a synthetic
//! person rendered by the shipped cStyleGAN; `--photo` takes any JPEG or
//! PNG), waits for the aged photo, checks that the faces are outlined and
//! that the aged photo has the photo's size and other pixels, moves the
//! age slider and waits for the new age's photo (a different image of the
//! same size), asks for all ages, saves a screenshot, then uploads a file
//! that is no image and checks the page shows the server's words. Both
//! child processes are stopped at the end, whatever happens. Exit code 0
//! when every check passed.
//!
//! WebDriver is a JSON protocol over HTTP; the few commands used here are
//! sent with reqwest, so no WebDriver crate is needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agesynth_serve::testing::{start_agesynth_serve, synthetic_photo, ChildGuard};
use base64::Engine;
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Args {
    agesynth: PathBuf,
    chromedriver: String,
    chromium: Option<String>,
    photo: Option<PathBuf>,
    screenshot: PathBuf,
    error_screenshot: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let exe = std::env::current_exe()?;
    // target/debug/examples/browser -> target/debug/agesynth
    let default_bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("agesynth"))
        .unwrap_or_else(|| PathBuf::from("agesynth"));
    let mut a = Args {
        agesynth: default_bin,
        chromedriver: "chromedriver".into(),
        chromium: None,
        photo: None,
        screenshot: PathBuf::from("serve-screenshot.png"),
        error_screenshot: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--agesynth" => a.agesynth = value()?.into(),
            "--chromedriver" => a.chromedriver = value()?,
            "--chromium" => a.chromium = Some(value()?),
            "--photo" => a.photo = Some(value()?.into()),
            "--screenshot" => a.screenshot = value()?.into(),
            "--error-screenshot" => a.error_screenshot = Some(value()?.into()),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(a)
}

/// A WebDriver session.
struct Driver {
    http: reqwest::Client,
    base: String,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Res<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if !status.is_success() {
            return Err(format!("WebDriver {path}: {status}: {}", v["value"]).into());
        }
        Ok(v["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Res<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn find(&self, css: &str) -> Res<String> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await?;
        Ok(v[ELEMENT].as_str().ok_or("no element id")?.to_string())
    }

    async fn js(&self, script: &str) -> Res<Value> {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits until `script` returns something truthy; returns it.
    async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Res<Value> {
        let t0 = Instant::now();
        loop {
            let v = self.js(script).await?;
            let truthy = !(v.is_null() || v == json!(false) || v == json!(0) || v == json!(""));
            if truthy {
                return Ok(v);
            }
            if t0.elapsed() > timeout {
                let page = self
                    .js("return [document.body.dataset.state, document.getElementById('status').textContent, document.getElementById('error').textContent].join(' | ')")
                    .await?;
                return Err(format!("timed out waiting for {what} (page: {page})").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn upload(&self, path: &Path) -> Res<()> {
        let input = self.find("#file").await?;
        let text = path.canonicalize()?.to_string_lossy().into_owned();
        self.post(&format!("/element/{input}/value"), json!({"text": text}))
            .await?;
        Ok(())
    }

    async fn screenshot(&self, path: &Path) -> Res<u64> {
        let b64 = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .await?
            .as_str()
            .ok_or("no screenshot")?
            .to_string();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &bytes)?;
        Ok(bytes.len() as u64)
    }
}

/// Compares two images of the page by their pixels (drawn on canvases):
/// their natural sizes and how many pixels differ.
const COMPARE_JS: &str = r#"
function compareImages(a, b) {
const pixels = (img) => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  return g.getImageData(0, 0, c.width, c.height).data;
};
const pa = pixels(a), pb = pixels(b);
let diff = 0;
if (pa.length === pb.length) {
  for (let i = 0; i < pa.length; i += 4) {
    if (pa[i] !== pb[i] || pa[i + 1] !== pb[i + 1] || pa[i + 2] !== pb[i + 2]) diff++;
  }
}
return { a: [a.naturalWidth, a.naturalHeight], b: [b.naturalWidth, b.naturalHeight], diff };
}
"#;

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn check(ok: bool, what: impl std::fmt::Display) -> Res<()> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

async fn run(args: Args, work: &Path) -> Res<()> {
    // The photo: given, or a synthetic person.
    let photo = match &args.photo {
        Some(p) => p.clone(),
        None => {
            let dir = agesynth_pipeline::weights::repository_weights_dir();
            let img = synthetic_photo(&dir, 7, 560, 400, 256)?;
            let p = work.join("synthetic-person.png");
            std::fs::write(&p, agesynth_serve::api::encode_png(&img)?)?;
            p
        }
    };
    let (w, h) = image::image_dimensions(&photo)?;
    let not_a_photo = work.join("not-a-photo.png");
    std::fs::write(&not_a_photo, "this is a text file, not a photo\n")?;

    if !args.agesynth.is_file() {
        return Err(format!(
            "{} not found: build it first (cargo build -p agesynth-cli)",
            args.agesynth.display()
        )
        .into());
    }
    let (_server, url) = start_agesynth_serve(&args.agesynth, &[], Duration::from_secs(300))?;
    println!("server at {url}");

    let port = free_port()?;
    let driver_proc = Command::new(&args.chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.chromedriver))?;
    let _driver_proc = ChildGuard {
        child: driver_proc,
        what: "chromedriver".into(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()?;
    let wd = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while http.get(format!("{wd}/status")).send().await.is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("chromedriver did not start within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut chrome = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1200,1080", "--hide-scrollbars", "--force-device-scale-factor=1"
    ]});
    if let Some(bin) = &args.chromium {
        chrome["binary"] = json!(bin);
    }
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome", "goog:chromeOptions": chrome
    }}});
    let session: Value = http
        .post(format!("{wd}/session"))
        .json(&caps)
        .send()
        .await?
        .json()
        .await?;
    let id = session["value"]["sessionId"]
        .as_str()
        .ok_or_else(|| format!("no WebDriver session: {session}"))?
        .to_string();
    let d = Driver {
        http: http.clone(),
        base: format!("{wd}/session/{id}"),
    };
    let result = drive(&d, &url, &photo, (w, h), &not_a_photo, &args).await;
    let _ = d.call(reqwest::Method::DELETE, "", None).await;
    result
}

async fn drive(
    d: &Driver,
    url: &str,
    photo: &Path,
    (w, h): (u32, u32),
    not_a_photo: &Path,
    args: &Args,
) -> Res<()> {
    let long = Duration::from_secs(240);
    d.post("/url", json!({"url": url})).await?;
    let title = d.js("return document.title").await?;
    check(
        title.as_str().is_some_and(|t| t.contains("agesynth")),
        format!("page loads ({title})"),
    )?;
    d.wait_for(
        "the version line",
        "return document.getElementById('version').textContent",
        long,
    )
    .await?;

    // Upload: the aged photo appears, the faces are outlined.
    d.upload(photo).await?;
    let first = d
        .wait_for(
            "the aged photo",
            "const a = document.getElementById('after');
             return document.body.dataset.state === 'ready' && a.complete && a.naturalWidth > 0
                 && a.dataset.group",
            long,
        )
        .await?;
    let boxes = d
        .js("return document.querySelectorAll('#boxes .box').length")
        .await?;
    check(
        boxes.as_u64().unwrap_or(0) >= 1,
        format!("{boxes} face(s) outlined"),
    )?;
    let cmp = d
        .js(&compare_call(
            "document.getElementById('before')",
            "document.getElementById('after')",
        ))
        .await?;
    check(
        cmp["b"] == json!([w, h]) && cmp["a"] == json!([w, h]),
        format!("the aged photo is {w}x{h} like the photo ({cmp})"),
    )?;
    check(
        cmp["diff"].as_u64().unwrap_or(0) > 100,
        format!(
            "the aged photo differs from the photo in {} pixels",
            cmp["diff"]
        ),
    )?;

    // Move the slider: a click on its middle sets 40, another age group.
    d.js("window.__first = document.getElementById('after').cloneNode(); return true")
        .await?;
    let slider = d.find("#age").await?;
    d.post(&format!("/element/{slider}/click"), json!({}))
        .await?;
    let age = d
        .js("return Number(document.getElementById('age').value)")
        .await?;
    let group = d
        .wait_for(
            "the photo at the new age",
            &format!(
                "const a = document.getElementById('after');
                 return document.body.dataset.state === 'ready' && a.complete
                     && a.dataset.group !== '{first}' && a.dataset.age === '{age}'
                     && a.naturalWidth > 0 && a.dataset.group",
                first = first.as_str().unwrap_or_default()
            ),
            long,
        )
        .await?;
    println!("slider moved to {age}: group {first} -> {group}");
    let cmp = d
        .js(&compare_call(
            "window.__first",
            "document.getElementById('after')",
        ))
        .await?;
    check(
        cmp["a"] == json!([w, h]) && cmp["b"] == json!([w, h]),
        format!("the new aged photo is {w}x{h} too ({cmp})"),
    )?;
    check(
        cmp["diff"].as_u64().unwrap_or(0) > 100,
        format!(
            "it differs from the first aged photo in {} pixels",
            cmp["diff"]
        ),
    )?;
    let caption = d
        .js("return document.getElementById('after-caption').textContent")
        .await?;
    check(
        caption
            .as_str()
            .is_some_and(|c| c.contains(&format!("age {age}"))),
        format!("the caption says the age: {caption}"),
    )?;
    let link = d
        .js("const l = document.getElementById('download'); return [l.download, l.href.slice(0, 22)]")
        .await?;
    check(
        link[1] == json!("data:image/png;base64,"),
        format!("the download link holds the PNG ({})", link[0]),
    )?;

    // All ages: one image per age group.
    let all = d.find("#all").await?;
    d.post(&format!("/element/{all}/click"), json!({})).await?;
    let n = d
        .wait_for(
            "all ages",
            "const imgs = [...document.querySelectorAll('#grid img')];
             return !document.getElementById('all-ages').hidden
                 && document.body.dataset.state === 'ready'
                 && imgs.every((i) => i.complete && i.naturalWidth > 0) && imgs.length",
            long,
        )
        .await?;
    check(n == json!(6), format!("{n} images, one per age group"))?;
    // Let the last image paint before the screenshot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = d.screenshot(&args.screenshot).await?;
    println!("screenshot: {} ({bytes} bytes)", args.screenshot.display());

    // A bad upload shows the server's words.
    d.upload(not_a_photo).await?;
    let msg = d
        .wait_for(
            "the error message",
            "const e = document.getElementById('error');
             return document.body.dataset.state === 'error' && !e.hidden && e.textContent",
            long,
        )
        .await?;
    check(
        msg.as_str()
            .is_some_and(|m| m.contains("HTTP 422") && m.contains("not a JPEG or PNG image")),
        format!("a bad upload shows its message: {msg}"),
    )?;
    if let Some(p) = &args.error_screenshot {
        d.screenshot(p).await?;
        println!("error screenshot: {}", p.display());
    }
    Ok(())
}

fn compare_call(a: &str, b: &str) -> String {
    format!("{COMPARE_JS}\nreturn compareImages({a}, {b});")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let work = std::env::temp_dir().join(format!("agesynth-browser-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let result = run(args, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(()) => {
            println!("browser check passed");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("browser check FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
