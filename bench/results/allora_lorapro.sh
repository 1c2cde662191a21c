#!/usr/bin/env bash
# docs/results.md, "LoRA-Pro and ALLoRA": LoRA vs LoRA-Pro vs full fine-tuning, and LoRA vs ALLoRA, on stories260K
# (TinyStories LM), seeds 1-3, one small budget and one learning rate for every method (no sweep).
# Usage: bench/results/allora_lorapro.sh (or one copy per method in parallel: METHODS=lora …); then python3 bench/results/allora_lorapro.py "$OUT"
set -euo pipefail
cd "$(dirname "$0")/../.."

PEFT=${PEFT:-src/PeftSharp.Cli/bin/Release/net10.0/peft}
OUT=${OUT:-/tmp/peft-ap2}
DATA=${DATA:-../shared/assets/data}
SEEDS=${SEEDS:-"1 2 3"}
STEPS=${STEPS:-30}
BATCH=${BATCH:-8}
LEN=${LEN:-32}
LR=${LR:-2e-3}
EVAL_ROWS=${EVAL_ROWS:-64}
METHODS=${METHODS:-"lora lorapro full allora"}

mkdir -p "$OUT/data"
# Written once, so that several copies of this script (one per method, run in parallel) never read a half-written file.
if [[ ! -f "$OUT/data/eval.jsonl" ]]; then
    total=$(wc -l < "$DATA/tinystories/validation.jsonl")
    head -n $((total - EVAL_ROWS)) "$DATA/tinystories/validation.jsonl" > "$OUT/data/train.jsonl.tmp"
    tail -n "$EVAL_ROWS" "$DATA/tinystories/validation.jsonl" > "$OUT/data/eval.jsonl.tmp"
    mv "$OUT/data/train.jsonl.tmp" "$OUT/data/train.jsonl"
    mv "$OUT/data/eval.jsonl.tmp" "$OUT/data/eval.jsonl"
fi

for seed in $SEEDS; do
    for method in $METHODS; do
        dir="$OUT/$method-s$seed"
        [[ -f "$dir/summary.json" ]] && { echo "skip $dir"; continue; }
        case $method in
            full) extra=(--full-finetune) ;;
            *) extra=(--method "$method" -r 8 --alpha 16 --dropout 0 --target-modules q_proj v_proj) ;;
        esac
        echo "== $dir"
        nice -n 15 "$PEFT" train --model assets/models/stories260K --task lm \
            --data "$OUT/data/train.jsonl" --validation "$OUT/data/eval.jsonl" \
            --max-steps "$STEPS" --batch-size "$BATCH" --max-length "$LEN" --lr "$LR" --seed "$seed" \
            "${extra[@]}" --output "$dir" > "$dir.txt" 2>&1 || { echo "FAILED $dir (see $dir.txt)"; exit 1; }
        grep -E "before → after|eval" "$dir.txt" | tail -2 || true
    done
done
