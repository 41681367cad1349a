//! A bounded load check of `agesynth serve`, on loopback only; it stops by
//! itself after `3 × --seconds` of load (plus start-up and a warm-up).
//!
//! ```text
//! cargo build -p agesynth-cli
//! cargo run -p agesynth-serve --example load -- \
//!     [--agesynth target/debug/agesynth] [--photo PHOTO] [--ages 30] \
//!     [--workers 1] [--queue 4] [--seconds 4]
//! ```
//!
//! It starts the real server (`agesynth serve --port 0`) as a child
//! process, sends two warm-up requests, then runs two phases of concurrent
//! clients, each posting the photo again as soon as it has its answer:
//!
//! 1. as many clients as the server has places (`workers + queue`): every
//!    request must succeed;
//! 2. three times as many: the surplus must get 503 (a client that gets a
//!    503 waits 100 ms before trying again), and nothing else may fail;
//! 3. phase 1 again: the server's memory must not have grown past what
//!    phase 1 left (10% slack for the allocator).
//!
//! For each phase it prints the requests, successes, 503s and other
//! errors, successful requests per second, p50/p95/max latency, and the
//! server's resident memory (`VmRSS`) before and after. The photo is
//! `--photo`, else FG-NET's `001A28.JPG` from the shared data folder when
//! present, else a synthetic person. Exit code 1 when a check fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agesynth_serve::testing::{start_agesynth_serve, synthetic_photo, ChildGuard};
use reqwest::multipart::{Form, Part};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    agesynth: PathBuf,
    photo: Option<PathBuf>,
    ages: String,
    workers: usize,
    queue: usize,
    seconds: f64,
}

fn parse_args() -> Res<Args> {
    let exe = std::env::current_exe()?;
    let default_bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("agesynth"))
        .unwrap_or_else(|| PathBuf::from("agesynth"));
    let mut a = Args {
        agesynth: default_bin,
        photo: None,
        ages: "30".into(),
        workers: 1,
        queue: 4,
        seconds: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--agesynth" => a.agesynth = value()?.into(),
            "--photo" => a.photo = Some(value()?.into()),
            "--ages" => a.ages = value()?,
            "--workers" => a.workers = value()?.parse()?,
            "--queue" => a.queue = value()?.parse()?,
            "--seconds" => a.seconds = value()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if !(a.seconds > 0.0 && a.seconds <= 60.0) {
        return Err("--seconds must be in (0, 60]".into());
    }
    Ok(a)
}

/// One request's outcome: its latency and status (0: no answer).
type Outcome = (Duration, u16);

async fn one_request(
    http: &reqwest::Client,
    url: &str,
    photo: &Arc<Vec<u8>>,
    ages: &str,
) -> Outcome {
    let form = Form::new()
        .part(
            "photo",
            Part::bytes(photo.as_ref().clone()).file_name("photo.jpg"),
        )
        .text("ages", ages.to_string());
    let t = Instant::now();
    let status = match http.post(url).multipart(form).send().await {
        Ok(resp) => {
            let s = resp.status().as_u16();
            // Read the whole answer: its time is part of the latency.
            match resp.bytes().await {
                Ok(_) => s,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    };
    (t.elapsed(), status)
}

struct Phase {
    clients: usize,
    wall: Duration,
    outcomes: Vec<Outcome>,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
}

async fn phase(
    server: &ChildGuard,
    url: &str,
    photo: &Arc<Vec<u8>>,
    ages: &str,
    clients: usize,
    seconds: f64,
) -> Phase {
    let rss_before = server.rss_kb();
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, photo, ages) = (
            http.clone(),
            url.to_string(),
            photo.clone(),
            ages.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < end {
                let o = one_request(&http, &url, &photo, &ages).await;
                out.push(o);
                if o.1 == 503 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            out
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap_or_default());
    }
    let wall = t0.elapsed();
    Phase {
        clients,
        wall,
        outcomes,
        rss_before,
        rss_after: server.rss_kb(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mib(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".into())
}

/// Prints the phase; returns its (successes, 503s, other failures).
fn report(name: &str, p: &Phase) -> (usize, usize, usize) {
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, s) in &p.outcomes {
        *by_status.entry(*s).or_default() += 1;
    }
    let ok = by_status.get(&200).copied().unwrap_or(0);
    let busy = by_status.get(&503).copied().unwrap_or(0);
    let other = p.outcomes.len() - ok - busy;
    let mut lat: Vec<Duration> = p
        .outcomes
        .iter()
        .filter(|o| o.1 == 200)
        .map(|o| o.0)
        .collect();
    lat.sort();
    let mut busy_lat: Vec<Duration> = p
        .outcomes
        .iter()
        .filter(|o| o.1 == 503)
        .map(|o| o.0)
        .collect();
    busy_lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: {} clients, {} requests in {:.1} s ({:.1}/s answered): {ok} ok, {busy} × 503, \
         {other} other (statuses {by_status:?})",
        p.clients,
        p.outcomes.len(),
        p.wall.as_secs_f64(),
        p.outcomes.len() as f64 / p.wall.as_secs_f64()
    );
    println!(
        "  ok: {:.2} requests/s, latency p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        ok as f64 / p.wall.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.95)),
        ms(lat.last().copied().unwrap_or_default()),
    );
    if !busy_lat.is_empty() {
        println!(
            "  503: latency p50 {:.1} ms, p95 {:.1} ms",
            ms(percentile(&busy_lat, 0.5)),
            ms(percentile(&busy_lat, 0.95))
        );
    }
    println!(
        "  server memory (VmRSS): {} before, {} after",
        mib(p.rss_before),
        mib(p.rss_after)
    );
    (ok, busy, other)
}

async fn run(a: Args) -> Res<bool> {
    let photo = match &a.photo {
        Some(p) => std::fs::read(p)?,
        None => match agesynth_data::testing::shared_data_dir()
            .map(|d| d.join("fgnet-dev/images/001A28.JPG"))
            .filter(|p| p.is_file())
        {
            Some(p) => {
                println!(
                    "photo: FG-NET {}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                );
                std::fs::read(p)?
            }
            None => {
                println!("photo: a synthetic person (no FG-NET photo found)");
                let dir = agesynth_pipeline::weights::repository_weights_dir();
                agesynth_serve::api::encode_png(&synthetic_photo(&dir, 7, 560, 400, 256)?)?
            }
        },
    };
    let (w, h) = image::load_from_memory(&photo)?.into_rgb8().dimensions();
    println!(
        "photo {w}x{h}, {} bytes; ages {}; {} worker(s), queue {}; load average {}",
        photo.len(),
        a.ages,
        a.workers,
        a.queue,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let photo = Arc::new(photo);
    if !a.agesynth.is_file() {
        return Err(format!(
            "{} not found: build it first (cargo build -p agesynth-cli)",
            a.agesynth.display()
        )
        .into());
    }
    let (workers, queue) = (a.workers.to_string(), a.queue.to_string());
    let (server, base) = start_agesynth_serve(
        &a.agesynth,
        &["--workers", &workers, "--queue", &queue],
        Duration::from_secs(300),
    )?;
    let url = format!("{base}/api/age");
    let rss_loaded = server.rss_kb();
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let (t, s) = one_request(&http, &url, &photo, &a.ages).await;
        println!("warm-up: {s} in {:.0} ms", t.as_secs_f64() * 1000.0);
        if s != 200 {
            return Err(format!("warm-up request answered {s}").into());
        }
    }
    println!(
        "server memory (VmRSS): {} after loading, {} after warm-up",
        mib(rss_loaded),
        mib(server.rss_kb())
    );
    let places = a.workers + a.queue;
    let within = phase(&server, &url, &photo, &a.ages, places, a.seconds).await;
    let over = phase(&server, &url, &photo, &a.ages, 3 * places, a.seconds).await;
    let again = phase(&server, &url, &photo, &a.ages, places, a.seconds).await;
    let (_, busy_a, other_a) = report("1. within the limit", &within);
    let (ok_b, busy_b, other_b) = report("2. over the limit", &over);
    let (_, busy_c, other_c) = report("3. within the limit again", &again);
    let mut passed = true;
    let failed_within = busy_a + other_a + busy_c + other_c;
    if failed_within > 0 {
        println!("FAIL: {failed_within} request(s) failed within the limit");
        passed = false;
    }
    if let (Some(first), Some(last)) = (within.rss_after, again.rss_after) {
        if last as f64 > first as f64 * 1.1 {
            println!(
                "FAIL: the server's memory grew from {} to {}",
                mib(Some(first)),
                mib(Some(last))
            );
            passed = false;
        }
    }
    if other_b > 0 {
        println!("FAIL: {other_b} request(s) over the limit failed with a status other than 503");
        passed = false;
    }
    if busy_b == 0 || ok_b == 0 {
        println!("FAIL: over the limit, expected both successes and 503s");
        passed = false;
    }
    drop(server);
    Ok(passed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let result = match parse_args() {
        Ok(a) => run(a).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(true) => {
            println!("load check passed");
            std::process::ExitCode::SUCCESS
        }
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
