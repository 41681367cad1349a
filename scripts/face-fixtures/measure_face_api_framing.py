"""Where face-api puts the face box on a UTKFace chip, and what its own
pipeline reads there: the measurement behind agesynth-face's
`age_gender::UTKFACE_DETECTION_BOX` (numbers in weights/README.md).

Takes every k-th chip of a UTKFace folder in name order, centres each on a
grey canvas (SSD MobileNet misses most faces that fill the whole image),
and runs face-api's default pipeline in node on it:
`detectSingleFace(SsdMobilenetv1, minConfidence 0.5).withFaceLandmarks()`,
then AgeGenderNet on the detection box and on the landmark-aligned box.
Prints the median boxes in pixels of the chip and as fractions of it, and
face-api's own age MAE and gender accuracy against UTKFace's labels.

usage:
  python measure_face_api_framing.py --node-dir DIR --face-api-model DIR --utkface DIR
      [--count 150] [--pad 200] [--backend wasm]
  --node-dir: a folder whose node_modules holds @vladmandic/face-api@1.7.15,
  @tensorflow/tfjs@4.22.0 and @tensorflow/tfjs-backend-wasm@4.22.0.
  --backend: TF.js backend (wasm is some 10x faster than cpu here; the boxes
  do not depend on it beyond float rounding).
Python needs numpy and pillow.
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-dir", required=True)
    ap.add_argument("--face-api-model", required=True)
    ap.add_argument("--utkface", required=True)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--pad", type=int, default=200)
    ap.add_argument("--backend", default="wasm")
    a = ap.parse_args()
    names = sorted(n for n in os.listdir(a.utkface) if n.lower().endswith(".jpg"))
    sel = names[:: len(names) // a.count][: a.count]
    chips = [np.asarray(Image.open(os.path.join(a.utkface, n)).convert("RGB")) for n in sel]
    size = chips[0].shape[0]
    side = size + 2 * a.pad
    canvas = np.full((len(chips), side, side, 3), 128, np.uint8)
    for k, c in enumerate(chips):
        if c.shape[:2] != (size, size):
            raise SystemExit(f"{sel[k]}: {c.shape[:2]}, expected {size}x{size}")
        canvas[k, a.pad : a.pad + size, a.pad : a.pad + size] = c
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(
        os.environ,
        NODE_PATH=os.path.join(os.path.abspath(a.node_dir), "node_modules"),
        TFJS_BACKEND=a.backend,
    )
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "chips.u8")
        canvas.tofile(raw)
        res = os.path.join(tmp, "out.json")
        script = os.path.join(here, "face_api_framing.cjs")
        subprocess.run(
            ["node", script, a.face_api_model, raw, str(len(chips)), str(side), res],
            check=True,
            env=env,
        )
        with open(res) as f:
            ref = json.load(f)
    rows = []
    for name, r in zip(sel, ref["results"]):
        fields = name.split("_")
        if r is not None:
            rows.append((r, int(fields[0]), fields[1]))
    print(f"face-api {ref['face_api']}, tfjs {ref['tfjs']} backend {ref['backend']}")
    print(f"{len(chips)} chips of {size} px on a {side} px grey canvas; a face in {len(rows)}")
    for key in ["detection", "aligned"]:
        b = np.array([[r[key][k] for k in ("x", "y", "width", "height")] for r, _, _ in rows])
        b[:, :2] -= a.pad
        cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
        w, h = np.median(b[:, 2]), np.median(b[:, 3])
        mx, my = np.median(cx), np.median(cy)
        print(
            f"{key} box: median centre ({mx:.1f}, {my:.1f}) px, size {w:.1f} x {h:.1f} px "
            f"(std of centre {cx.std():.1f}, {cy.std():.1f}; of size {b[:, 2].std():.1f}, {b[:, 3].std():.1f}); "
            f"as fractions: left {(mx - w / 2) / size:.3f}, top {(my - h / 2) / size:.3f}, "
            f"width {w / size:.3f}, height {h / size:.3f}"
        )
        k = "by_" + key
        ages = np.array([r[k]["age"] for r, _, _ in rows])
        labels = np.array([age for _, age, _ in rows])
        labelled = [(r[k]["gender"], g) for r, _, g in rows if g in ("0", "1")]
        right = sum((said == "female") == (g == "1") for said, g in labelled)
        print(
            f"  face-api's AgeGenderNet on this box: age MAE {np.abs(ages - labels).mean():.2f} "
            f"(bias {(ages - labels).mean():+.2f}), gender {right}/{len(labelled)} "
            f"({100 * right / max(len(labelled), 1):.1f}%)"
        )


if __name__ == "__main__":
    main()
