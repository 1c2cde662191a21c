#!/usr/bin/env python3
"""Tables for docs/results.md "LoRA-Pro and ALLoRA" from the run folders of allora_lorapro.sh.

Usage: python3 bench/results/allora_lorapro.py /tmp/peft-ap2
"""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/peft-ap2")
runs = {}
for summary in sorted(out.glob("*-s*/summary.json")):
    method, seed = summary.parent.name.rsplit("-s", 1)
    s = json.loads(summary.read_text())
    runs.setdefault(method, {})[int(seed)] = s

def fmt(xs):
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"

print("| method | seeds | trainable params | eval loss before | eval loss after | per seed (after) |")
print("|---|---|---|---|---|---|")
for method in ["lora", "lorapro", "allora", "full"]:
    if method not in runs:
        continue
    r = runs[method]
    seeds = sorted(r)
    before = [r[k]["before"] for k in seeds]
    after = [r[k]["after"] for k in seeds]
    print(f"| {method} | {','.join(map(str, seeds))} | {r[seeds[0]]['trainable_parameters']:,} | {fmt(before)} | {fmt(after)} | "
          + ", ".join(f"{a:.4f}" for a in after) + " |")

def gap(method):
    common = sorted(set(runs.get(method, {})) & set(runs.get("full", {})))
    return [runs[method][k]["after"] - runs["full"][k]["after"] for k in common], common

print()
for method in ["lora", "lorapro", "allora"]:
    g, seeds = gap(method)
    if g:
        print(f"- gap to full fine-tuning, {method}: {fmt(g)} (seeds {seeds}; per seed " + ", ".join(f"{x:+.4f}" for x in g) + ")")
for method in ["lorapro", "allora"]:
    common = sorted(set(runs.get(method, {})) & set(runs.get("lora", {})))
    d = [runs[method][k]["after"] - runs["lora"][k]["after"] for k in common]
    if d:
        print(f"- {method} − lora (eval loss after): {fmt(d)} (per seed " + ", ".join(f"{x:+.4f}" for x in d) + ")")
