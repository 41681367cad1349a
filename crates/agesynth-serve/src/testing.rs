//! Helpers for the tests, the browser check and the load check: a photo of
//! a synthetic person (no real face is ever shipped), and the child
//! processes they start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use agesynth_core::FaceImage;
use agesynth_data::transform::resize;
use agesynth_pipeline::demo::{demo_strip, load_cstylegan, DemoOptions};
use agesynth_pipeline::{weights, FaceAger};
use candle_core::Device;

/// A `width`×`height` photo of a synthetic person: the shipped cStyleGAN's
/// identity for `seed` at 20–29, enlarged to `face` pixels and set on a
/// soft grey-blue backdrop, its left edge at a third of the width.
pub fn synthetic_photo(
    weights_dir: &Path,
    seed: u64,
    width: u32,
    height: u32,
    face: u32,
) -> crate::Result<FaceImage> {
    let device = Device::Cpu;
    let style = load_cstylegan(&weights_dir.join(weights::CSTYLEGAN_WEIGHTS), &device)?;
    let ager = FaceAger::load(&weights_dir.join(weights::FACEGAN_WEIGHTS), &device)?;
    let demo = demo_strip(
        &style,
        &ager,
        &DemoOptions {
            seed,
            ages: vec![30.0],
            ..DemoOptions::default()
        },
    )?;
    let face = face.min(width).min(height);
    let big = resize(&demo.source, face, face).map_err(agesynth_pipeline::PipelineError::from)?;
    let (x0, y0) = ((width - face) / 3, (height - face) / 2);
    let mut px = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            if (x0..x0 + face).contains(&x) && (y0..y0 + face).contains(&y) {
                let o = (((y - y0) * face + (x - x0)) * 3) as usize;
                px.extend_from_slice(&big.pixels()[o..o + 3]);
            } else {
                let t = y as f32 / height as f32;
                let u = x as f32 / width as f32;
                px.extend_from_slice(&[
                    (196.0 - 30.0 * t) as u8,
                    (206.0 - 24.0 * t + 6.0 * u) as u8,
                    (218.0 - 10.0 * t) as u8,
                ]);
            }
        }
    }
    FaceImage::new(width, height, px).map_err(|e| agesynth_pipeline::PipelineError::from(e).into())
}

/// A child process that is killed (by its own id) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    /// The process.
    pub child: Child,
    /// What it is, for messages.
    pub what: String,
}

impl ChildGuard {
    /// Its resident memory in kB (Linux's `/proc/PID/status`, `VmRSS`), if
    /// it can be read.
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `agesynth serve` (the binary at `agesynth`) with `args` plus
/// `--port 0`, waits (up to `timeout`) for the line that says where it
/// listens, and returns the process and its URL. Its later output is
/// copied to this process's standard error.
pub fn start_agesynth_serve(
    agesynth: &Path,
    args: &[&str],
    timeout: Duration,
) -> std::io::Result<(ChildGuard, String)> {
    let child = Command::new(agesynth)
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut guard = ChildGuard {
        child,
        what: "agesynth serve".into(),
    };
    let stderr = guard.child.stderr.take().expect("piped");
    let url = wait_for_listening(stderr, timeout)?;
    Ok((guard, url))
}

fn wait_for_listening(stderr: ChildStderr, timeout: Duration) -> std::io::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[server] {line}");
            if !sent {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    let t0 = Instant::now();
    rx.recv_timeout(timeout).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "agesynth serve did not say where it listens within {:.0} s",
                t0.elapsed().as_secs_f64()
            ),
        )
    })
}
