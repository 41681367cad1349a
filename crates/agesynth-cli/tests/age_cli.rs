//! `agesynth age` and `agesynth demo` run as a user runs them: the built
//! binary, real weights (a freshly initialised FaceGAN until trained weights
//! ship), good and bad photos together.

use std::path::Path;
use std::process::Command;

use agesynth_core::FaceImage;
use agesynth_facegan::FaceGanConfig;
use agesynth_pipeline::testing::{export_fresh_generator, two_face_photo, weights_dir_for_tests};
use agesynth_pipeline::weights::repository_weights_dir;

fn gradient() -> FaceImage {
    let (w, h) = (160u32, 120u32);
    let px = (0..w * h)
        .flat_map(|i| [(i % w * 255 / w) as u8, (i / w * 255 / h) as u8, 90])
        .collect();
    FaceImage::new(w, h, px).unwrap()
}

#[test]
#[ignore = "needs real face data (../shared/data or $AGESYNTH_DATA); CI runs it with --ignored where present"]
fn bad_photos_are_named_and_fail_the_run_while_good_ones_are_aged() {
    let dir = tempfile::tempdir().unwrap();
    let weights = weights_dir_for_tests(dir.path()).unwrap();
    let no_face = dir.path().join("gradient.png");
    agesynth_data::draw::save_png(&no_face, &gradient()).unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not really a JPEG").unwrap();
    let missing = dir.path().join("missing.jpg");
    let good = two_face_photo("bad_photos_are_named_and_fail_the_run_while_good_ones_are_aged")
        .map(|img| {
            let p = dir.path().join("pair.png");
            agesynth_data::draw::save_png(&p, &img).unwrap();
            p
        });
    let out = dir.path().join("aged");
    let mut photos = vec![no_face.clone(), corrupt.clone(), missing.clone()];
    photos.extend(good.clone());
    let run = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .arg("age")
        .args(&photos)
        .args(["--ages", "20,60", "--json", "--weights"])
        .arg(&weights)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "must fail when a photo fails:\n{stderr}"
    );
    assert!(
        stderr.contains("no face found in") && stderr.contains("gradient.png"),
        "{stderr}"
    );
    assert!(stderr.contains("corrupt.jpg"), "{stderr}");
    assert!(stderr.contains("missing.jpg"), "{stderr}");
    let reports: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), photos.len(), "{reports:?}");
    for (r, p) in reports.iter().zip(&photos).take(3) {
        assert_eq!(r["photo"].as_str().unwrap(), p.to_str().unwrap());
        assert!(r["error"].as_str().is_some(), "{r}");
    }
    let Some(good) = good else {
        return;
    };
    let r = &reports[3];
    assert_eq!(r["photo"].as_str().unwrap(), good.to_str().unwrap());
    assert_eq!(r["faces"].as_array().unwrap().len(), 2);
    assert!(r["faces"][0]["estimated_age"].as_f64().is_some());
    assert_eq!(r["targets"][0]["label"], "20-29");
    assert_eq!(r["targets"][1]["label"], "50+");
    for name in ["pair_age20.png", "pair_age60.png", "pair_strip.png"] {
        assert!(out.join(name).is_file(), "{name} not written");
    }
    assert_eq!(r["outputs"].as_array().unwrap().len(), 3);
    assert!(stderr.contains("1 of 4 photo(s) aged"), "{stderr}");
}

#[test]
fn demo_writes_a_strip_from_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository_weights_dir();
    if !repo.join("cstylegan-cpu64.safetensors").is_file() {
        eprintln!("skipping demo_writes_a_strip_from_nothing: no cStyleGAN weights");
        return;
    }
    let g = dir.path().join("facegan.safetensors");
    export_fresh_generator(&FaceGanConfig::cpu64(), 0, &g).unwrap();
    let out = dir.path().join("demo.png");
    let run = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(["demo", "--ages", "10,70", "--generator"])
        .arg(&g)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let strip = image::open(&out).unwrap();
    // Two rows of three 192-px tiles.
    assert!(
        strip.width() >= 3 * 192 && strip.height() >= 2 * 192,
        "{:?}",
        (strip.width(), strip.height())
    );
    assert!(
        stderr.contains(Path::new("demo.png").to_str().unwrap()),
        "{stderr}"
    );
}
