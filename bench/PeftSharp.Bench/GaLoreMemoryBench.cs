using System.Globalization;
using PeftSharp.Methods.GaLore;
using PeftSharp.Models;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Bench;

/// <summary>
/// Optimizer-state memory of GaLore against AdamW on the same weights (every Linear weight of the model): the bytes the
/// optimizer holds after one real step (measured from its state dict) next to the analytic count, 4 bytes per float32
/// element: AdamW 2·m·n, GaLore 2·r·max(m, n) + r·min(m, n) per weight. Then the same formula on the paper's LLaMA
/// 1B/7B shapes (arithmetic only), where embeddings and the head stay on AdamW as in the official recipe.
/// </summary>
internal static class GaLoreMemoryBench
{
    public const string Command = "galore-memory";

    private static readonly int[] s_ranks = [8, 32, 128];

    public static int Run(string[] args)
    {
        Console.WriteLine("| model | optimizer | rank | weights | analytic state (bytes) | measured state (bytes) | vs AdamW |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var key in new[] { "minilm", "stories260k" })
        {
            Measure(BenchModels.Get(key));
        }
        Console.WriteLine();
        Console.WriteLine("Analytic only, the paper's shapes (q,k,v,o,gate,up,down projected; embeddings and lm_head on AdamW; vocab 32000):");
        Console.WriteLine();
        Console.WriteLine("| model | rank | AdamW state (GiB, fp32) | GaLore state (GiB, fp32) | saving |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Paper("LLaMA 1B (h 2048, i 5461, 24 layers)", 2048, 5461, 24, 512);
        Paper("LLaMA 7B (h 4096, i 11008, 32 layers)", 4096, 11008, 32, 1024);
        return 0;
    }

    private static void Measure(BenchModel spec)
    {
        using var model = spec.Build();
        foreach (var p in model.parameters())
        {
            p.requires_grad = false;
        }
        var weights = model.named_modules().Where(m => m.module is Linear)
            .Select(m => new NamedParameter(m.name + ".weight", ((Linear)m.module).weight!)).ToList();
        foreach (var w in weights)
        {
            w.Parameter.requires_grad = true;
        }
        using (var scope = torch.NewDisposeScope())
        {
            using var ids = BenchModels.RandomIds(model, 2, 32, seed: 0);
            BenchModels.Loss(model, ids).backward();
        }
        var shapes = weights.Select(w => (M: w.Parameter.shape[0], N: w.Parameter.shape[1])).ToList();
        var adamAnalytic = 4 * shapes.Sum(s => GaLoreMemory.AdamWStateElements(s.M, s.N));
        long adamMeasured;
        using (var adam = AdamWOptimizer.Create(weights))
        {
            adam.Step(1e-5);
            adamMeasured = GaLoreMemory.StateBytes(adam);
        }
        Row(spec.Label, "AdamW", "-", weights.Count, adamAnalytic, adamMeasured, adamMeasured);
        foreach (var r in s_ranks)
        {
            var analytic = 4 * shapes.Sum(s => GaLoreMemory.GaLoreStateElements(s.M, s.N, r));
            using var galore = GaLoreAdamW.Create(weights, new GaLoreOptions { Rank = r });
            galore.Step(1e-5);
            Row(spec.Label, "GaLore", r.ToString(CultureInfo.InvariantCulture), weights.Count, analytic, GaLoreMemory.StateBytes(galore), adamMeasured);
        }
    }

    private static void Row(string model, string optimizer, string rank, int count, long analytic, long measured, long adam) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {model} | {optimizer} | {rank} | {count} | {analytic:N0} | {measured:N0} | {(double)measured / adam:F3} |"));

    private static void Paper(string label, long h, long i, long layers, int rank)
    {
        const long vocab = 32000;
        (long M, long N)[] block = [(h, h), (h, h), (h, h), (h, h), (i, h), (i, h), (h, i)];
        var projected = layers * block.Sum(s => s.M * s.N);
        var other = 2 * vocab * h + (2 * layers + 1) * h;
        var adam = 2 * (projected + other);
        var galore = layers * block.Sum(s => GaLoreMemory.GaLoreStateElements(s.M, s.N, rank)) + 2 * other;
        const double gib = 1024.0 * 1024 * 1024;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {label} | {rank} | {4 * adam / gib:F2} | {4 * galore / gib:F2} | {100.0 * (adam - galore) / adam:F1}% |"));
    }
}
