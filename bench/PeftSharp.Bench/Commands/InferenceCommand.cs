using PeftSharp.Core;
using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>inference</c>: forward time (eval mode, no_grad, the same batch and length as training) of the base model, the
/// model with the LoRA adapter unmerged, and with it merged (<c>PeftModel.Merge()</c>; the adapter layers stay in place).
/// Two instances with identical shapes are timed in alternation (base, LoRA, base, LoRA…) so that drifting load on a
/// shared machine hits both sides of each ratio alike.
/// </summary>
internal static class InferenceCommand
{
    public static void Run(BenchContext context)
    {
        var s = context.Settings;
        var rows = new List<string[]>();
        foreach (var key in s.Models)
        {
            Console.Error.WriteLine($"[bench]   inference {key}");
            var spec = BenchModels.Get(key);
            torch.manual_seed(0);
            using var baseModel = spec.Build();
            torch.manual_seed(0);
            using var peft = PeftModel.Create(spec.Build(), BenchModels.Lora());
            var loraModel = (PretrainedModel)peft.Model;
            baseModel.eval();
            loraModel.eval();
            using var ids = BenchModels.RandomIds(baseModel, s.Batch, s.SequenceLength, seed: 1);
            using var noGrad = torch.no_grad();

            var (baseUnmerged, unmerged) = Alternate(s, () => Forward(baseModel, ids), () => Forward(loraModel, ids));
            peft.Merge();
            var (baseMerged, merged) = Alternate(s, () => Forward(baseModel, ids), () => Forward(loraModel, ids));

            var unmergedRatio = Stats.Median(unmerged) / Stats.Median(baseUnmerged);
            var mergedRatio = Stats.Median(merged) / Stats.Median(baseMerged);
            rows.Add([spec.Label, Fmt.Ms(Stats.Median(baseUnmerged)), Fmt.Ms(Stats.Median(unmerged)), Fmt.Ratio(unmergedRatio),
                Fmt.Ms(Stats.Median(baseMerged)), Fmt.Ms(Stats.Median(merged)), Fmt.Ratio(mergedRatio)]);
            context.Report.AddTarget(TargetRow.AtMost("unmerged / base forward", spec.Label, unmergedRatio, 1.10));
            context.Report.AddTarget(TargetRow.Within("merged / base forward", spec.Label, mergedRatio, 0.02));
        }
        context.Report.AddSection("Inference forward",
            $"Eval mode, no_grad, batch {s.Batch} × {s.SequenceLength} tokens, medians of {s.Repeats} calls after {s.Warmup} warm-up, base and LoRA timed in alternation "
            + "(each ratio uses the base times of its own phase).\n\n"
            + Markdown.Table(["Model", "base ms", "unmerged ms", "unmerged / base", "base ms (2nd phase)", "merged ms", "merged / base"], rows));
    }

    private static void Forward(PretrainedModel model, Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        _ = model.Forward(ids);
    }

    /// <summary>Warm-up of both, then <c>repeats</c> rounds of (a, b); the times of each.</summary>
    internal static (List<double> A, List<double> B) Alternate(BenchSettings s, Action a, Action b)
    {
        Stats.TimeMs(s.Warmup, 0, a);
        Stats.TimeMs(s.Warmup, 0, b);
        var ta = new List<double>();
        var tb = new List<double>();
        for (var i = 0; i < s.Repeats; i++)
        {
            ta.AddRange(Stats.TimeMs(0, 1, a));
            tb.AddRange(Stats.TimeMs(0, 1, b));
        }
        return (ta, tb);
    }
}
