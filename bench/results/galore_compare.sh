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
for seed in $SEEDS; do
  run() { local name=$1; shift; [ -f "$OUT/$name-s$seed/summary.json" ] || nice -n 15 "$PEFT" train "${COMMON[@]}" --seed "$seed" --output "$OUT/$name-s$seed" "$@" > "$OUT/$name-s$seed.log" 2>&1; }
  run galore --method galore -r 8 -O update_proj_gap=10 --target-modules $ALL --lr 1e-3
  run full --full-finetune --lr 1e-3
  run lora --method lora -r 8 --alpha 16 --target-modules $ALL --lr 2e-3
done
for f in "$OUT"/*-s*/metrics.jsonl; do
  python3 - "$f" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ev = [l for l in lines if "eval_loss" in l]
summary = json.load(open(sys.argv[1].replace("metrics.jsonl", "summary.json")))
print(f'{sys.argv[1].split("/")[-2]:12s} eval_loss {ev[0]["eval_loss"]:.4f} -> {ev[-1]["eval_loss"]:.4f}  trainable {summary["trainable_parameters"]}')
PY
done
