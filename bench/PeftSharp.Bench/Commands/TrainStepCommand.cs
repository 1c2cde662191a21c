namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>train-step</c>: for every model, full fine-tuning with AdamW, LoRA r=8 (all linear) with AdamW, the frozen floor
/// and LoRA with gradient checkpointing, each in its own child process (step time medians, peak RSS), then the
/// ratios, MFU and the targets.
/// </summary>
internal static class TrainStepCommand
{
    /// <summary>
    /// glibc raises its mmap threshold after each large free (up to 32 MiB), so freed activation buffers stay in the heap
    /// and VmHWM includes what the allocator kept. A fixed 64 KiB threshold returns every large buffer at once: the
    /// peak of a second child run this way is bound by the live tensors (slower, so only its memory is used).
    /// </summary>
    internal static readonly Dictionary<string, string> FixedMmapThreshold = new() { ["MALLOC_MMAP_THRESHOLD_"] = "65536" };

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
                var probe = ChildProcess.Run<TrainStepResult>("train-step", ["--model", key, "--mode", mode, .. probeSettings.ToArgv()], FixedMmapThreshold);
                tensorBound[(key, mode)] = probe.PeakBytes - probe.BaselineRssBytes;
            }
        }

        double Mfu(TrainStepResult r) => TrainStep.Flops(r, tokens) / (r.StepMs / 1e3) / (peak * 1e9);
        double MfuWithAttention(TrainStepResult r) =>
            (TrainStep.Flops(r, tokens) + TrainStep.AttentionFlops(r, tokens, settings.SequenceLength)) / (r.StepMs / 1e3) / (peak * 1e9);
        static long Above(TrainStepResult r) => r.PeakBytes - r.BaselineRssBytes;

        var time = new List<string[]>();
        var memory = new List<string[]>();
        var mfu = new List<string[]>();
        foreach (var key in settings.Models)
        {
            TrainStepResult Of(string mode) => results.Single(r => r.Model == key && r.Mode == mode);
            var (full, lora, floor, ckpt) = (Of(TrainMode.Full), Of(TrainMode.Lora), Of(TrainMode.Floor), Of(TrainMode.LoraCheckpointed));
            var label = BenchModels.Get(key).Label;

            var stepVsFull = lora.StepMs / full.StepMs;
            var stepVsFloor = lora.StepMs / floor.StepMs;
            time.Add([label, Fmt.Ratio(stepVsFull), Fmt.Ratio(stepVsFloor), Fmt.Ratio(floor.StepMs / full.StepMs),
                Fmt.Ratio(lora.ForwardMs / floor.ForwardMs), Fmt.Ratio(lora.BackwardMs / floor.BackwardMs),
                Fmt.Percent(lora.OptimizerMs / lora.StepMs), Fmt.Ratio(ckpt.StepMs / lora.StepMs)]);

            var memoryRatio = (double)Above(lora) / Above(full);
            var tensors = (double)tensorBound[(key, TrainMode.Lora)] / tensorBound[(key, TrainMode.Full)];
            var ckptRatio = (double)Above(ckpt) / Above(full);
            memory.Add([label, Fmt.Ratio(memoryRatio), Fmt.Ratio((double)lora.PeakBytes / full.PeakBytes), Fmt.Ratio(tensors),
                Fmt.Ratio((double)tensorBound[(key, TrainMode.Floor)] / tensorBound[(key, TrainMode.Full)]), Fmt.Ratio(ckptRatio),
                Fmt.Ratio((double)tensorBound[(key, TrainMode.LoraCheckpointed)] / tensorBound[(key, TrainMode.Full)])]);

            mfu.Add([label, .. new[] { full, lora, floor, ckpt }.Select(r => $"{Fmt.Percent(Mfu(r))} ({Fmt.Percent(MfuWithAttention(r))})")]);

            context.Report.AddTarget(TargetRow.AtMost("LoRA step / full step", label, stepVsFull, 0.70));
            context.Report.AddTarget(TargetRow.AtMost("LoRA step / frozen floor", label, stepVsFloor, 1.15));
            context.Report.AddTarget(TargetRow.AtMost("LoRA peak / full peak", label, memoryRatio, 0.45));
            context.Report.AddTarget(TargetRow.AtMost("same, LoRA with gradient checkpointing", label, ckptRatio, 0.45));
            foreach (var r in new[] { full, lora, floor })
            {
                context.Report.AddTarget(TargetRow.AtLeast($"MFU, {r.Mode} step", label, Mfu(r), 0.50));
            }
        }

        context.Report.AddSection("Training step: time ratios",
            $"Batch {settings.Batch} × {settings.SequenceLength} tokens for every model; each (model, mode) in its own child process; medians of "
            + $"{settings.Repeats} steps after {settings.Warmup} warm-up. fwd/bwd compare the LoRA step's forward (+ loss) and backward with the floor's; "
            + "the optimizer share is AdamW step + zero_grad in the LoRA step; the last column is the price of gradient checkpointing.\n\n"
            + Markdown.Table(["Model", "LoRA / full", "LoRA / floor", "floor / full", "LoRA fwd / floor fwd", "LoRA bwd / floor bwd", "optimizer share of LoRA", "LoRA+ckpt / LoRA"], time));
        context.Report.AddSection("Training step: memory ratios",
            "Peak RSS above the child's baseline (VmHWM − VmRSS with libtorch loaded, before the model exists); then the raw VmHWM ratio; then "
            + "tensor-bound ratios from a second child per configuration (2 steps) run with glibc's mmap threshold fixed at 64 KiB, so that freed "
            + "buffers return to the system at once and the peak follows the live tensors, not what the allocator keeps. floor / full is the lowest "
            + "ratio any adapter can reach at this batch without recomputation.\n\n"
            + Markdown.Table(["Model", "LoRA / full", "(raw VmHWM)", "LoRA / full (tensor-bound)", "floor / full (tensor-bound)", "LoRA+ckpt / full", "LoRA+ckpt / full (tensor-bound)"], memory));
        context.Report.AddSection("Training step: MFU",
            $"Model FLOPs per second over the measured matmul peak ({Fmt.F(peak)} GFLOP/s). Model FLOPs per step: full 6·N·tokens; LoRA 4·N·tokens + 6·N_lora·tokens; "
            + "floor 4·N·tokens; N = weights that multiply every token (linear layers, the tied lm_head; not embedding lookups, not BERT's pooler), "
            + "N_lora = adapter parameters. In brackets: with the attention products added (12·layers·heads·head_dim·T per token, every mode). "
            + "Recomputation under checkpointing is not counted.\n\n"
            + Markdown.Table(["Model", "full", "LoRA", "floor", "LoRA+ckpt"], mfu));
        context.Report.AddSection("Training step: absolute",
            "CPU = process CPU time per step (all threads); fwd = forward + loss; bwd = backward; opt = AdamW step + zero_grad. "
            + "Peak = VmHWM of the child; above base = VmHWM − VmRSS before the model was built; tensor-bound as above.\n\n"
            + Markdown.Table(["Model", "Mode", "Trainable", "Step ms", "CPU ms", "fwd ms", "bwd ms", "opt ms", "Peak MiB", "Above base MiB", "Tensor-bound MiB", "GFLOP/step", "GFLOP/s"],
                results.Select(r => new[]
                {
                    BenchModels.Get(r.Model).Label, r.Mode, Fmt.Millions(r.TrainableParameters), Fmt.Ms(r.StepMs), Fmt.Ms(r.CpuMs), Fmt.Ms(r.ForwardMs),
                    Fmt.Ms(r.BackwardMs), Fmt.Ms(r.OptimizerMs), Fmt.MiB(r.PeakBytes), Fmt.MiB(Above(r)), Fmt.MiB(tensorBound[(r.Model, r.Mode)]),
                    Fmt.F(TrainStep.Flops(r, tokens) / 1e9), Fmt.F(TrainStep.Flops(r, tokens) / (r.StepMs / 1e3) / 1e9),
                })));
    }
}
