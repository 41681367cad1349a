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
/// identity for `seed` at 20–29, enlarged to `face` pixels, its corners
/// feathered into a soft grey-blue backdrop, its left edge at a third of
/// the free width.
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
    // A round vignette: the whole face, the chip's corners feathered into
    // the backdrop.
    let (r, feather) = (face as f32 * 0.56, face as f32 * 0.14);
    let c = face as f32 / 2.0;
    let mut px = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        let t = y as f32 / height as f32;
        for x in 0..width {
            let u = x as f32 / width as f32;
            let mut rgb = [
                206.0 - 26.0 * t,
                212.0 - 20.0 * t + 4.0 * u,
                222.0 - 12.0 * t,
            ];
            if (x0..x0 + face).contains(&x) && (y0..y0 + face).contains(&y) {
                let (fx, fy) = (x - x0, y - y0);
                let (dx, dy) = (fx as f32 + 0.5 - c, fy as f32 + 0.5 - c);
                let d = r - (dx * dx + dy * dy).sqrt();
                let a = (d / feather).clamp(0.0, 1.0);
                let a = a * a * (3.0 - 2.0 * a);
                let o = ((fy * face + fx) * 3) as usize;
                for (k, v) in rgb.iter_mut().enumerate() {
                    *v = a * big.pixels()[o + k] as f32 + (1.0 - a) * *v;
                }
            }
            px.extend(rgb.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
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
