#!/usr/bin/env bash
# DiffoRA vs LoRA on every module at an equal adapter budget (docs/results.md, "DiffoRA").
# stories260K on TinyStories (the bundled validation file, 3% held out), 30 steps, batch 8, max length 48,
# lr 5e-3 linear, seeds 1-3. LoRA: r 4 on all 35 linear modules (23,120 parameters). DiffoRA: r 8 candidates on the
# same 35 modules, 10 search steps, then the longest top-γ prefix within 0.5 x (r 8 on all) = 23,120 parameters.
# The runs of one seed are independent: PARALLEL=1 starts all of them at once (same total CPU, shorter wall time).
# Usage: bench/results/diffora_vs_lora.sh OUT_DIR [SEEDS...]   (run from the repo root after
#        dotnet build src/PeftSharp.Cli -c Release)
set -euo pipefail
out=${1:-/tmp/diffora-exp}; shift || true
seeds=${*:-1 2 3}
peft=src/PeftSharp.Cli/bin/Release/net10.0/peft
common=(--model assets/models/stories260K --data assets/data/tinystories/validation.jsonl --validation-split 0.03
        --dropout 0 --target-modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
        --max-steps 30 --batch-size 8 --max-length 48 --lr 5e-3)
mkdir -p "$out"
run() { if [ "${PARALLEL:-0}" = 1 ]; then "$@" & else "$@"; fi; }
for s in $seeds; do
  run bash -c "nice -n 15 $peft train ${common[*]} --method lora -r 4 --alpha 8 --seed $s -o $out/lora-r4-s$s > $out/lora-r4-s$s.log 2>&1"
  run bash -c "nice -n 15 $peft train ${common[*]} --method diffora -r 8 --alpha 16 --seed $s \
    -O search_steps=10 -O budget_unit='\"parameters\"' -O selection_ratio=0.5 -o $out/diffora-r8-s$s > $out/diffora-r8-s$s.log 2>&1"
done
wait
python3 - "$out" <<'PY'
import json, os, statistics, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(list)
for d in sorted(os.listdir(out)):
    path = os.path.join(out, d)
    if not os.path.isfile(os.path.join(path, "summary.json")):
        continue
    s = json.load(open(os.path.join(path, "summary.json")))
    c = json.load(open(os.path.join(path, "adapter_config.json")))
    kept = c.get("diffora_selected_modules")
    types = collections.Counter(m.rsplit(".", 1)[1] for m in kept) if kept else {}
    print(f"{d}: params {s['trainable_parameters']} eval loss {s['before']:.4f} -> {s['after']:.4f}"
          + (f" kept {len(kept)}: {dict(sorted(types.items()))}" if kept else ""))
    rows[d.rsplit("-s", 1)[0]].append(s["after"])
for k, v in rows.items():
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"{k}: n={len(v)} mean after {statistics.mean(v):.4f} sd {sd:.4f}")
PY
