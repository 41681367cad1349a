//! The crash test of issue 17: a tiny cStyleGAN run is SIGKILLed at random
//! moments (inside checkpoint writes, pruning, log appends, the cache build,
//! start-up), resumed each time with `--resume-or-start`, and checked after
//! every kill:
//!
//! - the newest intact checkpoint never goes back;
//! - the loss log has no duplicate or missing step (1, 2, …, m with m at
//!   least the newest checkpoint's step);
//! - nothing a killed writer left (temporary and half-pruned folders,
//!   temporary files) survives the next start;
//!
//! and at the end the final weights, optimiser states and loss log equal,
//! byte for byte, those of an uninterrupted run with the same seed.
//!
//! `AGESYNTH_CRASH_KILLS` sets the number of kills (20 by default, as in
//! CI; more by hand), `AGESYNTH_CRASH_SEED` the seed of the kill moments
//! (printed, so that a failure can be replayed).

#![cfg(unix)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agesynth_data::testing::{synthetic_face, write_jpeg};

fn agesynth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agesynth"))
}

/// 48 synthetic UTKFace chips spread over the age groups.
fn make_data(dir: &Path) -> PathBuf {
    let data = dir.join("utk");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..48u64 {
        let age = [3, 15, 25, 35, 45, 70][i as usize % 6] + i % 5;
        let name = format!("{age}_{}_{}_2017010915{:07}.jpg.chip.jpg", i % 2, i % 5, i);
        write_jpeg(data.join(name), &synthetic_face(40, 40, i)).unwrap();
    }
    data
}

fn train(data: &Path, out: &Path, cache: &Path, steps: u64, resume: bool) -> Command {
    let mut c = agesynth();
    c.args(["train", "cstylegan", "--preset", "tiny", "--batch", "4"])
        .args(["--seed", "7", "--split", "all", "--quiet"])
        .args(["--checkpoint-every", "1", "--keep", "2"])
        .args(["--sample-every", "0", "--log-every", "1"])
        .arg("--steps")
        .arg(steps.to_string())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if resume {
        c.arg("--resume-or-start");
    }
    c
}

fn run_ok(mut c: Command) -> Duration {
    let t = Instant::now();
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The steps of the log's complete lines (a line torn by the kill is not a
/// record).
fn log_steps(run: &Path) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string(run.join("log.jsonl")) else {
        return Vec::new();
    };
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| {
                panic!("unreadable complete log line `{l}`: {e}");
            })["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn log_losses(run: &Path) -> Vec<(u64, BTreeMap<String, f64>)> {
    agesynth_train::log::read_log(run.join("log.jsonl"))
        .unwrap()
        .into_iter()
        .map(|r| (r.step, r.losses))
        .collect()
}

/// What a killed writer may leave in the run folder, by kind.
fn leftovers(run: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let ck = run.join("checkpoints");
    for dir in [run.to_path_buf(), ck.clone(), run.join("samples")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let kind = if name.starts_with(".tmp-") {
                "a checkpoint write"
            } else if name.starts_with(".trash-") {
                "pruning"
            } else if name.ends_with(".tmp") {
                "an atomic file write"
            } else if dir == ck && name.starts_with("step-") && !p.join("meta.json").is_file() {
                "a half-written step folder"
            } else {
                continue;
            };
            out.push((kind.to_string(), p));
        }
    }
    out.sort();
    out
}

fn newest_intact(run: &Path) -> u64 {
    match agesynth_train::RunDir::open_read_only(run) {
        Ok(r) => r.latest().unwrap().map_or(0, |c| c.step()),
        Err(_) => 0,
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let kills = env_or("AGESYNTH_CRASH_KILLS", 20) as usize;
    let seed = env_or("AGESYNTH_CRASH_SEED", 17);
    // Enough steps that every session has some left to be killed in.
    let steps_total = 60.max(3 * kills as u64);
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());

    // The uninterrupted reference, and how long start-up and a step take.
    let reference = dir.path().join("reference");
    let ref_cache = dir.path().join("cache/ref.agscache");
    let startup = run_ok(train(
        &data,
        &dir.path().join("probe"),
        &ref_cache,
        0,
        false,
    ));
    let whole = run_ok(train(&data, &reference, &ref_cache, steps_total, false));
    let step_s = (whole.saturating_sub(startup)).as_secs_f64() / steps_total as f64;
    let (lo, hi) = (
        0.3 * startup.as_secs_f64(),
        startup.as_secs_f64() + 2.0 * step_s * steps_total as f64 / (kills as f64 + 2.0),
    );
    eprintln!(
        "crash test: {kills} kills, seed {seed}; start-up {:.2} s, {:.1} ms a step; kills at {lo:.2}-{hi:.2} s",
        startup.as_secs_f64(),
        step_s * 1e3
    );

    let run = dir.path().join("crashed");
    let cache = dir.path().join("cache/crashed.agscache");
    let mut rng = Rng(seed);
    let mut newest = 0u64;
    let mut logged = 0u64;
    let mut pending: Vec<(String, PathBuf)> = Vec::new();
    let mut moments: BTreeMap<String, usize> = BTreeMap::new();
    let mut finished_early = 0usize;
    for k in 0..kills {
        let mut child = train(&data, &run, &cache, steps_total, true)
            .spawn()
            .unwrap();
        let delay = Duration::from_secs_f64(rng.uniform(lo, hi));
        let t = Instant::now();
        let mut exited = None;
        while t.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if exited.is_none() {
            child.kill().unwrap();
        } else {
            finished_early += 1;
        }
        let out = child.wait_with_output().unwrap();
        if let Some(status) = exited {
            // A session that ends on its own must have finished the run.
            assert!(
                status.success(),
                "kill {k}: the session failed by itself ({status}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // The newest intact checkpoint never goes back.
        let now = newest_intact(&run);
        assert!(
            now >= newest,
            "kill {k}: checkpoint went back from {newest} to {now}"
        );
        // The log: 1, 2, ..., m without duplicates or gaps, m >= checkpoint.
        let steps = log_steps(&run);
        let want: Vec<u64> = (1..=steps.len() as u64).collect();
        assert_eq!(steps, want, "kill {k}: log steps have a gap or a duplicate");
        assert!(
            steps.len() as u64 >= now,
            "kill {k}: the log ends at {} before the checkpoint {now}",
            steps.len()
        );
        // What the previous kill left is gone once this session got going.
        let progressed = now > newest || steps.len() as u64 > logged.max(newest);
        if progressed {
            for (_, p) in &pending {
                assert!(
                    !p.exists(),
                    "kill {k}: {} survived the next start",
                    p.display()
                );
            }
        }
        let left = leftovers(&run);
        let moment = left
            .first()
            .map(|(kind, _)| format!("inside {kind}"))
            .unwrap_or_else(|| {
                if now == 0 && steps.is_empty() {
                    "during start-up or the cache build".to_string()
                } else {
                    "between writes".to_string()
                }
            });
        if exited.is_none() {
            *moments.entry(moment).or_default() += 1;
        }
        if progressed {
            pending = left;
        } else {
            pending.extend(left);
        }
        newest = now;
        logged = steps.len() as u64;
    }

    // The last session runs to the end.
    let out = train(&data, &run, &cache, steps_total, true)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, p) in &pending {
        assert!(!p.exists(), "{} survived the final start", p.display());
    }
    assert_eq!(leftovers(&run), Vec::new());
    assert!(!run.join("lock").exists(), "the lock outlived its writer");
    let cache_dir: Vec<String> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cache_dir.iter().all(|n| !n.ends_with(".tmp")),
        "{cache_dir:?}"
    );
    let steps_dirs: Vec<u64> = agesynth_train::RunDir::open_read_only(&run)
        .unwrap()
        .checkpoint_steps()
        .unwrap();
    assert_eq!(steps_dirs, vec![steps_total - 1, steps_total]);

    // Equal to the uninterrupted run, byte for byte.
    let last = format!("checkpoints/step-{steps_total:06}");
    for part in [
        "generator",
        "discriminator",
        "generator_ema",
        "optim_g",
        "optim_d",
    ] {
        let file = format!("{last}/{part}.safetensors");
        assert!(
            std::fs::read(reference.join(&file)).unwrap()
                == std::fs::read(run.join(&file)).unwrap(),
            "{file} differs from the uninterrupted run's"
        );
    }
    assert_eq!(
        std::fs::read(reference.join("generator_ema.safetensors")).unwrap(),
        std::fs::read(run.join("generator_ema.safetensors")).unwrap()
    );
    assert_eq!(log_losses(&run), log_losses(&reference));
    eprintln!(
        "crash test: {} kills survived over {steps_total} steps ({finished_early} sessions ended before their kill); kill moments: {moments:?}",
        kills - finished_early
    );
}
