#!/usr/bin/env python3
"""Tables for docs/results.md "SoRA and DyLoRA" from the run folder of sora_dylora.sh (python3 standard library only)."""
import json, statistics, struct, sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/peft-sora-dylora")
seeds = sorted({int(p.name.rsplit("-s", 1)[1]) for p in out.glob("dylora-r4-s*") if p.is_dir()})

def evals(run):
    lines = [json.loads(l) for l in (out / run / "metrics.jsonl").read_text().splitlines()]
    e = [l["eval_loss"] for l in lines if "eval_loss" in l]
    return e[0], e[-1]

def ms(xs):
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"

def gates(folder):
    raw = (folder / "adapter_model.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    result = {}
    for name, e in header.items():
        if name.endswith(".lora_gate"):
            b, f = e["data_offsets"]
            data = raw[8 + n + b: 8 + n + f]
            result[name] = struct.unpack(f"<{len(data) // 4}f", data)
    return result

print("| run | seeds | eval loss before → after |")
print("|---|---|---|")
for name in ["lora-r1", "lora-r4", "dylora-r4", "sora-r8"]:
    pairs = [evals(f"{name}-s{s}") for s in seeds if (out / f"{name}-s{s}" / "metrics.jsonl").exists()]
    if pairs:
        print(f"| {name} | {len(pairs)} | {ms([p[0] for p in pairs])} → {ms([p[1] for p in pairs])} |")

print("\nDyLoRA r=4, one run per seed, evaluated at b (peft eval --rank b) vs a separate LoRA run at rank b:\n")
print("| b | DyLoRA eval loss | separate LoRA r=b eval loss |")
print("|---|---|---|")
for b in [1, 2, 3, 4]:
    dy = [json.loads((out / f"eval-dylora-s{s}-b{b}.json").read_text())["loss"] for s in seeds if (out / f"eval-dylora-s{s}-b{b}.json").exists() and (out / f"eval-dylora-s{s}-b{b}.json").stat().st_size]
    lo = [evals(f"lora-r{b}-s{s}")[1] for s in seeds if (out / f"lora-r{b}-s{s}" / "metrics.jsonl").exists()]
    print(f"| {b} | {ms(dy) if dy else '—'} | {ms(lo) if lo else 'not run'} |")

print("\nSoRA r=8: zero gates, retained rank per module, gated vs pruned eval loss:\n")
print("| seed | zero gates | retained rank per module (min/mean/max) | gated eval loss (train end) | pruned LoRA eval loss (peft eval) |")
print("|---|---|---|---|---|")
for s in seeds:
    folder = out / f"sora-r8-s{s}"
    if not (folder / "adapter_model.safetensors").exists():
        continue
    g = gates(folder)
    ranks = [sum(1 for v in vals if v != 0.0) for vals in g.values()]
    total = sum(len(v) for v in g.values())
    zeros = total - sum(ranks)
    pruned = out / f"eval-sora-pruned-s{s}.json"
    pl = json.loads(pruned.read_text())["loss"] if pruned.exists() and pruned.stat().st_size else float("nan")
    print(f"| {s} | {zeros}/{total} ({zeros / total:.0%}) | {min(ranks)}/{statistics.mean(ranks):.2f}/{max(ranks)} | {evals(f'sora-r8-s{s}')[1]:.6f} | {pl:.6f} |")
