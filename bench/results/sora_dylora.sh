#!/usr/bin/env bash
# SoRA and DyLoRA small checks on stories260K / TinyStories (docs/results.md, "SoRA and DyLoRA").
# Usage: bench/results/sora_dylora.sh [OUT]   (default /tmp/peft-sora-dylora); needs a Release build of src/PeftSharp.Cli.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/peft-sora-dylora}
PEFT="dotnet $ROOT/src/PeftSharp.Cli/bin/Release/net10.0/peft.dll"
MODEL=${MODEL:-$ROOT/../shared/assets/models/stories260K}
SRC=${SRC:-$ROOT/../shared/assets/data/tinystories/validation.jsonl}
SEEDS=${SEEDS:-"1 2 3"}
mkdir -p "$OUT"
head -n 2000 "$SRC" > "$OUT/train.jsonl"
sed -n 4001,4200p "$SRC" > "$OUT/val.jsonl"
COMMON=(--model "$MODEL" --task lm --data "$OUT/train.jsonl" --validation "$OUT/val.jsonl" --max-steps 40
        --batch-size 8 --max-length 32 --lr 5e-3 --dropout 0 --log-every 40)

train() { # NAME SEED ARGS...
  local name=$1 seed=$2; shift 2
  [ -f "$OUT/$name-s$seed/summary.json" ] || nice -n 15 $PEFT train "${COMMON[@]}" --seed "$seed" "$@" --output "$OUT/$name-s$seed" > "$OUT/$name-s$seed.log" 2>&1
}
evalj() { nice -n 15 $PEFT eval --model "$MODEL" --data "$OUT/val.jsonl" --max-length 32 --json "$@"; }

# Every run at once (nice 15): on the shared, overloaded machine this gets the runs a fair share of the cores.
for seed in $SEEDS; do
  train dylora-r4 "$seed" --method dylora -r 4 --alpha 8 &
  train sora-r8 "$seed" --method sora -r 8 --alpha 16 -O sparse_lambda_2=0.015 &
  train lora-r4 "$seed" --method lora -r 4 --alpha 8 &
  train lora-r1 "$seed" --method lora -r 1 --alpha 2 &
done
wait
[ -n "${TRAIN_ONLY:-}" ] && exit 0

for seed in $SEEDS; do
  for b in 1 2 3 4; do
    evalj --adapter "$OUT/dylora-r4-s$seed" --rank "$b" > "$OUT/eval-dylora-s$seed-b$b.json" &
  done
  ( nice -n 15 $PEFT sora-prune --adapter "$OUT/sora-r8-s$seed" --out "$OUT/sora-r8-s$seed-pruned" > "$OUT/prune-s$seed.txt"
    evalj --adapter "$OUT/sora-r8-s$seed-pruned" > "$OUT/eval-sora-pruned-s$seed.json" ) &
done
wait
for f in "$OUT"/prune-s*.txt "$OUT"/eval-*.json; do echo "$(basename "$f"): $(cat "$f")"; done | tee "$OUT/evals.txt"
