using System.Diagnostics;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>lora-profile</c>: where a LoRA step costs more than the frozen floor. (1) The whole model, LoRA and floor instances
/// stepped in alternation in one process (forward and backward medians). (2) One linear layer of each shape of the
/// model, x <c>[batch·length, in]</c> requiring grad, forward + backward with a fixed output gradient: the frozen layer
/// alone, the library's <see cref="LoraLayer"/>, and the same maths written out in other orders, again in alternation.
/// <c>--part model|layers</c> runs one of the two.
/// </summary>
internal static class LoraProfileCommand
{
    public static void Run(BenchContext context)
    {
        var s = context.Settings;
        foreach (var key in s.Models)
        {
            Console.Error.WriteLine($"[bench]   lora-profile {key}");
            var part = context.Args.Get("part") ?? "both";
            if (part is "both" or "model")
            {
                WholeModel(context, BenchModels.Get(key));
            }
            if (part is "both" or "layers")
            {
                Layers(context, BenchModels.Get(key));
            }
        }
    }

    private static void WholeModel(BenchContext context, BenchModel spec)
    {
        var s = context.Settings;
        torch.manual_seed(0);
        using var floorModel = spec.Build();
        foreach (var p in floorModel.parameters())
        {
            p.requires_grad = false;
        }
        using var hook = BenchModels.GradientFromEmbeddings(floorModel);
        torch.manual_seed(0);
        using var peft = PeftModel.Create(spec.Build(), BenchModels.Lora());
        var loraModel = (PretrainedModel)peft.Model;
        floorModel.train();
        loraModel.train();
        using var ids = BenchModels.RandomIds(floorModel, s.Batch, s.SequenceLength, seed: 1);
        var phases = new Dictionary<string, List<double>> { ["floor fwd"] = [], ["floor bwd"] = [], ["lora fwd"] = [], ["lora bwd"] = [] };
        void Step(PretrainedModel m, string name, bool record)
        {
            using var scope = torch.NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var loss = BenchModels.Loss(m, ids);
            var f = sw.Elapsed.TotalMilliseconds;
            loss.backward();
            var b = sw.Elapsed.TotalMilliseconds - f;
            foreach (var p in m.parameters())
            {
                p.grad = null;
            }
            if (record)
            {
                phases[name + " fwd"].Add(f);
                phases[name + " bwd"].Add(b);
            }
        }
        for (var i = 0; i < s.Warmup + s.Repeats; i++)
        {
            Step(floorModel, "floor", i >= s.Warmup);
            Step(loraModel, "lora", i >= s.Warmup);
        }
        var med = phases.ToDictionary(kv => kv.Key, kv => Stats.Median(kv.Value));
        context.Report.AddSection($"LoRA profile: {spec.Label}, whole model",
            "LoRA (r=8, all linear) and frozen-floor instances stepped in alternation in one process; medians (ms). The LoRA column leaves the optimizer out.\n\n"
            + Markdown.Table(["Phase", "floor ms", "LoRA ms", "LoRA / floor"],
            [
                ["forward + loss", Fmt.Ms(med["floor fwd"]), Fmt.Ms(med["lora fwd"]), Fmt.Ratio(med["lora fwd"] / med["floor fwd"])],
                ["backward", Fmt.Ms(med["floor bwd"]), Fmt.Ms(med["lora bwd"]), Fmt.Ratio(med["lora bwd"] / med["floor bwd"])],
                ["total", Fmt.Ms(med["floor fwd"] + med["floor bwd"]), Fmt.Ms(med["lora fwd"] + med["lora bwd"]),
                    Fmt.Ratio((med["lora fwd"] + med["lora bwd"]) / (med["floor fwd"] + med["floor bwd"]))],
            ]));
    }

    private static void Layers(BenchContext context, BenchModel spec)
    {
        var s = context.Settings;
        var tokens = (long)s.Batch * s.SequenceLength;
        List<(long In, long Out)> shapes;
        using (var model = spec.Build())
        {
            shapes = [.. model.named_modules().Select(m => m.module).OfType<Linear>()
                .Select(l => (l.in_features, l.out_features)).Distinct().Where(sh => sh.out_features < 10000)];
        }
        var rows = new List<string[]>();
        var config = BenchModels.Lora();
        var scale = config.Scaling;
        foreach (var (inF, outF) in shapes)
        {
            using var scope = torch.NewDisposeScope();
            torch.manual_seed(0);
            var linear = nn.Linear(inF, outF, hasBias: false);
            linear.weight!.requires_grad = false;
            var layer = new LoraLayer(BaseLayer.TryCreate(linear)!);
            layer.AddAdapter("default", config);
            var a = layer.AdapterTensors("default")["lora_A.weight"];
            var b = layer.AdapterTensors("default")["lora_B.weight"];
            var x = torch.randn(tokens, inF).requires_grad_(true);
            var g = torch.randn(tokens, outF);
            var w = linear.weight!;
            var variants = new (string Name, Func<Tensor> Forward)[]
            {
                ("frozen layer (floor)", () => nn.functional.linear(x, w)),
                ("LoraLayer (library)", () => layer.call(x)),
                ("y + (B(Ax))·s", () => nn.functional.linear(x, w) + nn.functional.linear(nn.functional.linear(x, a), b) * scale),
                ("y.add(B(Ax), alpha: s)", () => nn.functional.linear(x, w).add(nn.functional.linear(nn.functional.linear(x, a), b), alpha: scale)),
                ("y + B((Ax)·s)", () => nn.functional.linear(x, w) + nn.functional.linear(nn.functional.linear(x, a) * scale, b)),
                ("y + B(Ax) (s = 1 skipped)", () => nn.functional.linear(x, w) + nn.functional.linear(nn.functional.linear(x, a), b)),
            };
            var fwd = variants.Select(_ => new List<double>()).ToArray();
            var bwd = variants.Select(_ => new List<double>()).ToArray();
            var repeats = Math.Max(5, s.Repeats);
            for (var i = 0; i < s.Warmup + repeats; i++)
            {
                for (var v = 0; v < variants.Length; v++)
                {
                    using var step = torch.NewDisposeScope();
                    var sw = Stopwatch.StartNew();
                    var y = variants[v].Forward();
                    var f = sw.Elapsed.TotalMilliseconds;
                    y.backward([g]);
                    var total = sw.Elapsed.TotalMilliseconds;
                    x.grad = null;
                    a.grad = null;
                    b.grad = null;
                    if (i >= s.Warmup)
                    {
                        fwd[v].Add(f);
                        bwd[v].Add(total - f);
                    }
                }
            }
            var floor = Stats.Median(fwd[0]) + Stats.Median(bwd[0]);
            for (var v = 0; v < variants.Length; v++)
            {
                var t = Stats.Median(fwd[v]) + Stats.Median(bwd[v]);
                rows.Add([$"{inF}→{outF}", variants[v].Name, Fmt.Ms(Stats.Median(fwd[v])), Fmt.Ms(Stats.Median(bwd[v])), Fmt.Ms(t), Fmt.Ratio(t / floor)]);
            }
            layer.Dispose();
        }
        context.Report.AddSection($"LoRA profile: {spec.Label}, one linear layer",
            $"x [{tokens}, in] requires grad, the base weight is frozen, backward with a fixed output gradient; LoRA r=8, s = {Fmt.F(scale, 2)}; "
            + "variants timed in alternation, medians (ms).\n\n"
            + Markdown.Table(["Shape", "Forward", "fwd ms", "bwd ms", "total ms", "/ floor"], rows));
    }
}
