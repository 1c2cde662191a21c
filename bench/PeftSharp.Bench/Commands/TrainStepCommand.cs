namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>train-step</c>: for every model, full fine-tuning with AdamW, LoRA r=8 (all linear) with AdamW and the frozen
/// floor, each in its own child process (step time medians, peak RSS), then the ratios, MFU and the targets.
/// </summary>
internal static class TrainStepCommand
{
    /// <summary>
    /// glibc raises its mmap threshold after each large free (up to 32 MiB), so freed activation buffers stay in the heap
    /// and VmHWM includes what the allocator kept. A fixed 64 KiB threshold returns every large buffer at once: the
    /// peak of a second child run this way is bound by the live tensors (slower, so only its memory is used).
    /// </summary>
    private static readonly Dictionary<string, string> s_fixedMmapThreshold = new() { ["MALLOC_MMAP_THRESHOLD_"] = "65536" };

    public static object RunChild(BenchArgs args) =>
        TrainStep.Measure(BenchSettings.From(args), BenchModels.Get(args.Require("model")), args.Require("mode"));

    public static void Run(BenchContext context)
    {
        var settings = context.Settings;
        var peak = MatmulPeakCommand.PeakOf(context);
        var tokens = (long)settings.Batch * settings.SequenceLength;
        var results = new List<TrainStepResult>();
        var tensorBound = new Dictionary<(string, string), long>();
        var probeSettings = settings with { Warmup = 1, Repeats = 1 };
        foreach (var key in settings.Models)
        {
            foreach (var mode in TrainMode.All)
            {
                Console.Error.WriteLine($"[bench]   train-step {key} {mode}");
                results.Add(ChildProcess.Run<TrainStepResult>("train-step", ["--model", key, "--mode", mode, .. settings.ToArgv()]));
                var probe = ChildProcess.Run<TrainStepResult>("train-step", ["--model", key, "--mode", mode, .. probeSettings.ToArgv()], s_fixedMmapThreshold);
                tensorBound[(key, mode)] = probe.PeakBytes - probe.BaselineRssBytes;
            }
        }

        double Mfu(TrainStepResult r) => TrainStep.Flops(r, tokens) / (r.StepMs / 1e3) / (peak * 1e9);

        var absolute = results.Select(r => new[]
        {
            BenchModels.Get(r.Model).Label, r.Mode, Fmt.Millions(r.TrainableParameters), Fmt.Ms(r.StepMs), Fmt.Ms(r.CpuMs), Fmt.Ms(r.ForwardMs),
            Fmt.Ms(r.BackwardMs), Fmt.Ms(r.OptimizerMs), Fmt.MiB(r.PeakBytes), Fmt.MiB(r.PeakBytes - r.BaselineRssBytes),
            Fmt.MiB(tensorBound[(r.Model, r.Mode)]), Fmt.F(TrainStep.Flops(r, tokens) / 1e9), Fmt.F(TrainStep.Flops(r, tokens) / (r.StepMs / 1e3) / 1e9), Fmt.Percent(Mfu(r)),
        });
        var ratios = new List<string[]>();
        foreach (var key in settings.Models)
        {
            var full = results.Single(r => r.Model == key && r.Mode == TrainMode.Full);
            var lora = results.Single(r => r.Model == key && r.Mode == TrainMode.Lora);
            var floor = results.Single(r => r.Model == key && r.Mode == TrainMode.Floor);
            var label = BenchModels.Get(key).Label;
            var stepVsFull = lora.StepMs / full.StepMs;
            var stepVsFloor = lora.StepMs / floor.StepMs;
            var memory = (double)(lora.PeakBytes - lora.BaselineRssBytes) / (full.PeakBytes - full.BaselineRssBytes);
            var memoryRaw = (double)lora.PeakBytes / full.PeakBytes;
            var memoryTensors = (double)tensorBound[(key, TrainMode.Lora)] / tensorBound[(key, TrainMode.Full)];
            var floorMemory = (double)tensorBound[(key, TrainMode.Floor)] / tensorBound[(key, TrainMode.Full)];
            ratios.Add([label, Fmt.Ratio(stepVsFull), Fmt.Ratio(stepVsFloor), Fmt.Ratio(memory), Fmt.Ratio(memoryRaw), Fmt.Ratio(memoryTensors), Fmt.Ratio(floorMemory),
                Fmt.Ratio((lora.ForwardMs + lora.BackwardMs) / (floor.ForwardMs + floor.BackwardMs)),
                Fmt.Percent(lora.OptimizerMs / lora.StepMs), Fmt.Percent(Mfu(full)), Fmt.Percent(Mfu(lora)), Fmt.Percent(Mfu(floor))]);
            context.Report.AddTarget(TargetRow.AtMost("LoRA step / full step", label, stepVsFull, 0.70));
            context.Report.AddTarget(TargetRow.AtMost("LoRA step / frozen floor", label, stepVsFloor, 1.15));
            context.Report.AddTarget(TargetRow.AtMost("LoRA peak / full peak (above baseline)", label, memory, 0.45));
            foreach (var r in new[] { full, lora, floor })
            {
                context.Report.AddTarget(TargetRow.AtLeast($"MFU, {r.Mode} step", label, Mfu(r), 0.50));
            }
        }

        context.Report.AddSection("Training step: ratios",
            $"Same batch ({settings.Batch}) and sequence length ({settings.SequenceLength}) for every model; each (model, mode) in its own child process. "
            + "Memory ratios use the peak RSS above the child's baseline (libtorch loaded, no model yet); the raw VmHWM ratio is beside it, and the "
            + "tensor-bound ratio from a second child per configuration run with glibc's mmap threshold fixed at 64 KiB (freed buffers returned at once), "
            + "which leaves out what the allocator keeps; floor / full is the lowest memory ratio any adapter can reach at this batch. "
            + "\"fwd+bwd vs floor\" leaves the optimizer out: it is the adapters' cost in forward and backward alone.\n\n"
            + Markdown.Table(["Model", "LoRA / full step", "LoRA / floor step", "LoRA / full peak", "(raw VmHWM)", "(tensor-bound)", "floor / full peak (tensor-bound)", "LoRA fwd+bwd / floor", "optimizer share of LoRA step",
                "MFU full", "MFU LoRA", "MFU floor"], ratios));
        context.Report.AddSection("Training step: absolute",
            $"Medians of {settings.Repeats} steps after {settings.Warmup} warm-up. CPU = process CPU time per step (all threads), fwd = forward + loss, bwd = backward, opt = AdamW step + zero_grad. "
            + $"Peak = VmHWM of the child; above base = VmHWM − VmRSS before the model was built. Model GFLOP per step: full 6·N·tokens, LoRA 4·N·tokens + 6·N_lora·tokens, "
            + "floor 4·N·tokens (N = matmul weights: linear layers and the tied lm_head, no embedding lookups; attention products not counted). "
            + $"MFU = achieved / measured matmul peak ({Fmt.F(peak)} GFLOP/s).\n\n"
            + Markdown.Table(["Model", "Mode", "Trainable", "Step ms", "CPU ms", "fwd ms", "bwd ms", "opt ms", "Peak MiB", "Above base MiB", "Tensor-bound MiB", "GFLOP/step", "GFLOP/s", "MFU"], absolute));
    }
}
