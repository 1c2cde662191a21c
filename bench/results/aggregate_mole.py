#!/usr/bin/env python3
"""Table of bench/results/run_mole.sh runs: held-out loss per domain (mean ± std over seeds).
TinyStories: the run's last evaluation in metrics.jsonl (its step-0 evaluation is the base model); WikiText: peft eval."""
import glob, json, math, os, re, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/peft-mole"

def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)

def ms(xs, digits=4):
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f}"

rows = {}
for d in sorted(glob.glob(f"{out}/runs/*-s*/")):
    m = re.match(r"(.+)-s(\d+)$", os.path.basename(d.rstrip("/")))
    if not m or not all(os.path.exists(f"{d}/{f}") for f in ("summary.json", "metrics.jsonl", "eval_wiki.json")):
        continue
    name, seed = m.group(1), int(m.group(2))
    s = load(f"{d}/summary.json")
    evals = [e for e in map(json.loads, open(f"{d}/metrics.jsonl", encoding="utf-8")) if "eval_loss" in e]
    base_ts = evals[0]["eval_loss"]
    ts, wiki = evals[-1]["eval_loss"], load(f"{d}/eval_wiki.json")["loss"]
    r = rows.setdefault(name, {"seeds": [], "params": s.get("trainable_parameters"), "ts": [], "wiki": [], "mean": [], "train_s": []})
    r["seeds"].append(seed); r["ts"].append(ts); r["wiki"].append(wiki); r["mean"].append((ts + wiki) / 2)
    r["train_s"].append(s.get("train_seconds", float("nan")))

base = {"wiki": load(f"{out}/base_eval_wiki.json")["loss"]} if os.path.exists(f"{out}/base_eval_wiki.json") else {}
if rows and base:
    base["ts"] = base_ts
print("| run | seeds | trainable params | TinyStories loss | WikiText loss | mean of the two |")
print("|---|---|---|---|---|---|")
if len(base) == 2:
    print(f"| base (no adapter) | – | 0 | {base['ts']:.4f} | {base['wiki']:.4f} | {(base['ts'] + base['wiki']) / 2:.4f} |")
for name, r in rows.items():
    print(f"| {name} | {','.join(map(str, sorted(r['seeds'])))} | {r['params']:,} | {ms(r['ts'])} | {ms(r['wiki'])} | {ms(r['mean'])} |")
