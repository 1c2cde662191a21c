using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Merging;
using PeftSharp.Models;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

/// <summary>add_weighted_adapter against PEFT 0.20's own results in the fixture (sources a: r=8 α=16, b: r=8 α=8; weights 0.7, 0.5).</summary>
public class AddWeightedAdapterFixtureTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(MergeFixture.Deterministic), MemberType = typeof(MergeFixture))]
    public void Combination_reproduces_PEFT_logits_active_and_merged_within_1e4(string name)
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], MergeFixture.Weights(name), "comb", MergeFixture.Options(name));
        peft.SetActiveAdapters("comb");
        var active = ModelFixtures.MaxAbsDiff(MergeFixture.Logits(model), MergeFixture.Expected("logits_comb_" + name));
        var merged = (PretrainedModel)peft.MergeAndUnload();
        var afterMerge = ModelFixtures.MaxAbsDiff(MergeFixture.Logits(merged), MergeFixture.Expected($"logits_comb_{name}_merged"));
        output.WriteLine($"{name}: active {active:E2}, merged {afterMerge:E2}");
        Assert.InRange(active, 0, MergeFixture.Tolerance);
        Assert.InRange(afterMerge, 0, MergeFixture.Tolerance);
    }

    [Theory]
    [MemberData(nameof(MergeFixture.Deterministic), MemberType = typeof(MergeFixture))]
    public void Merged_delta_weights_equal_PEFT_saved_adapter_within_1e5(string name)
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        using var combined = AdapterMerging.Combine(peft, ["a", "b"], MergeFixture.Weights(name), MergeFixture.Options(name));
        using var file = SafetensorsFile.Open(Path.Combine(MergeFixture.CombinedFolder(name), "adapter_model.safetensors"));
        Assert.Equal(file.Entries.Count / 2, combined.Factors.Count);
        var scale = PeftScale(name);
        var worst = 0.0;
        foreach (var (module, f) in combined.Factors)
        {
            var prefix = "base_model.model." + module + ".";
            using var a = file.Read(prefix + "lora_A.weight");
            using var b = file.Read(prefix + "lora_B.weight");
            Assert.Equal(a.shape, f.A.shape);
            Assert.Equal(b.shape, f.B.shape);
            // Singular vectors may differ in sign between LAPACK builds: compare B·A, which does not.
            using var ours = combined.DeltaWeight(module);
            using var peftDelta = b.matmul(a) * scale;
            worst = Math.Max(worst, Weights.MaxAbsDiff(ours, peftDelta));
        }
        output.WriteLine($"{name}: max |ΔW − ΔW_PEFT| = {worst:E2}");
        Assert.InRange(worst, 0, 1e-5);
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("cat")]
    [InlineData("ties")]
    [InlineData("magnitude_prune")]
    public void Factor_kinds_give_PEFT_factors_themselves_within_1e6(string name)
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        using var combined = AdapterMerging.Combine(peft, ["a", "b"], MergeFixture.Weights(name), MergeFixture.Options(name));
        using var file = SafetensorsFile.Open(Path.Combine(MergeFixture.CombinedFolder(name), "adapter_model.safetensors"));
        foreach (var (module, f) in combined.Factors)
        {
            var prefix = "base_model.model." + module + ".";
            using var a = file.Read(prefix + "lora_A.weight");
            using var b = file.Read(prefix + "lora_B.weight");
            Assert.True(Weights.MaxAbsDiff(f.A, a) < 1e-6, $"{module} A");
            Assert.True(Weights.MaxAbsDiff(f.B, b) < 1e-6, $"{module} B");
        }
    }

    [Theory]
    [MemberData(nameof(AllCombinations))]
    public void Saved_config_has_PEFT_rank_alpha_and_targets(string name)
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        var options = MergeFixture.Options(name) with { Seed = 1 };
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], MergeFixture.Weights(name), "comb", options);
        var ours = JsonNode.Parse(peft.Registry.SerializeConfig(peft.ConfigForSave("comb")))!.AsObject();
        var theirs = JsonNode.Parse(File.ReadAllText(Path.Combine(MergeFixture.CombinedFolder(name), "adapter_config.json")))!.AsObject();
        foreach (var key in new[] { "r", "lora_alpha", "use_dora", "use_rslora", "peft_type", "rank_pattern", "alpha_pattern" })
        {
            Assert.True(JsonNode.DeepEquals(theirs[key], ours[key]), $"{key}: PEFT {theirs[key]?.ToJsonString()}, ours {ours[key]?.ToJsonString()}");
        }
        Assert.Equal(Names(theirs["target_modules"]!).Order(), Names(ours["target_modules"]!).Order());
        var keys = peft.AdapterStateDict("comb");
        using var file = SafetensorsFile.Open(Path.Combine(MergeFixture.CombinedFolder(name), "adapter_model.safetensors"));
        Assert.Equal(file.Entries.Select(e => e.Name).Order(), keys.Keys.Order());
        foreach (var (key, t) in keys)
        {
            Assert.Equal(file[key].Shape, t.shape);
        }
    }

    [Fact]
    public void Dare_linear_drops_like_PEFT_and_every_kept_entry_is_a_rescaled_source_sum()
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        const double density = 0.5;
        var options = MergeFixture.Options("dare_linear") with { Seed = 30 };
        Assert.Equal(density, options.Density);
        using var combined = AdapterMerging.Combine(peft, ["a", "b"], MergeFixture.Weights("dare_linear"), options);
        using var file = SafetensorsFile.Open(Path.Combine(MergeFixture.CombinedFolder("dare_linear"), "adapter_model.safetensors"));
        long zerosOurs = 0, zerosPeft = 0, total = 0;
        foreach (var (module, f) in combined.Factors)
        {
            var layer = (PeftSharp.Methods.Lora.LoraLayer)peft.AdapterLayers().Single(l => l.Name == module).Layer;
            foreach (var (key, ours) in new[] { ("lora_A.weight", f.A), ("lora_B.weight", f.B) })
            {
                var isA = key[5] == 'A';
                // Weights split as PEFT does: √(w·s) on each factor (both weights positive here).
                var ca = Math.Sqrt(0.7 * layer.ScalingOf("a"));
                var cb = Math.Sqrt(0.5 * layer.ScalingOf("b"));
                var ta = layer.AdapterTensors("a")[key];
                var tb = layer.AdapterTensors("b")[key];
                // An entry is 0 (both dropped), ca·a/d, cb·b/d or (ca·a + cb·b)/d: the nearest of the four must match.
                using var candidates = torch.stack([torch.zeros_like(ta), ta * (ca / density), tb * (cb / density), (ta * ca + tb * cb) / density], 0);
                using var error = (candidates - ours.unsqueeze(0)).abs().amin(0);
                Assert.True(error.max().item<float>() < 1e-5, $"{module}.{key} (A: {isA})");
                using var theirs = file.Read("base_model.model." + module + "." + key);
                zerosOurs += ours.eq(0).sum().item<long>();
                zerosPeft += theirs.eq(0).sum().item<long>();
                total += ours.numel();
            }
        }
        // Both factors of both sources kept with probability ½ each: an entry is 0 with probability ¼ (σ ≈ 0.007 here).
        output.WriteLine($"zero fraction: ours {zerosOurs / (double)total:F4}, PEFT {zerosPeft / (double)total:F4} of {total}");
        Assert.InRange(zerosOurs / (double)total, 0.25 - 0.04, 0.25 + 0.04);
        Assert.InRange(zerosPeft / (double)total, 0.25 - 0.04, 0.25 + 0.04);
    }

    public static TheoryData<string> AllCombinations()
    {
        var data = new TheoryData<string>();
        foreach (var (name, _) in MergeFixture.Case["combinations"]!.AsObject())
        {
            data.Add(name);
        }
        return data;
    }

    private static IEnumerable<string> Names(JsonNode node) => node.AsArray().Select(n => n!.GetValue<string>());

    // The saved adapter's scale: lora_alpha / r from its own config.
    private static double PeftScale(string name)
    {
        var c = JsonNode.Parse(File.ReadAllText(Path.Combine(MergeFixture.CombinedFolder(name), "adapter_config.json")))!;
        return c["lora_alpha"]!.GetValue<double>() / c["r"]!.GetValue<double>();
    }
}
