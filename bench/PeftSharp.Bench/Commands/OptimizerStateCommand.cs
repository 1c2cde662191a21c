using System.Globalization;
using PeftSharp.Core;
using PeftSharp.Methods.LoraPro;
using PeftSharp.Models;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>optimizer-state</c>: bytes of optimizer state after one training step of the adapter (r = 8, all linear
/// layers): LoRA with AdamW (2·r·(d_in + d_out) fp32 per layer) against LoRA-Pro (full-size moments, 2·d_in·d_out fp32 per
/// layer), each measured (the state tensors the optimizer holds after its first step) and computed from the layer shapes,
/// with full fine-tuning's AdamW (2 × every parameter) for scale. Memory only; no timings.
/// Usage: <c>optimizer-state [minilm] [stories260k] [llama100m]</c> (default: minilm stories260k).
/// </summary>
internal static class OptimizerStateCommand
{
    public const string Command = "optimizer-state";

    public static int Run(string[] args)
    {
        var keys = args.Length > 0 ? args : ["minilm", "stories260k"];
        var rows = new List<string[]>();
        foreach (var key in keys)
        {
            var spec = BenchModels.Get(key);
            Console.Error.WriteLine($"[bench]   {Command} {key}");
            var (loraMeasured, loraAnalytic, layers) = Measure(spec, new PeftSharp.Methods.Lora.LoraConfig { Rank = 8, Alpha = 16, TargetModules = TargetModules.AllLinearLayers }, lorapro: false);
            var (proMeasured, proAnalytic, _) = Measure(spec, new LoraProConfig { Rank = 8, Alpha = 16, TargetModules = TargetModules.AllLinearLayers }, lorapro: true);
            torch.manual_seed(0);
            using var model = spec.Build();
            var full = 2L * 4 * BenchModels.TotalParameters(model);
            rows.Add([spec.Label, layers.ToString(CultureInfo.InvariantCulture), Bytes(loraMeasured), Bytes(loraAnalytic), Bytes(proMeasured), Bytes(proAnalytic),
                Fmt.Ratio((double)proMeasured / loraMeasured, 1), Bytes(full)]);
        }
        Console.WriteLine(Markdown.Table(["Model", "adapted layers", "LoRA AdamW measured", "LoRA AdamW analytic", "LoRA-Pro measured", "LoRA-Pro analytic", "LoRA-Pro / LoRA", "full FT AdamW analytic"], rows));
        return 0;
    }

    // One forward/backward/step on a random batch (2 × 32 tokens); the state bytes the optimizer then holds, the bytes the
    // formula gives, and the number of adapted layers.
    private static (long Measured, long Analytic, int Layers) Measure(BenchModel spec, AdapterConfig config, bool lorapro)
    {
        torch.manual_seed(0);
        using var peft = PeftModel.Create(spec.Build(), config);
        var model = (PretrainedModel)peft.Model;
        var trainable = peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter)).ToList();
        using TrainingOptimizer optimizer = lorapro
            ? new LoraProMethod().CreateHooks(peft, "default")!.CustomOptimizer(trainable) ?? throw new BenchException("LoRA-Pro claimed no parameters")
            : AdamWOptimizer.Create(trainable);
        using (var scope = torch.NewDisposeScope())
        {
            using var ids = BenchModels.RandomIds(model, 2, 32, seed: 1);
            BenchModels.Loss(model, ids).backward();
            optimizer.Step(1e-4);
        }
        long measured = lorapro
            ? ((LoraProOptimizer)optimizer).StateBytes
            : optimizer.StateDict().Where(kv => !kv.Key.EndsWith("/step", StringComparison.Ordinal)).Sum(kv => kv.Value.numel() * kv.Value.ElementSize);
        var layers = peft.AdapterLayers().Select(l => l.Layer.Base).ToList();
        long analytic = lorapro
            ? layers.Sum(l => 2L * 4 * l.InFeatures * l.OutFeatures)
            : layers.Sum(l => 2L * 4 * 8 * (l.InFeatures + l.OutFeatures));
        return (measured, analytic, layers.Count);
    }

    private static string Bytes(long b) => b >= 1 << 20
        ? (b / Stats.MiB).ToString("F2", CultureInfo.InvariantCulture) + " MiB"
        : (b / 1024.0).ToString("F1", CultureInfo.InvariantCulture) + " KiB";
}
