#!/usr/bin/env bash
# MoLE vs plain LoRA on a mixed two-domain LM set (TinyStories + WikiText-2), stories260K, small budget.
# Usage: bench/results/run_mole.sh            (OUT=/tmp/peft-mole SEEDS="1 2 3" STEPS=40 by default)
# Seeds can run as separate processes: SEEDS=1 run_mole.sh & SEEDS=2 run_mole.sh & (finished runs are skipped).
# Needs a Release build: dotnet build -c Release src/PeftSharp.Cli
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DATA="${DATA:-$ROOT/../shared/assets/data}"
OUT="${OUT:-/tmp/peft-mole}"
SEEDS="${SEEDS:-1 2 3}"
STEPS="${STEPS:-40}"
# One intra-op thread: on a shared, overloaded machine extra threads only add spin-wait CPU time.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
PEFT=(nice -n 15 dotnet "$ROOT/src/PeftSharp.Cli/bin/Release/net10.0/peft.dll")
MODEL="$ROOT/assets/models/stories260K"
mkdir -p "$OUT/data"

# Two domains, 1,500 training paragraphs each (shuffled together, seed 0), 60 held-out paragraphs each.
# TinyStories: first 1,500 / last 60 paragraphs. WikiText-2 (test split, 60 articles): paragraphs of >= 80 characters
# (headings dropped) of articles 0-49 for training, of articles 50-59 for evaluation.
[[ -f "$OUT/data/wiki_eval.jsonl" ]] || python3 - "$DATA" "$OUT/data" <<'PY'
import json, random, sys
data, out = sys.argv[1], sys.argv[2]
ts = [json.loads(l)["text"] for l in open(f"{data}/tinystories/validation.jsonl", encoding="utf-8")]
arts = [json.loads(l)["text"] for l in open(f"{data}/wikitext2_raw/test.jsonl", encoding="utf-8")]
def paras(articles):
    return [p.strip() for a in articles for p in a.split("\n") if len(p.strip()) >= 80 and not p.strip().startswith("=")]
wiki_train, wiki_eval = paras(arts[:50])[:1500], paras(arts[50:])[:60]
ts_train, ts_eval = ts[:1500], ts[-60:]
mixed = ts_train + wiki_train
random.Random(0).shuffle(mixed)
def write(name, rows):
    with open(f"{out}/{name}.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r}) + "\n")
write("mixed_train", mixed)
write("ts_eval", ts_eval); write("wiki_eval", wiki_eval)
print(f"train {len(mixed)} (ts {len(ts_train)}, wiki {len(wiki_train)}); eval ts {len(ts_eval)}, wiki {len(wiki_eval)}")
PY

COMMON=(--model "$MODEL" --task lm --data "$OUT/data/mixed_train.jsonl" --validation "$OUT/data/ts_eval.jsonl"
        --max-steps "$STEPS" --batch-size 8 --max-length 64 --lr 2e-3 --dropout 0.05
        --target-modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)
run() {  # name seed args...
    local name=$1 seed=$2; shift 2
    local dir="$OUT/runs/$name-s$seed"
    if [[ ! -f "$dir/summary.json" ]]; then
        "${PEFT[@]}" train "${COMMON[@]}" --seed "$seed" --output "$dir" "$@" > "$dir.log" 2>&1 || { echo "FAILED $dir (see $dir.log)"; return; }
    fi
    # TinyStories: the run's own last evaluation (metrics.jsonl, same file, batch 8, max length 64); WikiText: peft eval.
    [[ -f "$dir/eval_wiki.json" ]] || "${PEFT[@]}" eval --model "$MODEL" --adapter "$dir" --data "$OUT/data/wiki_eval.jsonl" \
        --task lm --max-length 64 --batch-size 8 --json > "$dir/eval_wiki.json"
    echo "done $dir"
}
mkdir -p "$OUT/runs"
for seed in $SEEDS; do
    run mole-r4-k3 "$seed" --method mole --experts 3 -r 4 --alpha 8
    run lora-r9 "$seed" --method lora -r 9 --alpha 18       # about MoLE's trainable parameters
    run lora-r18 "$seed" --method lora -r 18 --alpha 36     # about twice MoLE's
    run lora-r4 "$seed" --method lora -r 4 --alpha 8        # MoLE's per-token compute (one expert active)
    run mole-r4-k3-switch "$seed" --method mole --experts 3 -r 4 --alpha 8 --method-option routing=switch
    run mole-r4-k3-dense "$seed" --method mole --experts 3 -r 4 --alpha 8 --method-option routing=dense
done
# Base model on WikiText (no adapter); on TinyStories it is every run's step-0 evaluation.
[[ -f "$OUT/base_eval_wiki.json" ]] || "${PEFT[@]}" eval --model "$MODEL" --data "$OUT/data/wiki_eval.jsonl" --task lm --max-length 64 --batch-size 8 --json > "$OUT/base_eval_wiki.json"
