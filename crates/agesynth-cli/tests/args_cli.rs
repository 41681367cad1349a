//! Presets, the bottleneck and the device are typed arguments: clap refuses
//! a wrong value before any work, listing the values it takes.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wrong_presets_bottlenecks_and_devices_are_refused_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let (ok, err) = run(&[
        "train",
        "facegan",
        "--data",
        ".",
        "--out",
        out,
        "--bottleneck",
        "sideways",
    ]);
    assert!(!ok);
    assert!(
        err.contains("sideways") && err.contains("modulation") && err.contains("concat"),
        "{err}"
    );
    let (ok, err) = run(&[
        "train",
        "cstylegan",
        "--data",
        ".",
        "--out",
        out,
        "--preset",
        "huge",
    ]);
    assert!(!ok);
    assert!(
        err.contains("huge") && err.contains("cpu64") && err.contains("gpu256"),
        "{err}"
    );
    let (ok, err) = run(&["demo", "--device", "tpu:0"]);
    assert!(!ok);
    assert!(err.contains("tpu:0") && err.contains("--device"), "{err}");
    // Nothing was created for the refused runs.
    assert!(!dir.path().join("run").exists());
}
