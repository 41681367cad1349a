#!/usr/bin/env bash
# The one command of a GPU call (see scripts/gpu/README.md). Bounded: the
# training step stops after GPU_TRAIN_SECONDS of wall time (SIGINT: a final
# checkpoint), so the whole stays under 10 minutes.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/gpu-out}"
mkdir -p "$OUT"
BIN="$ROOT/.gpu/agesynth"
SECS="${GPU_TRAIN_SECONDS:-360}"
[ -x "$BIN" ] || { echo "run.sh: $BIN missing: run scripts/gpu/prepare.sh first and carry .gpu" | tee "$OUT/smoke.txt"; exit 1; }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  echo "--- demo on cuda"
  time "$BIN" demo --device cuda --out "$OUT/demo_cuda.png"
} > "$OUT/smoke.txt" 2>&1
echo "smoke test exit $?" >> "$OUT/smoke.txt"

RUN="$ROOT/.gpu/run"
RESUME=()
[ -d "$RUN/checkpoints" ] && RESUME=(--resume)
timeout -s INT "$SECS" "$BIN" train facegan --device cuda \
  --data "$ROOT/.gpu/utkface" --split all --synthetic-fraction 0 \
  --preset paper128 --no-aux-classifier \
  --age-critic weights/critic-age-gender64.safetensors --age-critic-weight 3 --age-critic-satisfied 0.8 \
  --identity-critic weights/critic-identity64.safetensors --identity-weight 2 --identity-blur 1.5 --identity-luma \
  --chroma-weight 10 \
  --d-wrong-age 1 --own-group-prob 0.25 --min-target-distance 2 --cycle-away-only --cycle-weight 1 \
  --out "$RUN" --steps 1000000 --batch 32 --log-every 20 --sample-every 500 \
  --checkpoint-every 500 --keep 1 --quiet "${RESUME[@]}" > "$OUT/train.txt" 2>&1
echo "train exit $?" >> "$OUT/train.txt"

cp "$RUN/log.jsonl" "$OUT/" 2>/dev/null
latest="$(ls -d "$RUN"/checkpoints/step-* 2>/dev/null | sort | tail -1)"
if [ -n "$latest" ]; then
  "$BIN" weights convert "$latest/generator_ema.safetensors" "$OUT/generator_ema_f16.safetensors" --dtype f16 >> "$OUT/train.txt" 2>&1
  tar -C "$RUN" -cf "$OUT/checkpoint.tar" "checkpoints/$(basename "$latest")" config.json
fi
python3 - "$RUN/log.jsonl" > "$OUT/throughput.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if len(sys.argv) > 1 else []
ips = [r["images_per_s"] for r in rows[2:]] or [0]
print(json.dumps({"records": len(rows), "last_step": rows[-1]["step"] if rows else 0,
                  "median_images_per_s": sorted(ips)[len(ips)//2]}))
PY
ls -la "$OUT"
