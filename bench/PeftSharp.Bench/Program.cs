using PeftSharp.Bench;
using PeftSharp.Bench.Commands;

// The benchmark harness: one subcommand per file. `all` runs the commands marked InAll, in this order, in one
// process tree, and writes one report (ratios are only meaningful within one run). A Raw command parses its own
// arguments and prints its own table.
BenchCommand[] commands =
[
    new("matmul-peak", "measured fp32 matmul peak (GFLOP/s), the denominator of every MFU", MatmulPeakCommand.Run, InAll: true),
    new("train-step", "training step time, peak memory and MFU: full AdamW, LoRA r=8 all-linear + AdamW, frozen floor", TrainStepCommand.Run, TrainStepCommand.RunChild, InAll: true),
    new("lora-profile", "where a LoRA step costs more than the frozen floor (whole model and per linear layer)", LoraProfileCommand.Run, InAll: true),
    new("inference", "forward time: base, LoRA unmerged, LoRA merged", InferenceCommand.Run, InAll: true),
    new("generation", "greedy decoding tokens/s with the KV cache: base, LoRA unmerged, LoRA merged", GenerationCommand.Run, InAll: true),
    new("load-memory", "peak RSS while loading MiniLM and a generated ~500M-parameter Llama checkpoint", LoadMemoryCommand.Run, LoadMemoryCommand.RunChild, InAll: true),
    new("serving", "forward of one batch whose rows use 4 LoRA adapters vs one adapter vs 4 separate batches", ServingCommand.Run),
    new(GradientCheckpointingBench.Command, "peak RSS of one LoRA training step with and without per-layer checkpointing", Raw: GradientCheckpointingBench.Run),
    new(GaLoreMemoryBench.Command, "optimizer-state bytes of GaLore (r = 8, 32, 128) vs AdamW on every Linear weight: analytic and measured", Raw: GaLoreMemoryBench.Run),
    new(OptimizerStateCommand.Command, "optimizer state bytes after one step: LoRA + AdamW vs LoRA-Pro (full-size moments), measured and analytic", Raw: OptimizerStateCommand.Run),
];
return BenchCli.Run(args, commands);
