using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Compression;

public class LoraCompressionTests : IDisposable
{
    private readonly ToySources _sources = new();

    public void Dispose() => _sources.Dispose();

    private static readonly TargetModules s_targets = TargetModules.Of("q_proj", "v_proj", "proj");

    private (Dictionary<string, Tensor> BaseState, PeftModel Peft, string Folder) SavedAdapter(AdapterConfig config) => _sources.Save(config);

    private static PeftModel Load(Dictionary<string, Tensor> baseState, string folder) => ToySources.Load(baseState, folder);

    private static Tensor DenseTruncation(Tensor delta, int k)
    {
        var (u, s, vh) = torch.linalg.svd(delta.to(ScalarType.Float64), fullMatrices: false);
        return u.narrow(1, 0, k).matmul(torch.diag(s.narrow(0, 0, k))).matmul(vh.narrow(0, 0, k));
    }

    [Fact]
    public void Compressed_adapter_loads_as_peft_lora_at_rank_k_with_the_best_rank_k_deltas()
    {
        var (baseState, source, folder) = SavedAdapter(new LoraConfig { Rank = 4, Alpha = 8, TargetModules = s_targets, ModulesToSave = ["lm_head"] });
        using var compressed = LoraCompression.CompressFolder(folder, new CompressionOptions { Rank = 2 });
        var outDir = Path.Combine(_sources.Root, "out");
        compressed.Save(outDir);

        var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(outDir));
        Assert.Equal(2, config.Rank);
        Assert.Equal(4, config.Alpha); // the scale 8/4 = 2 is kept: α = 2·2
        Assert.Empty(config.RankPattern);
        Assert.Empty(config.AlphaPattern);
        var loaded = Load(baseState, outDir);
        var layers = loaded.AdapterLayers().ToList();
        Assert.Equal(5, layers.Count);
        foreach (var (name, layer) in layers)
        {
            Assert.Equal([2L, layer.Base.InFeatures], layer.AdapterTensors("default")["lora_A.weight"].shape);
            using var expected = DenseTruncation(source.AdapterLayers().Single(l => l.Name == name).Layer.DeltaWeight("default")!.detach(), 2);
            using var got = layer.DeltaWeight("default")!.detach().to(ScalarType.Float64);
            Assert.True((got - expected).abs().max().item<double>() < 1e-5, $"{name}: ΔW differs from the dense rank-2 truncation");
        }
        // The head saved with the adapter is carried over bit for bit.
        using var file = PeftAdapterFiles.OpenWeights(outDir);
        var heads = source.AdapterStateDict("default").Where(kv => kv.Key.Contains("lm_head", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, heads.Count);
        Assert.All(heads, kv => Assert.True(Weights.Exact(file.Read(kv.Key), kv.Value.detach())));
        // The report's error is the Eckart–Young tail.
        var m = compressed.Modules[0];
        Assert.Equal(4, m.SourceRank);
        Assert.Equal(Math.Sqrt(m.SingularValues.Skip(2).Sum(s => s * s)), m.Error, 12);
        Assert.Equal(5 * 2 * (6 + 6) - 2 * (6 + 6) + 2 * (4 + 6), compressed.Parameters);
    }

    [Fact]
    public void Same_rank_keeps_the_update_exactly()
    {
        var (baseState, source, folder) = SavedAdapter(new LoraConfig { Rank = 3, Alpha = 5, UseRsLora = true, TargetModules = s_targets });
        using var compressed = LoraCompression.CompressFolder(folder, new CompressionOptions { Rank = 3 });
        var outDir = Path.Combine(_sources.Root, "same");
        compressed.Save(outDir);
        var loaded = Load(baseState, outDir);
        foreach (var (name, layer) in loaded.AdapterLayers())
        {
            using var expected = source.AdapterLayers().Single(l => l.Name == name).Layer.DeltaWeight("default")!.detach();
            Assert.True((layer.DeltaWeight("default")! - expected).abs().max().item<float>() < 1e-5);
        }
    }

    [Fact]
    public void Budget_writes_per_module_ranks_in_rank_pattern_and_loads()
    {
        var (baseState, _, folder) = SavedAdapter(new LoraConfig { Rank = 4, Alpha = 4, TargetModules = s_targets });
        // Rank 1 everywhere costs 4·12 + 10 = 58; 70 leaves 12 parameters: one more unit in one 6×6 module or stem.proj (10).
        using var compressed = LoraCompression.CompressFolder(folder, new CompressionOptions { Budget = 70 });
        Assert.True(compressed.Parameters <= 70);
        Assert.Equal(6, compressed.Modules.Sum(m => m.TargetRank));
        var outDir = Path.Combine(_sources.Root, "budget");
        compressed.Save(outDir);
        var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(outDir));
        Assert.Equal(1, config.Rank);
        var two = Assert.Single(config.RankPattern);
        Assert.Equal(2, two.Value);
        Assert.Equal(1, config.Alpha);
        Assert.Equal(2, Assert.Single(config.AlphaPattern, kv => kv.Key == two.Key).Value);
        var loaded = Load(baseState, outDir);
        var ranks = loaded.AdapterLayers().ToDictionary(l => l.Name, l => ((LoraLayer)l.Layer).RankOf("default"));
        Assert.Equal(2, ranks[two.Key]);
        Assert.Equal(4, ranks.Values.Count(r => r == 1));
        // The unit went to the module whose second singular value is the largest (among those that fit).
        var winner = compressed.Modules.Single(m => m.TargetRank == 2);
        Assert.All(compressed.Modules, m => Assert.True(m.SingularValues[1] <= winner.SingularValues[1]));
    }

    [Fact]
    public void Rank_above_the_source_rank_is_an_error_naming_the_module()
    {
        var (_, _, folder) = SavedAdapter(new LoraConfig { Rank = 2, TargetModules = s_targets });
        var e = Assert.Throws<PeftException>(() => LoraCompression.CompressFolder(folder, new CompressionOptions { Rank = 3 }));
        Assert.Contains("--rank 3", e.Message);
        Assert.Contains("rank 2", e.Message);
        Assert.Contains("'blocks.0.q_proj'", e.Message);
    }

    [Fact]
    public void Another_method_without_its_base_model_is_an_error_naming_the_method()
    {
        var (_, _, folder) = SavedAdapter(new LoHaConfig { Rank = 2, Alpha = 2, TargetModules = s_targets });
        var e = Assert.Throws<PeftException>(() => LoraCompression.CompressFolder(folder, new CompressionOptions { Rank = 1 }));
        Assert.Contains("LOHA", e.Message);
        Assert.Contains("base model", e.Message);
    }

    [Fact]
    public void Dora_without_its_base_model_is_an_error_naming_use_dora()
    {
        var (_, _, folder) = SavedAdapter(new LoraConfig { Rank = 2, UseDora = true, TargetModules = s_targets });
        var e = Assert.Throws<PeftException>(() => LoraCompression.CompressFolder(folder, new CompressionOptions { Rank = 1 }));
        Assert.Contains("use_dora", e.Message);
        Assert.Contains("base model", e.Message);
    }

    [Fact]
    public void Options_need_a_rank_or_a_budget()
    {
        var e = Assert.Throws<ConfigException>(() => new CompressionOptions().Validate());
        Assert.Contains("--rank", e.Message);
    }
}
