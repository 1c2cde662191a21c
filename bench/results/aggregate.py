#!/usr/bin/env python3
"""Aggregates the run folders written by run_results.sh into the markdown tables of docs/results.md.

Usage: python3 bench/results/aggregate.py [OUT]   (default /tmp/peft-results)

A run folder is OUT/<experiment>/<config>-s<seed>; runs that share <config> are one table row (mean ± sample std over
seeds). Before/after values come from the first and last eval lines of metrics.jsonl (eval_accuracy, eval_macro_f1,
eval_loss, eval_perplexity); parameters, train time, tokens/s and peak memory from summary.json; wall time (process
start to exit, evaluations included) from wall_seconds. Standard library only.
"""
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def load(run: Path):
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "run_config.json").read_text())
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if line.strip() and "eval_loss" in line]
    wall = run / "wall_seconds"
    return {
        "summary": summary, "config": config, "before": evals[0], "after": evals[-1],
        "wall": float(wall.read_text()) if wall.exists() else math.nan,
    }


def groups(exp_dir: Path):
    out = defaultdict(dict)
    for run in sorted(exp_dir.iterdir()):
        m = re.fullmatch(r"(.+)-s(\d+)", run.name)
        if m and (run / "summary.json").exists():
            out[m.group(1)][int(m.group(2))] = load(run)
    return out


def ms(values, fmt):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def before_after(runs, key, fmt=".3f"):
    return f"{ms([r['before'][key] for r in runs], fmt)} → {ms([r['after'][key] for r in runs], fmt)}"


def params(r):
    s = r["summary"]
    return f"{s['trainable_parameters']:,} ({100 * s['trainable_parameters'] / s['total_parameters']:.2f}%)"


def method_of(r):
    c = r["config"]
    return "full fine-tuning" if c["full_finetune"] else "head only" if c["head_only"] else f"LoRA r={c['r']} α={c['lora_alpha']:g}"


def cost(runs):
    return (f"{ms([r['summary']['train_seconds'] for r in runs], '.0f')} | {ms([r['wall'] for r in runs], '.0f')} | "
            f"{ms([r['summary']['tokens_per_second'] for r in runs], '.0f')} | "
            f"{ms([r['summary']['peak_memory_bytes'] / 2**20 for r in runs], '.0f')}")


def cls_table(exp_dir: Path, min_seeds: int):
    print("| method | lr | seeds | trainable params | accuracy before → after | macro-F1 before → after "
          "| train s | wall s | tokens/s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    shown = 0
    for name, by_seed in sorted(groups(exp_dir).items(), key=lambda kv: (method_of(next(iter(kv[1].values()))), kv[0])):
        if len(by_seed) < min_seeds:
            continue
        shown += 1
        runs = [by_seed[s] for s in sorted(by_seed)]
        r0 = runs[0]
        print(f"| {method_of(r0)} | {r0['config']['learning_rate']:g} | {','.join(map(str, sorted(by_seed)))} | {params(r0)} "
              f"| {before_after(runs, 'eval_accuracy')} | {before_after(runs, 'eval_macro_f1')} | {cost(runs)} |")
    if shown == 0:
        print(f"\n(no configuration has {min_seeds} or more seeds yet)")


def sweep_table(exp_dir: Path, seed: int):
    print("| method | lr | trainable params | accuracy before → after | macro-F1 before → after | final eval loss "
          "| train s | wall s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [(name, by_seed[seed]) for name, by_seed in groups(exp_dir).items() if seed in by_seed]
    for name, r in sorted(rows, key=lambda kv: (method_of(kv[1]), kv[1]["config"]["learning_rate"])):
        print(f"| {method_of(r)} | {r['config']['learning_rate']:g} | {params(r)} | {r['before']['eval_accuracy']:.3f} → "
              f"{r['after']['eval_accuracy']:.3f} | {r['before']['eval_macro_f1']:.3f} → {r['after']['eval_macro_f1']:.3f} "
              f"| {r['after']['eval_loss']:.4f} | {r['summary']['train_seconds']:.0f} | {r['wall']:.0f} "
              f"| {r['summary']['peak_memory_bytes'] / 2**20:.0f} |")


def lm_table(exp_dir: Path):
    print("| targets | lr | seeds | trainable params | eval loss before → after | perplexity before → after "
          "| train s | wall s | tokens/s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, by_seed in sorted(groups(exp_dir).items()):
        runs = [by_seed[s] for s in sorted(by_seed)]
        r0 = runs[0]
        targets = ", ".join(r0["config"]["target_modules"] or ["default"])
        print(f"| {targets} | {r0['config']['learning_rate']:g} | {','.join(map(str, sorted(by_seed)))} | {params(r0)} "
              f"| {before_after(runs, 'eval_loss', '.4f')} | {before_after(runs, 'eval_perplexity', '.3f')} | {cost(runs)} |")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/peft-results")
    if (out / "sst2").is_dir():
        print("### SST-2: learning-rate sweep (seed 1)\n")
        sweep_table(out / "sst2", 1)
        print("\n### SST-2: main runs\n")
        cls_table(out / "sst2", 2)
    if (out / "rte").is_dir():
        print("\n### RTE\n")
        cls_table(out / "rte", 1)
    if (out / "lm").is_dir():
        print("\n### stories260K on TinyStories (language modelling)\n")
        lm_table(out / "lm")


if __name__ == "__main__":
    main()
