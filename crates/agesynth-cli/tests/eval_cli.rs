//! `agesynth eval` through the built binary: clear errors for a missing
//! model or missing data, and a small FG-NET dev run (skipped without the
//! data) that writes the report with every row.

use std::{ffi::OsString, path::Path, process::Command};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agesynth-eval-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `agesynth eval` on two FG-NET inputs with each of `models` as a
/// `--model` argument, asserts it succeeded, and returns `metrics.json` and
/// `report.md` from `out`.
fn eval_fgnet(
    fgnet: &Path,
    weights: &Path,
    models: &[OsString],
    out: &Path,
) -> (serde_json::Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agesynth"));
    cmd.args(["eval", "--limit", "2", "--seed", "5", "--fgnet"])
        .arg(fgnet);
    for m in models {
        cmd.arg("--model").arg(m);
    }
    let run = cmd
        .arg("--weights")
        .arg(weights)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let m = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    (m, report)
}

#[test]
fn missing_model_or_data_is_a_named_error() {
    let dir = scratch("errors");
    let missing = dir.join("nope.safetensors");
    let run = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(["eval", "--fgnet"])
        .arg(&dir)
        .arg("--model")
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("nope.safetensors"), "{err}");

    let run = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(["eval", "--model"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("--fgnet DIR or --utkface DIR"), "{err}");

    // Two generators under one name cannot share a table.
    let run = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(["eval", "--fgnet"])
        .arg(&dir)
        .args(["--model", "x=a.safetensors", "--model", "x=b.safetensors"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("both called `x`"), "{err}");
}

#[test]
#[ignore = "needs real face data (../shared/data or $AGESYNTH_DATA); CI runs it with --ignored where present"]
fn eval_on_fgnet_dev_writes_the_report() {
    let Some(fgnet) = agesynth_data::testing::shared_subdir("fgnet-dev", "eval_on_fgnet_dev")
    else {
        return;
    };
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights");
    if !weights.join("face_recognition.safetensors").is_file() {
        eprintln!("skipping eval_on_fgnet_dev: the face networks' weights are not in weights/");
        return;
    }
    let dir = scratch("fgnet");
    let model = dir.join("facegan.safetensors");
    agesynth_pipeline::testing::export_fresh_generator(
        &agesynth_facegan::FaceGanConfig::cpu64(),
        0,
        &model,
    )
    .unwrap();
    let (m, report) = eval_fgnet(&fgnet, &weights, &[model.clone().into()], &dir.join("eval"));
    assert_eq!(m["n_inputs"], 2);
    // The generator and the baselines: copy, random real face, and on
    // FG-NET the person's own photo at the target.
    assert_eq!(m["rows"].as_array().map(Vec::len), Some(4 * 7));
    for row in [
        "| 0-9 | FaceGAN |",
        "| 50+ | copy input |",
        "| overall | random real face |",
        "| overall | same person, real photo |",
        "## Real ageing: one person's photos across groups",
    ] {
        assert!(report.contains(row), "{row} missing from the report");
    }
    assert!(dir.join("eval/samples.png").is_file());
    // dlib's and face-api's age columns side by side.
    if weights.join("age_gender.safetensors").is_file() {
        assert_eq!(m["judge"], "face-api");
        assert!(
            report.contains("age MAE to centre (dlib) ↓ | age-group acc. (face-api) ↑"),
            "{report}"
        );
    }

    // Two generators (an ablation table): one named, one by its file name,
    // each with its rows and its sample sheet, the baselines once.
    let other = dir.join("other.safetensors");
    agesynth_pipeline::testing::export_fresh_generator(
        &agesynth_facegan::FaceGanConfig::cpu64(),
        1,
        &other,
    )
    .unwrap();
    let out = dir.join("eval-two");
    let models = [
        format!("mixed={}", model.display()).into(),
        other.into_os_string(),
    ];
    let (m, report) = eval_fgnet(&fgnet, &weights, &models, &out);
    assert_eq!(m["rows"].as_array().map(Vec::len), Some(5 * 7));
    for row in [
        "| 0-9 | mixed |",
        "| overall | other |",
        "| 50+ | copy input |",
    ] {
        assert!(report.contains(row), "{row} missing from the report");
    }
    assert!(out.join("samples-mixed.png").is_file());
    assert!(out.join("samples-other.png").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
