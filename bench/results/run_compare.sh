#!/usr/bin/env bash
# The method comparison of docs/results.md: one `peft compare` per task over every layer-variant method and LoRA.
# Usage: bench/results/run_compare.sh [lm] [sst2] [rte] [rte300]   (no argument = lm sst2 rte)
# rte300: RTE at 300 steps (about one epoch) for the methods in METHODS_LONG (default lora,dora,vera,loha).
# Each compare reuses finished runs, so the script can be stopped and restarted. Tables: $OUT/<task>/compare.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

PEFT=${PEFT:-src/PeftSharp.Cli/bin/Release/net10.0/peft}
OUT=${OUT:-/tmp/peft-compare}
DATA=${DATA:-../shared/assets/data}
SEEDS=${SEEDS:-1,2,3}
LRS=${LRS:-0.001,0.005,0.025}
METHODS_LONG=${METHODS_LONG:-lora,dora,vera,loha}
METHODS=${METHODS:-lora,dora,pissa,olora,loha,lokr,miss,bone,vera,randlora,hydra,lora-c,conv-lora,cp-lora,tlora,lora-xs,lora-sb,loldu,salt}

mkdir -p "$OUT/data"
total=$(wc -l < "$DATA/tinystories/validation.jsonl")
head -n $((total - 500)) "$DATA/tinystories/validation.jsonl" > "$OUT/data/tinystories_train.jsonl"
tail -n 200 "$DATA/tinystories/validation.jsonl" > "$OUT/data/tinystories_eval.jsonl"
head -n 200 "$DATA/sst2/validation.jsonl" > "$OUT/data/sst2_val.jsonl"

common=(--seeds "$SEEDS" --learning-rates "$LRS" --select-on-first-seed --lr-scheduler linear --warmup-ratio 0.06)
stages=("$@"); [[ ${#stages[@]} -eq 0 ]] && stages=(lm sst2 rte)
for s in "${stages[@]}"; do
    case $s in
        lm) "$PEFT" compare --methods "$METHODS" "${common[@]}" --model assets/models/stories260K --task lm \
                --data "$OUT/data/tinystories_train.jsonl" --validation "$OUT/data/tinystories_eval.jsonl" \
                --max-steps 60 --batch-size 16 --max-length 128 -r 8 --alpha 16 --output "$OUT/lm" ;;
        sst2) "$PEFT" compare --methods "$METHODS" "${common[@]}" --task classification \
                --data "$DATA/sst2/train.jsonl" --validation "$OUT/data/sst2_val.jsonl" \
                --max-steps 40 --batch-size 16 --max-length 64 -r 8 --alpha 16 --output "$OUT/sst2" ;;
        rte) "$PEFT" compare --methods "$METHODS" "${common[@]}" --task classification \
                --data "$DATA/rte/train.jsonl" --validation "$DATA/rte/validation.jsonl" \
                --max-steps 40 --batch-size 8 --max-length 128 -r 8 --alpha 16 --output "$OUT/rte" ;;
        rte300) "$PEFT" compare --methods "$METHODS_LONG" "${common[@]}" --task classification \
                --data "$DATA/rte/train.jsonl" --validation "$DATA/rte/validation.jsonl" \
                --max-steps 300 --batch-size 8 --max-length 128 -r 8 --alpha 16 --output "$OUT/rte300" ;;
        *) echo "unknown stage $s (lm, sst2, rte, rte300)"; exit 2 ;;
    esac
done
