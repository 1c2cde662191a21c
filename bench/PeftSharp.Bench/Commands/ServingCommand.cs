using PeftSharp.Core;
using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>serving</c>: one forward over a batch in which rows use 4 different LoRA adapters (<c>UseAdapterPerRow</c>), against
/// the same batch with one adapter for every row, and against the 4 sub-batches run separately (one adapter each, the
/// active adapter switched between calls). The mixed batch is timed twice: rows grouped by adapter (a a b b …: views,
/// no copies) and interleaved (a b c d a b c d: gathered and scattered by index). Eval mode, no_grad; every mode is
/// timed in rotation (one call of each per round) so drifting load hits all alike. Batch must be a multiple of 4.
/// </summary>
internal static class ServingCommand
{
    private static readonly string[] s_adapters = ["a", "b", "c", "d"];

    public static void Run(BenchContext context)
    {
        var s = context.Settings;
        if (s.Batch % s_adapters.Length != 0)
        {
            throw new BenchException($"serving: --batch must be a multiple of {s_adapters.Length}, got {s.Batch}");
        }
        var rows = new List<string[]>();
        foreach (var key in s.Models)
        {
            Console.Error.WriteLine($"[bench]   serving {key}");
            var spec = BenchModels.Get(key);
            torch.manual_seed(0);
            using var peft = PeftModel.Create(spec.Build(), BenchModels.Lora(), s_adapters[0]);
            foreach (var name in s_adapters.Skip(1))
            {
                peft.AddAdapter(name, BenchModels.Lora());
            }
            var model = (PretrainedModel)peft.Model;
            model.eval();
            using var noGrad = torch.no_grad();
            foreach (var p in s_adapters.SelectMany(a => peft.AdapterStateDict(a).Values))
            {
                // B = 0 at init would make every adapter the same (and the base output); random factors make them differ.
                p.add_(torch.randn_like(p), alpha: 1e-2);
            }
            using var ids = BenchModels.RandomIds(model, s.Batch, s.SequenceLength, seed: 1);
            var per = s.Batch / s_adapters.Length;
            var grouped = Enumerable.Range(0, s.Batch).Select(i => s_adapters[i / per]).ToArray();
            var interleaved = Enumerable.Range(0, s.Batch).Select(i => s_adapters[i % s_adapters.Length]).ToArray();
            var parts = Enumerable.Range(0, s_adapters.Length).Select(i => ids.narrow(0, i * per, per)).ToArray();

            var modes = new (string Name, Action Call)[]
            {
                ("one adapter", () =>
                {
                    peft.SetActiveAdapters(s_adapters[0]);
                    Forward(model, ids);
                }),
                ("4 adapters, rows grouped", () =>
                {
                    using var routing = peft.UseAdapterPerRow(grouped);
                    Forward(model, ids);
                }),
                ("4 adapters, rows interleaved", () =>
                {
                    using var routing = peft.UseAdapterPerRow(interleaved);
                    Forward(model, ids);
                }),
                ("4 separate batches", () =>
                {
                    for (var i = 0; i < s_adapters.Length; i++)
                    {
                        peft.SetActiveAdapters(s_adapters[i]);
                        Forward(model, parts[i]);
                    }
                }),
            };
            var (wall, cpu) = Rotate(s, modes.Select(m => m.Call).ToArray());
            var oneWall = Stats.Median(wall[0]);
            var oneCpu = Stats.Median(cpu[0]);
            for (var m = 0; m < modes.Length; m++)
            {
                var w = Stats.Median(wall[m]);
                var c = Stats.Median(cpu[m]);
                rows.Add([spec.Label, modes[m].Name, Fmt.Ms(w), Fmt.Ratio(w / oneWall), Fmt.Ms(c), Fmt.Ratio(c / oneCpu)]);
            }
            context.Report.AddTarget(TargetRow.AtMost("4-adapter mixed batch (grouped) / one adapter, CPU time", spec.Label, Stats.Median(cpu[1]) / oneCpu, 1.25));
            context.Report.AddTarget(TargetRow.AtMost("4-adapter mixed batch (interleaved) / one adapter, CPU time", spec.Label, Stats.Median(cpu[2]) / oneCpu, 1.25));
        }
        context.Report.AddSection("Serving: mixed-adapter batches",
            $"Eval mode, no_grad, batch {s.Batch} × {s.SequenceLength} tokens, LoRA r=8 all-linear ×4 adapters, medians of {s.Repeats} rounds after {s.Warmup} warm-up, "
            + "modes timed in rotation. Ratios are to one adapter on the whole batch; CPU ms is the process's CPU time per call (with --threads 1 the work done, "
            + "whatever the machine's load).\n\n"
            + Markdown.Table(["Model", "mode", "wall ms", "wall / one adapter", "CPU ms", "CPU / one adapter"], rows));
    }

    private static void Forward(PretrainedModel model, Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        _ = model.Forward(ids);
    }

    // Warm-up of each, then `repeats` rounds in which each mode runs once; the wall-clock and process CPU milliseconds of
    // each mode. On a shared machine the CPU time (with --threads 1) tracks the work done where the wall clock tracks the
    // scheduler.
    private static (List<double>[] Wall, List<double>[] Cpu) Rotate(BenchSettings s, Action[] calls)
    {
        foreach (var call in calls)
        {
            Stats.TimeMs(s.Warmup, 0, call);
        }
        var wall = calls.Select(_ => new List<double>()).ToArray();
        var cpu = calls.Select(_ => new List<double>()).ToArray();
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        for (var r = 0; r < s.Repeats; r++)
        {
            for (var m = 0; m < calls.Length; m++)
            {
                process.Refresh();
                var before = process.TotalProcessorTime;
                wall[m].AddRange(Stats.TimeMs(0, 1, calls[m]));
                process.Refresh();
                cpu[m].Add((process.TotalProcessorTime - before).TotalMilliseconds);
            }
        }
        return (wall, cpu);
    }
}
