#!/usr/bin/env python3
"""Table of bench/results/squeeze.sh runs: eval loss (and perplexity) per variant, mean ± sd over seeds.

Train runs: the last eval line of metrics.jsonl. post: the JSON line `peft eval` printed. cont: the fine-tuning run's
metrics.jsonl (its first eval is the compressed source again, a cross-check of post; its last the fine-tuned adapter).
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


def safe(f, *a):
    try:
        return f(*a)
    except (OSError, IndexError, SystemExit):
        return None


seeds = [1, 2, 3]
rows = {
    "LoRA r=4 trained directly (30 steps)": [safe(lambda s: evals(f"direct4-s{s}")[-1], s) for s in seeds],
    "LoRA r=32 (30 steps; the source, not compressed)": [safe(lambda s: evals(f"src32-s{s}")[-1], s) for s in seeds],
    "Post-Squeeze: r=32 (30 steps) -> r=4": [safe(eval_log, f"post-eval-s{s}") for s in seeds],
    "Cont-Squeeze: r=32 (30) -> r=4 + 10 steps at r=4 (40 steps)": [safe(lambda s: evals(f"cont-s{s}")[-1], s) for s in seeds],
    "In-Squeeze: lora_squeeze 32 -> 16 -> 8 -> 4 (30 steps)": [safe(lambda s: evals(f"insq-s{s}")[-1], s) for s in seeds],
}
for s in seeds:
    base = safe(lambda s: evals(f"direct4-s{s}")[0], s)
    post, cont0 = safe(eval_log, f"post-eval-s{s}"), safe(lambda s: evals(f"cont-s{s}")[0], s)
    print(f"seed {s}: base eval loss {base}; post-squeeze via peft eval {post}, via the fine-tuning run's first eval {cont0}")
print()
print("| variant | eval loss, mean ± sd | perplexity | per seed (1, 2, 3) |")
print("|---|---|---|---|")
for name, values in rows.items():
    v = [x for x in values if x is not None]
    if not v:
        print(f"| {name} | not run | | |")
        continue
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    m = statistics.mean(v)
    per = ", ".join("—" if x is None else f"{x:.4f}" for x in values)
    print(f"| {name} | {m:.4f} ± {sd:.4f} (n={len(v)}) | {math.exp(m):.3f} | {per} |")
