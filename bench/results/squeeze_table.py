#!/usr/bin/env python3
"""Table of bench/results/squeeze.sh runs: eval loss (and perplexity) per variant, mean ± sd over seeds.

Train runs: the last eval line of metrics.jsonl. post: the JSON line `peft eval` printed. cont: the fine-tuning run's
metrics.jsonl (its first eval is the compressed 50-step source, its last the fine-tuned adapter).
Usage: python3 bench/results/squeeze_table.py /tmp/squeeze-results
"""
import json
import math
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/squeeze-results"


def evals(run):
    rows = []
    with open(os.path.join(out, run, "metrics.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if "eval_loss" in o:
                rows.append(o["eval_loss"])
    return rows


def eval_log(name):
    with open(os.path.join(out, name + ".log")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)["loss"]
    raise SystemExit(f"{name}.log: no JSON line")


seeds = sorted({int(d.split("-s")[-1]) for d in os.listdir(out) if d.startswith("direct4-s") and not d.endswith(".log")})
rows = {
    "LoRA r=4 trained directly (60 steps)": [evals(f"direct4-s{s}")[-1] for s in seeds],
    "LoRA r=32 (60 steps; the source, not compressed)": [evals(f"src32-s{s}")[-1] for s in seeds],
    "Post-Squeeze: r=32 (60 steps) -> r=4": [eval_log(f"post-eval-s{s}") for s in seeds],
    "Post-Squeeze: r=32 (50 steps) -> r=4": [evals(f"cont-s{s}")[0] for s in seeds],
    "Cont-Squeeze: r=32 (50) -> r=4 + 10 steps at r=4": [evals(f"cont-s{s}")[-1] for s in seeds],
    "In-Squeeze: lora_squeeze 32 -> 16 -> 8 -> 4 (60 steps)": [evals(f"insq-s{s}")[-1] for s in seeds],
}
before = evals(f"direct4-s{seeds[0]}")[0]
print(f"seeds {seeds}; base model eval loss {before:.4f} (ppl {math.exp(before):.3f})\n")
print("| variant | eval loss, mean ± sd | perplexity | per seed |")
print("|---|---|---|---|")
for name, v in rows.items():
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    m = statistics.mean(v)
    print(f"| {name} | {m:.4f} ± {sd:.4f} | {math.exp(m):.3f} | {', '.join(f'{x:.4f}' for x in v)} |")
