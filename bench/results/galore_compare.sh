#!/usr/bin/env bash
# GaLore vs full AdamW vs LoRA on stories260K (TinyStories LM), a small budget, seeds 1-3 (docs/results.md, GaLore).
# Usage: dotnet build -c Release src/PeftSharp.Cli; bench/results/galore_compare.sh [OUT]   (default /tmp/galore-compare)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEFT="$ROOT/src/PeftSharp.Cli/bin/Release/net10.0/peft"
OUT=${1:-/tmp/galore-compare}
SEEDS=${SEEDS:-"1 2 3"}
DATA="$ROOT/assets/data/tinystories/validation.jsonl"
mkdir -p "$OUT/data"
head -n 3800 "$DATA" > "$OUT/data/train.jsonl"
tail -n 100 "$DATA" > "$OUT/data/eval.jsonl"
ALL="q_proj k_proj v_proj o_proj gate_proj up_proj down_proj"
COMMON=(--model "$ROOT/assets/models/stories260K" --task lm --data "$OUT/data/train.jsonl" --validation "$OUT/data/eval.jsonl"
        --max-steps 30 --batch-size 8 --max-length 64)
# PARALLEL=1 starts every run at once (each is single-process and deterministic) and skips runs already started.
run() {
  local name=$1 seed=$2; shift 2
  [ -f "$OUT/$name-s$seed/summary.json" ] && return
  if [ -n "${PARALLEL:-}" ]; then
    [ -f "$OUT/$name-s$seed.log" ] && return
    nice -n 15 "$PEFT" train "${COMMON[@]}" --seed "$seed" --output "$OUT/$name-s$seed" "$@" > "$OUT/$name-s$seed.log" 2>&1 &
  else
    nice -n 15 "$PEFT" train "${COMMON[@]}" --seed "$seed" --output "$OUT/$name-s$seed" "$@" > "$OUT/$name-s$seed.log" 2>&1
  fi
}
for seed in $SEEDS; do
  run galore "$seed" --method galore -r 8 -O update_proj_gap=10 --target-modules $ALL --lr 1e-3
  run full "$seed" --full-finetune --lr 1e-3
  run lora "$seed" --method lora -r 8 --alpha 16 --target-modules $ALL --lr 2e-3
done
wait
for f in "$OUT"/*-s*/summary.json; do
  f=${f%summary.json}metrics.jsonl
  python3 - "$f" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ev = [l for l in lines if "eval_loss" in l]
summary = json.load(open(sys.argv[1].replace("metrics.jsonl", "summary.json")))
print(f'{sys.argv[1].split("/")[-2]:12s} eval_loss {ev[0]["eval_loss"]:.4f} -> {ev[-1]["eval_loss"]:.4f}  trainable {summary["trainable_parameters"]}')
PY
done
