#!/usr/bin/env bash
# FLoRA check (docs/results.md, "FLoRA"): stacking vs FedIT averaging vs zero-padding on the bundled MiniLM and
# sentiment sentences, 4 clients, Dirichlet(0.5) label split, 3 rounds, seeds 1-3. Run from the repository root after
# `dotnet build src/PeftSharp.Cli -c Release`. Writes $OUT/{homogeneous,heterogeneous}/ (default /tmp/flora). One intra-op thread:
# on the shared 2-core machine, libtorch's default threads spun and took ~3x the CPU time.
set -euo pipefail
OUT="${OUT:-/tmp/flora}"
PEFT="env OMP_NUM_THREADS=1 dotnet src/PeftSharp.Cli/bin/Release/net10.0/peft.dll"
COMMON="--clients 4 --rounds 3 --split dirichlet:0.5 --steps 8 --batch-size 8 --lr 5e-3 --max-length 32 --eval-limit 200 --seed 1,2,3"
nice -n 15 $PEFT federated simulate $COMMON --ranks 8 --aggregation all --output "$OUT/homogeneous"
nice -n 15 $PEFT federated simulate $COMMON --ranks 4,8,8,16 --aggregation stack,zeropad --output "$OUT/heterogeneous"
