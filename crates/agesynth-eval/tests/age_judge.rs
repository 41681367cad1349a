//! The second age judge (face-api's age-gender network) is optional: without
//! its weights file the networks load and the judge's columns are left out
//! with a message; a damaged file is an error naming it. Neither panics.

use std::path::Path;

use agesynth_core::{candle_core::Device, FaceImage};
use agesynth_eval::features::FaceNets;

fn shipped(name: &str) -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights")
        .join(name);
    p.is_file().then_some(p)
}

#[test]
fn without_the_age_gender_weights_the_judge_is_left_out_with_a_message() {
    let names = [
        "face_recognition.safetensors",
        "age.safetensors",
        "mtcnn.safetensors",
    ];
    let Some(files) = names.iter().map(|n| shipped(n)).collect::<Option<Vec<_>>>() else {
        eprintln!("skipping: the face networks' weights are not in weights/");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (f, n) in files.iter().zip(names) {
        std::fs::copy(f, dir.path().join(n)).unwrap();
    }
    let dev = Device::Cpu;
    let nets = FaceNets::load(dir.path(), &dev).unwrap();
    assert!(nets.age_gender.is_none());
    let why = nets.age_gender_missing.clone().unwrap();
    assert!(why.contains("age_gender.safetensors"), "{why}");
    let analyzer = nets.analyzer(&dev, 4);
    assert_eq!(analyzer.judge_name(), None);
    let grey = FaceImage::new(64, 64, vec![128; 64 * 64 * 3]).unwrap();
    let f = analyzer.analyze(&[grey.clone(), grey]).unwrap();
    assert_eq!(f.ages.len(), 2);
    assert!(f.judge_ages.is_empty() && f.female.is_empty() && !f.has_judge());

    // A file that is there but damaged is an error naming it.
    std::fs::write(
        dir.path().join("age_gender.safetensors"),
        b"not safetensors",
    )
    .unwrap();
    let msg = match FaceNets::load(dir.path(), &dev) {
        Ok(_) => panic!("a damaged age_gender.safetensors loaded"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains("age_gender.safetensors"), "{msg}");

    // With the shipped file the judge runs on every image.
    let Some(ag) = shipped("age_gender.safetensors") else {
        return;
    };
    std::fs::copy(ag, dir.path().join("age_gender.safetensors")).unwrap();
    let nets = FaceNets::load(dir.path(), &dev).unwrap();
    let analyzer = nets.analyzer(&dev, 4);
    assert_eq!(analyzer.judge_name(), Some("face-api"));
    let img = FaceImage::new(64, 64, vec![100; 64 * 64 * 3]).unwrap();
    let f = analyzer.analyze(&[img.clone(), img]).unwrap();
    assert!(f.has_judge() && f.female.len() == 2);
    assert!(f.female.iter().all(|p| (0.0..=1.0).contains(p)));
}
