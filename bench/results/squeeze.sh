#!/usr/bin/env bash
# LoRA-Squeeze check on stories260K (docs/results.md, "LoRA-Squeeze"). Per seed, all at $STEPS (30) optimizer steps:
#   direct4  LoRA r=4 trained directly
#   src32    LoRA r=32 (the source; also evaluated as is)
#   post     src32 compressed to r=4 (peft compress), no further training
#   cont     src32 compressed to r=4, then fine-tuned 10 more steps at r=4 (peft compress --finetune-steps): 70 steps
#            in all, 10 more than the others (an equal-budget split did not fit the CPU time we had)
#   insq     lora_squeeze r=32 -> 4, squeezes after steps 8, 16, 24 (16, 8, 4)
# Scale s = alpha/r = 2 everywhere (alpha = 2r); compression and lora_squeeze keep s.
# Usage: bench/results/squeeze.sh [direct] [src] [insq] (default all three chains; we ran one process per seed and
# chain, 9 in parallel: SEEDS=1 bench/results/squeeze.sh direct, …); then python3 bench/results/squeeze_table.py "$OUT". Finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

PEFT=${PEFT:-src/PeftSharp.Cli/bin/Release/net10.0/peft}
OUT=${OUT:-/tmp/squeeze-results}
SEEDS=${SEEDS:-"1 2 3"}
STEPS=${STEPS:-30}
CHAINS=${*:-direct src insq}
MODEL=assets/models/stories260K
TARGETS="q_proj k_proj v_proj o_proj gate_proj up_proj down_proj"
COMMON="--model $MODEL --task lm --data $OUT/data/train.jsonl --validation $OUT/data/eval.jsonl --batch-size 8 --max-length 32 --lr 2e-3"

mkdir -p "$OUT/data"
[ -f "$OUT/data/eval.jsonl" ] || { head -n 3800 assets/data/tinystories/validation.jsonl > "$OUT/data/train.tmp"; tail -n 100 assets/data/tinystories/validation.jsonl > "$OUT/data/eval.tmp"; mv "$OUT/data/train.tmp" "$OUT/data/train.jsonl"; mv "$OUT/data/eval.tmp" "$OUT/data/eval.jsonl"; }

run() { # name, then peft arguments
  local name=$1; shift
  if [ -f "$OUT/$name/done" ]; then return; fi
  echo "== $name"
  nice -n 15 "$PEFT" "$@" > "$OUT/$name.log" 2>&1
  mkdir -p "$OUT/$name"; touch "$OUT/$name/done"
}

for s in $SEEDS; do
  for chain in $CHAINS; do
    case $chain in
      direct)
        run direct4-s$s train $COMMON --seed $s --max-steps $STEPS --dropout 0 -r 4 --alpha 8 --target-modules $TARGETS --output "$OUT/direct4-s$s" ;;
      src)
        run src32-s$s train $COMMON --seed $s --max-steps $STEPS --dropout 0 -r 32 --alpha 64 --target-modules $TARGETS --output "$OUT/src32-s$s"
        run post-s$s compress "$OUT/src32-s$s" --rank 4 --out "$OUT/post-s$s"
        run post-eval-s$s eval --model $MODEL --adapter "$OUT/post-s$s" --data "$OUT/data/eval.jsonl" --task lm --batch-size 8 --max-length 32 --json
        run cont-s$s compress "$OUT/src32-s$s" --rank 4 --finetune-steps 10 $COMMON --seed $s --out "$OUT/cont-s$s" ;;
      insq)
        run insq-s$s train $COMMON --seed $s --max-steps $STEPS --dropout 0 --method lora_squeeze -r 32 --alpha 64 -O target_r=4 -O "squeeze_steps=[8,16,24]" --target-modules $TARGETS --output "$OUT/insq-s$s" ;;
    esac
  done
done
