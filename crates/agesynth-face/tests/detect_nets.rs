//! MTCNN without real photos: network-level parity with the reference package
//! (onnxruntime on its own ONNX files, `scripts/mtcnn_reference.py`), images
//! without faces, and bad weights files.

use std::path::{Path, PathBuf};

use agesynth_core::{Error, FaceImage};
use agesynth_face::detect::{Mtcnn, MtcnnConfig};
use agesynth_face::mtcnn::tensor_shapes;
use candle_core::{Device, Tensor};

fn weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/mtcnn.safetensors")
}

fn detector() -> Mtcnn {
    Mtcnn::load(weights(), &MtcnnConfig::default(), &Device::Cpu)
        .expect("weights/mtcnn.safetensors loads")
}

/// The fixture's inputs: over the NHWC-flattened index i,
/// `((i * 7919 + seed * 104729) mod 2003) / 1001 − 1`, as f32.
fn fixture_input(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| (((i * 7919 + seed * 104729) % 2003) as f64 / 1001.0 - 1.0) as f32)
        .collect();
    // NHWC (the ONNX layout, in the nets' transposed frame) -> NCHW.
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap()
        .contiguous()
        .unwrap()
}

#[test]
fn nets_match_onnxruntime_reference() {
    let det = detector();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mtcnn/nets.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut checked = 0;
    for net in fx["nets"].as_array().unwrap() {
        let shape: Vec<usize> = net["input_shape_nhwc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let x = fixture_input(&shape, net["seed"].as_u64().unwrap());
        let name = net["net"].as_str().unwrap();
        // In the reference's output order.
        let outs: Vec<Tensor> = match name {
            "pnet" => {
                let (prob, reg) = det.nets().pnet.forward(&x).unwrap();
                // The ONNX outputs are NHWC maps.
                vec![
                    reg.permute((0, 2, 3, 1)).unwrap(),
                    prob.permute((0, 2, 3, 1)).unwrap(),
                ]
            }
            "rnet" => {
                let (prob, reg) = det.nets().rnet.forward(&x).unwrap();
                vec![reg, prob]
            }
            "onet" => {
                let (prob, reg, points) = det.nets().onet.forward(&x).unwrap();
                vec![reg, points, prob]
            }
            other => panic!("unknown net {other}"),
        };
        let refs = net["outputs"].as_array().unwrap();
        assert_eq!(outs.len(), refs.len(), "{name}");
        for (out, r) in outs.iter().zip(refs) {
            let want_shape: Vec<usize> = r["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(out.dims(), want_shape.as_slice(), "{name} {}", r["name"]);
            let got = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want: Vec<f32> = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            println!("{name} {}: max abs diff {max:.2e}", r["name"]);
            assert!(max < 1e-4, "{name} {}: max abs diff {max}", r["name"]);
            checked += 1;
        }
    }
    assert_eq!(checked, 7);
}

fn image(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> FaceImage {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            px.extend_from_slice(&f(x, y));
        }
    }
    FaceImage::new(w, h, px).unwrap()
}

#[test]
fn images_without_faces_give_no_detections() {
    let det = detector();
    // Flat, a smooth gradient, stripes, and images smaller than one P-Net
    // window or than the minimum face.
    let cases = [
        ("flat grey 320x240", image(320, 240, |_, _| [128, 128, 128])),
        (
            "gradient 200x150",
            image(200, 150, |x, y| [x as u8, y as u8, 100]),
        ),
        (
            "stripes 160x160",
            image(
                160,
                160,
                |x, _| if x / 8 % 2 == 0 { [0; 3] } else { [255; 3] },
            ),
        ),
        ("1x1", image(1, 1, |_, _| [10, 20, 30])),
        ("11x40", image(11, 40, |_, _| [200, 10, 10])),
        ("19x19", image(19, 19, |x, y| [(x * y) as u8, 0, 0])),
    ];
    for (what, img) in cases {
        let faces = det.detect(&img).unwrap();
        assert!(faces.is_empty(), "{what}: {faces:?}");
    }
}

#[test]
fn pyramid_follows_the_reference() {
    let det = detector();
    // 12 / 20 = 0.6, then × 0.709 while the shorter side stays >= 12 px.
    let s = det.scales(100);
    assert_eq!(s.len(), 5);
    assert!((s[0] - 0.6).abs() < 1e-12 && (s[1] - 0.6 * 0.709).abs() < 1e-12);
    assert!(det.scales(19).is_empty());
    assert!(Mtcnn::load(
        weights(),
        &MtcnnConfig {
            scale_factor: 1.0,
            ..MtcnnConfig::default()
        },
        &Device::Cpu
    )
    .is_err());
}

#[test]
fn bad_weights_files_are_errors_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(weights()).unwrap();

    // Truncated.
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = Mtcnn::load(&truncated, &MtcnnConfig::default(), &Device::Cpu).unwrap_err();
    let msg = format!("{err}");
    assert!(msg.contains("truncated.safetensors"), "{msg}");

    // Missing file.
    let missing = dir.path().join("missing.safetensors");
    let msg = format!(
        "{}",
        Mtcnn::load(&missing, &MtcnnConfig::default(), &Device::Cpu).unwrap_err()
    );
    assert!(msg.contains("missing.safetensors"), "{msg}");

    // Mismatched: one tensor with the wrong shape, one missing.
    let mut tensors = agesynth_core::io::load_tensors(weights(), &Device::Cpu).unwrap();
    assert_eq!(tensors.len(), tensor_shapes().len());
    tensors.insert(
        "onet.dense6_3.weight".to_string(),
        Tensor::zeros((10, 255), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let wrong = dir.path().join("wrong_shape.safetensors");
    agesynth_core::io::save_tensors(&wrong, &tensors, None).unwrap();
    match Mtcnn::load(&wrong, &MtcnnConfig::default(), &Device::Cpu).unwrap_err() {
        Error::TensorShape { path, name, .. } => {
            assert_eq!(path, wrong);
            assert_eq!(name, "onet.dense6_3.weight");
        }
        e => panic!("expected a shape error, got {e}"),
    }
    let mut tensors = agesynth_core::io::load_tensors(weights(), &Device::Cpu).unwrap();
    tensors.remove("rnet.prelu4.weight");
    let partial = dir.path().join("partial.safetensors");
    agesynth_core::io::save_tensors(&partial, &tensors, None).unwrap();
    let msg = format!(
        "{}",
        Mtcnn::load(&partial, &MtcnnConfig::default(), &Device::Cpu).unwrap_err()
    );
    assert!(
        msg.contains("partial.safetensors") && msg.contains("rnet.prelu4.weight"),
        "{msg}"
    );

    // Non-finite values are refused too.
    let mut tensors = agesynth_core::io::load_tensors(weights(), &Device::Cpu).unwrap();
    let nan = Tensor::full(f32::NAN, (10,), &Device::Cpu).unwrap();
    tensors.insert("pnet.prelu1.weight".to_string(), nan);
    let nan_path = dir.path().join("nan.safetensors");
    agesynth_core::io::save_tensors(&nan_path, &tensors, None).unwrap();
    let msg = format!(
        "{}",
        Mtcnn::load(&nan_path, &MtcnnConfig::default(), &Device::Cpu).unwrap_err()
    );
    assert!(
        msg.contains("nan.safetensors") && msg.contains("pnet.prelu1.weight"),
        "{msg}"
    );
}

/// Asserts that `batch` (from `detect_batch`) holds exactly what `detect`
/// gives for each image: same count, boxes, scores and landmarks.
fn assert_batch_matches_single(det: &Mtcnn, images: &[FaceImage]) -> usize {
    let batch = det.detect_batch(images).unwrap();
    assert_eq!(batch.len(), images.len());
    let mut found = 0;
    for (i, (img, got)) in images.iter().zip(&batch).enumerate() {
        let want = det.detect(img).unwrap();
        assert_eq!(got.len(), want.len(), "image {i}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            for k in 0..4 {
                assert!(
                    (g.bbox[k] - w.bbox[k]).abs() < 1e-3,
                    "image {i}: {g:?} vs {w:?}"
                );
            }
            assert!(
                (g.score - w.score).abs() < 1e-4,
                "image {i}: {g:?} vs {w:?}"
            );
            for (p, q) in g.landmarks5.iter().zip(&w.landmarks5) {
                assert!((p[0] - q[0]).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3);
            }
        }
        found += got.len();
    }
    found
}

#[test]
fn a_batch_of_mixed_sizes_gives_what_each_image_gives_alone() {
    let det = detector();
    // Same-size images share P-Net passes; other sizes, images too small for
    // any scale and face-free images must not disturb their neighbours.
    let mut images: Vec<FaceImage> = (0..5)
        .map(|s| agesynth_data::testing::synthetic_face(160, 160, s))
        .collect();
    images.insert(2, image(160, 160, |_, _| [128, 128, 128]));
    images.push(agesynth_data::testing::synthetic_face(200, 150, 9));
    images.push(image(11, 40, |_, _| [200, 10, 10]));
    images.push(agesynth_data::testing::synthetic_face(160, 160, 11));
    assert_batch_matches_single(&det, &images);
    assert!(det.detect_batch(&[]).unwrap().is_empty());
}
