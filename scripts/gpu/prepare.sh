#!/usr/bin/env bash
# Prepares .gpu/ for scripts/gpu/run.sh: the CUDA build of the agesynth
# binary, a subset of UTKFace's training split (the whole set does not fit the
# 64 MiB a GPU call carries), and the run folder to resume, if any.
#
#   scripts/gpu/prepare.sh [RUN_DIR]
#
# Needs: cargo, nvcc (CUDA 11.4-13.x) on the PATH; AGESYNTH_DATA or
# ../shared/data with utkface/. CUDA_COMPUTE_CAP defaults to 90 (H100/H200).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DATA="${AGESYNTH_DATA:-$ROOT/../shared/data}"
RUN="${1:-}"
GPU="$ROOT/.gpu"
mkdir -p "$GPU"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude

command -v nvcc >/dev/null || { echo "prepare.sh: nvcc not found: the CUDA build needs the CUDA toolkit" >&2; exit 1; }
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
LIBRARY_PATH="${CUDA_HOME:-/usr/local/cuda}/lib64/stubs:${LIBRARY_PATH:-}" \
  cargo build --release -p agesynth-cli --features cuda --target-dir "$ROOT/target/cuda"
cp "$ROOT/target/cuda/release/agesynth" "$GPU/agesynth"

# UTKFace subset: the first N chips of a sorted listing (the trainer splits
# what it is given 80/10/10 by its own seed).
N="${GPU_FACES:-3000}"
rm -rf "$GPU/utkface"; mkdir -p "$GPU/utkface"
ls "$DATA/utkface" | sort | head -n "$N" | while read -r f; do cp "$DATA/utkface/$f" "$GPU/utkface/"; done

if [ -n "$RUN" ]; then
  rm -rf "$GPU/run"; mkdir -p "$GPU/run"
  cp "$RUN/config.json" "$GPU/run/"
  latest="$(ls -d "$RUN"/checkpoints/step-* | sort | tail -1)"
  mkdir -p "$GPU/run/checkpoints"; cp -r "$latest" "$GPU/run/checkpoints/"
  [ -f "$RUN/log.jsonl" ] && cp "$RUN/log.jsonl" "$GPU/run/"
fi
du -sh "$GPU"
echo "carry .gpu in the GPU call; run: bash scripts/gpu/run.sh"
