//! `agesynth weights convert`: precision, sidecar and refusal of in-place
//! writes, through the built binary.

use std::{collections::HashMap, path::PathBuf, process::Command};

use agesynth_core::{
    candle_core::{DType, Device, Tensor},
    io,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agesynth-weights-cli-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn convert_writes_f16_with_the_sidecar_and_refuses_in_place() {
    let dir = scratch("convert");
    let input = dir.join("g.safetensors");
    let w = Tensor::from_vec(vec![0.1f32, -2.5, 3.0e-3, 1234.5], (2, 2), &Device::Cpu).unwrap();
    let idx = Tensor::from_vec(vec![7i64, -1], 2, &Device::Cpu).unwrap();
    let tensors = HashMap::from([("w".to_string(), w), ("idx".to_string(), idx)]);
    io::save_with_sidecar(&input, &tensors, &serde_json::json!({"preset": "x"})).unwrap();

    let output = dir.join("g16.safetensors");
    let run = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(["weights", "convert"])
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let back = io::load_tensors(&output, &Device::Cpu).unwrap();
    assert_eq!(back["w"].dtype(), DType::F16);
    assert_eq!(back["idx"].dtype(), DType::I64, "integers are kept");
    let v = back["w"]
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    // f16 keeps 11 significant bits: relative error ≤ 2⁻¹¹ ≈ 4.9e-4.
    for (got, want) in v.iter().zip([0.1f32, -2.5, 3.0e-3, 1234.5]) {
        assert!((got - want).abs() <= 4.9e-4 * want.abs(), "{got} vs {want}");
    }
    let side: serde_json::Value = io::load_json(io::sidecar_path(&output)).unwrap();
    assert_eq!(side["preset"], "x");

    // Writing over the input is refused with a non-zero exit.
    let same = Command::new(env!("CARGO_BIN_EXE_agesynth"))
        .args(["weights", "convert"])
        .arg(&input)
        .arg(&input)
        .output()
        .unwrap();
    assert!(!same.status.success());
    assert!(String::from_utf8_lossy(&same.stderr).contains("differ"));
    std::fs::remove_dir_all(&dir).ok();
}
