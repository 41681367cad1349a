//! Issue 17 through the built binary: signals, broken pipes, run-folder
//! locks and resume rules, memory budgets, damaged weights, and arguments
//! refused before any work. Each test is the regression test of an item of
//! the issue (numbered in its doc comment).

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use agesynth_core::candle_core::{Device, Tensor};
use agesynth_data::testing::{synthetic_face, write_jpeg};

fn agesynth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agesynth"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn make_data(dir: &Path, n: u64) -> PathBuf {
    let data = dir.join("utk");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..n {
        let age = [3, 15, 25, 35, 45, 70][i as usize % 6];
        let name = format!("{age}_{}_{}_2017010915{:07}.jpg.chip.jpg", i % 2, i % 5, i);
        write_jpeg(data.join(name), &synthetic_face(40, 40, i)).unwrap();
    }
    data
}

fn train(data: &Path, out: &Path, steps: u64) -> Command {
    train_every(data, out, steps, 1000)
}

fn train_every(data: &Path, out: &Path, steps: u64, checkpoint_every: u64) -> Command {
    train_with(data, out, steps, checkpoint_every, 4)
}

fn train_with(data: &Path, out: &Path, steps: u64, checkpoint_every: u64, batch: u64) -> Command {
    let mut c = agesynth();
    c.args(["train", "cstylegan", "--preset", "tiny"])
        .arg("--batch")
        .arg(batch.to_string())
        .args(["--split", "all", "--sample-every", "0", "--log-every", "1"])
        .arg("--checkpoint-every")
        .arg(checkpoint_every.to_string())
        .arg("--steps")
        .arg(steps.to_string())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(out.with_extension("agscache"));
    c
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn logged_steps(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Item 4: SIGTERM (what a scheduler, `docker stop` or systemd sends) saves
/// a checkpoint and exits 143, like SIGINT (130).
#[cfg(unix)]
#[test]
fn sigterm_and_sigint_save_a_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 24);
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let run = dir.path().join(format!("run-{signal}"));
        let mut child = train(&data, &run, 1_000_000)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(|| logged_steps(&run) >= 3, "three logged steps");
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        let reader = agesynth_train::RunDir::open_read_only(&run).unwrap();
        let latest = reader.latest().unwrap().expect("a final checkpoint");
        assert_eq!(latest.step() as usize, logged_steps(&run), "SIG{signal}");
        assert!(!run.join("lock").exists());
    }
}

/// Item 4: a closed stdout or stderr (`--json | head -1`, `2>&1 | head`)
/// neither panics nor stops the work: training finishes and saves, a
/// command whose stdout was cut exits 141.
#[cfg(unix)]
#[test]
fn broken_pipes_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 24);
    // Training with its stderr closed from the start.
    let run = dir.path().join("run");
    let mut child = train(&data, &run, 6)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let latest = agesynth_train::RunDir::open_read_only(&run)
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert_eq!(latest.step(), 6);
    // `data stats --json` into a closed pipe.
    let mut child = agesynth()
        .args(["data", "stats", "--json"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(status.code(), Some(0) | Some(141)),
        "{status:?} {err}"
    );
}

/// Items 1 and 5: a second trainer on a running run folder is refused
/// (the first one is not disturbed); `--resume` with nothing to resume is an
/// error unless `--resume-or-start`; a run folder is not overwritten without
/// `--resume`.
#[cfg(unix)]
#[test]
fn one_trainer_per_folder_and_strict_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 24);
    let run = dir.path().join("run");
    // Nothing to resume.
    let o = train(&data, &run, 3).arg("--resume").output().unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no checkpoint to resume"),
        "{}",
        stderr(&o)
    );
    assert!(!run.join("log.jsonl").exists());
    let o = train(&data, &run, 3)
        .arg("--resume-or-start")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // A run with checkpoints is not overwritten.
    let o = train(&data, &run, 3).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    // A live trainer (saving a checkpoint every step) holds the folder.
    let mut first = train_every(&data, &run, 1_000_000, 1)
        .arg("--resume")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| logged_steps(&run) >= 5, "the first trainer's steps");
    let o = train(&data, &run, 1_000_000)
        .arg("--resume")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&first.id().to_string()),
        "{}",
        stderr(&o)
    );
    // Readers meanwhile: sampling the live run creates and deletes nothing.
    for k in 0..4 {
        let o = agesynth()
            .args(["sample", "--rows", "1", "--model"])
            .arg(&run)
            .arg("--out")
            .arg(dir.path().join(format!("s{k}.png")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(first.try_wait().unwrap().is_none(), "the trainer died");
    Command::new("kill")
        .arg("-TERM")
        .arg(first.id().to_string())
        .status()
        .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(143));
}

/// `--r1-gamma` given with `--resume` replaces the run's saved R1 weight
/// (and is saved with the run); a negative or non-finite one is refused
/// before anything is trained.
#[test]
fn resume_takes_a_new_r1_weight() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 24);
    let run = dir.path().join("run");
    let o = train(&data, &run, 2).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r1 = |run: &Path| -> f64 {
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        cfg["r1_gamma"].as_f64().unwrap()
    };
    let before = r1(&run);
    assert_ne!(before, 0.75);
    for bad in ["-1", "NaN", "inf"] {
        let o = train(&data, &run, 3)
            .arg("--resume")
            .arg(format!("--r1-gamma={bad}"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "--r1-gamma {bad} was taken");
        assert!(stderr(&o).contains("--r1-gamma"), "{}", stderr(&o));
        assert_eq!(logged_steps(&run), 2, "--r1-gamma {bad} trained");
    }
    let o = train(&data, &run, 3)
        .args(["--resume", "--r1-gamma", "0.75"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("R1 weight γ 0.75 (was {before})")),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("changed loss weights"),
        "{}",
        stderr(&o)
    );
    assert_eq!(r1(&run), 0.75);
    assert_eq!(logged_steps(&run), 3);
}

/// Item 2: requests beyond the memory budget are refused before anything is
/// allocated, saying the limit and how to raise it; `/dev/zero` as a photo
/// is refused at the file limit.
#[test]
fn memory_budgets_refuse_absurd_requests() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 12);
    let run = dir.path().join("run");
    let t = Instant::now();
    let o = train_with(&data, &run, 3, 1000, 100_000)
        .env("AGESYNTH_MEMORY_LIMIT", "2G")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("lower --batch") && e.contains("AGESYNTH_MEMORY_LIMIT"),
        "{e}"
    );
    assert!(e.contains("2.0 GiB"), "{e}");
    // A tiny generator to sample from.
    let o = train(&data, &run, 1).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = agesynth()
        .args(["sample", "--rows", "100000", "--model"])
        .arg(&run)
        .arg("--out")
        .arg(dir.path().join("grid.png"))
        .env("AGESYNTH_MEMORY_LIMIT", "1G")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("lower --rows") && e.contains("1.0 GiB"), "{e}");
    assert!(!dir.path().join("grid.png").exists());
    assert!(t.elapsed() < Duration::from_secs(120));
    #[cfg(unix)]
    {
        let weights = agesynth_pipeline::testing::weights_dir_for_tests(dir.path()).unwrap();
        let o = agesynth()
            .args(["age", "/dev/zero", "--weights"])
            .arg(&weights)
            .arg("--out")
            .arg(dir.path().join("aged"))
            .output()
            .unwrap();
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains("/dev/zero") && e.contains("exceeds the limit"),
            "{e}"
        );
    }
}

/// Item 3: NaN weights are refused at load, naming the file and tensor;
/// `weights convert` refuses values f16 cannot hold.
#[test]
fn damaged_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("facegan.safetensors");
    agesynth_pipeline::testing::export_fresh_generator(
        &agesynth_facegan::FaceGanConfig::tiny(),
        0,
        &g,
    )
    .unwrap();
    let mut t = agesynth_core::io::load_tensors(&g, &Device::Cpu).unwrap();
    let name = t.keys().min().unwrap().clone();
    let bad = (t[&name].ones_like().unwrap() * f64::NAN).unwrap();
    t.insert(name.clone(), bad);
    agesynth_core::io::save_tensors(&g, &t, None).unwrap();
    let photo = dir.path().join("p.jpg");
    write_jpeg(&photo, &synthetic_face(64, 64, 1)).unwrap();
    let weights = agesynth_pipeline::testing::weights_dir_for_tests(dir.path()).unwrap();
    let o = agesynth()
        .arg("age")
        .arg(&photo)
        .arg("--generator")
        .arg(&g)
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(dir.path().join("aged"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("NaN") && e.contains(&name) && e.contains("facegan.safetensors"),
        "{e}"
    );

    let big = dir.path().join("big.safetensors");
    let w = Tensor::new(&[1.0f32, 1.0e6], &Device::Cpu).unwrap();
    agesynth_core::io::save_tensors(&big, &[("w".to_string(), w)].into(), None).unwrap();
    let out = dir.path().join("big16.safetensors");
    let o = agesynth()
        .args(["weights", "convert", "--dtype", "f16"])
        .arg(&big)
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("65504"), "{}", stderr(&o));
    assert!(!out.exists());
}

/// Item 8: wrong arguments are refused before any work, with the reason.
#[test]
fn bad_arguments_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let photo = dir.path().join("p.jpg");
    write_jpeg(&photo, &synthetic_face(64, 64, 1)).unwrap();
    let t = Instant::now();
    // --out naming an existing file: refused at once.
    let o = agesynth()
        .arg("age")
        .arg(&photo)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is an existing file"), "{}", stderr(&o));
    // An empty photo folder.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = agesynth().arg("age").arg(&empty).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("holds no"), "{}", stderr(&o));
    // Out-of-range values.
    for args in [
        vec!["age", "x.jpg", "--feather", "2"],
        vec!["age", "x.jpg", "--feather", "NaN"],
        vec!["sample", "--model", "m", "--out", "o.png", "--rows", "0"],
        vec!["eval", "--fgnet", "f", "--batch", "0"],
        vec!["eval", "--fgnet", "f", "--ref-per-group", "0"],
        vec!["synth-pairs", "--model", "m", "--out", "o", "--count", "0"],
    ] {
        let o = agesynth().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    // Target ages beyond any human age.
    let weights = agesynth_pipeline::testing::weights_dir_for_tests(dir.path()).unwrap();
    for ages in ["200", "1e30", "-1"] {
        let o = agesynth()
            .arg("age")
            .arg(&photo)
            .arg(format!("--ages={ages}"))
            .arg("--weights")
            .arg(&weights)
            .arg("--out")
            .arg(dir.path().join("aged"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{ages}");
        assert!(
            stderr(&o).contains("from 0 to 120"),
            "{ages}: {}",
            stderr(&o)
        );
    }
    // A missing model path says so.
    let o = agesynth()
        .args(["sample", "--model"])
        .arg(dir.path().join("nope"))
        .arg("--out")
        .arg(dir.path().join("g.png"))
        .output()
        .unwrap();
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(120));
}

/// Item 8: a cStyleGAN given where a FaceGAN is expected is named as such.
#[test]
fn the_wrong_kind_of_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 12);
    let run = dir.path().join("run");
    let o = train(&data, &run, 1).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let photo = dir.path().join("p.jpg");
    write_jpeg(&photo, &synthetic_face(64, 64, 1)).unwrap();
    let weights = agesynth_pipeline::testing::weights_dir_for_tests(dir.path()).unwrap();
    let o = agesynth()
        .arg("age")
        .arg(&photo)
        .arg("--generator")
        .arg(run.join("generator_ema.safetensors"))
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(dir.path().join("aged"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("describes a cStyleGAN generator"), "{e}");
    assert!(!e.contains("missing field"), "{e}");
}

/// Item 7: one bad chip (random bytes with a valid name, a JPEG truncated
/// to 40%, a 1x1 PNG) does not stop training, and every one is reported;
/// `data stats` does not count them as faces.
#[test]
fn bad_chips_are_skipped_and_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path(), 24);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    std::fs::write(&names[0], [0x5au8; 3000]).unwrap();
    let whole = std::fs::read(&names[1]).unwrap();
    std::fs::write(&names[1], &whole[..whole.len() * 2 / 5]).unwrap();
    let mut one = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut one),
        &[1, 2, 3],
        1,
        1,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    std::fs::write(&names[2], &one).unwrap();
    let run = dir.path().join("run");
    let o = train(&data, &run, 2).output().unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    for n in &names[..3] {
        let name = n.file_name().unwrap().to_string_lossy();
        assert!(e.contains(&*name), "{name} not reported:\n{e}");
    }
    assert!(e.contains("21 faces") && e.contains("3 skipped"), "{e}");
    let o = agesynth()
        .args(["data", "stats", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stats["faces"], 21);
    assert_eq!(stats["skipped_count"], 3);
}
