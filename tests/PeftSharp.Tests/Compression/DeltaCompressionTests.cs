using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.Mole;
using PeftSharp.Methods.Vera;
using PeftSharp.Tests.Methods;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Compression;

/// <summary>
/// Compression of adapters of other methods into a PEFT LoRA through their dense ΔW on the base model: exact at a rank
/// of at least rank(ΔW), the Eckart–Young tail below it (against spectra computed here, not by the code under test), the
/// budget split by singular-value energy, every mergeable method of the contract table, the error for MoLE, and no leaks.
/// </summary>
public sealed class DeltaCompressionTests : IDisposable
{
    private readonly ToySources _sources = new();

    public void Dispose() => _sources.Dispose();

    private static readonly TargetModules s_targets = TargetModules.Of("q_proj", "v_proj", "left", "proj");

    public static TheoryData<string> LowRankMethods() => new() { "loha", "vera" };

    private static AdapterConfig Config(string method) => method switch
    {
        // ΔW = (W1a·W1b) ⊙ (W2a·W2b)·α/r has rank ≤ r² = 4.
        "loha" => new LoHaConfig { Rank = 2, Alpha = 3, TargetModules = s_targets },
        // ΔW = diag(λ_b)·B·diag(λ_d)·A has rank ≤ r = 4.
        "vera" => new VeraConfig { Rank = 4, TargetModules = s_targets },
        _ => throw new ArgumentException(method),
    };

    // Compresses on a fresh base and checks that the base is handed back as it was.
    private static CompressedAdapter CompressOnBase(Dictionary<string, Tensor> baseState, string folder, CompressionOptions options)
    {
        var model = ToySources.Fresh(baseState);
        model.lm_head.parameters().First().requires_grad = false;
        var compressed = LoraCompression.CompressFolder(folder, options, model);
        AssertUntouched(model, baseState);
        return compressed;
    }

    // Same modules, names, values and requires_grad (all trainable but the frozen lm_head.weight) as before compression.
    private static void AssertUntouched(NestedNet model, Dictionary<string, Tensor> baseState)
    {
        Assert.DoesNotContain(model.modules(), m => m is AdapterLayer or ModulesToSaveWrapper);
        Assert.Equal(baseState.Keys.Order(), model.named_parameters().Select(p => p.name).Order());
        Assert.All(model.named_parameters(), p => Assert.True(Weights.Exact(p.parameter, baseState[p.name]), $"{p.name} changed"));
        Assert.Equal(["lm_head.weight"], model.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.name));
    }

    private string SaveCompressed(CompressedAdapter compressed, string name)
    {
        var dir = Path.Combine(_sources.Root, name);
        compressed.Save(dir);
        return dir;
    }

    private static double Scale(Tensor reference) => Math.Max(1, reference.abs().max().to(ScalarType.Float64).item<double>());

    [Theory]
    [MemberData(nameof(LowRankMethods))]
    public void At_a_rank_of_at_least_rank_dW_the_lora_reproduces_the_merged_weights_and_output_within_1e5(string method)
    {
        var (baseState, source, folder) = _sources.Save(Config(method));
        var x = torch.randn(5, 4);
        using var expected = ((NestedNet)source.Model).call(x);
        var expectedWeights = ToySources.MergedParameters(source);

        using var compressed = CompressOnBase(baseState, folder, new CompressionOptions { Rank = 4 });
        var outDir = SaveCompressed(compressed, "out");
        var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(outDir));
        Assert.Equal((4, 4.0), (config.Rank, config.Alpha)); // scale 1
        Assert.Empty(config.RankPattern);

        var loaded = ToySources.Load(baseState, outDir);
        Assert.All(loaded.AdapterLayers(), l => Assert.IsType<LoraLayer>(l.Layer));
        using var got = ((NestedNet)loaded.Model).call(x);
        Assert.True(Weights.MaxAbsDiff(got, expected) <= 1e-5 * Scale(expected), $"{method}: output differs by {Weights.MaxAbsDiff(got, expected)}");
        var gotWeights = ToySources.MergedParameters(loaded);
        foreach (var (name, w) in expectedWeights)
        {
            Assert.True(Weights.MaxAbsDiff(gotWeights[name], w) <= 1e-5, $"{method}: merged {name} differs by {Weights.MaxAbsDiff(gotWeights[name], w)}");
        }
    }

    // ΔW of every LoHa module from the saved factors (PEFT's formula), in float64.
    private static Dictionary<string, Tensor> LohaDeltas(string folder, double scale)
    {
        using var file = PeftAdapterFiles.OpenWeights(folder);
        Tensor Read(string key) => file.Read(key).to(ScalarType.Float64);
        return file.Entries.Select(e => e.Name).Where(n => n.EndsWith(".hada_w1_a", StringComparison.Ordinal))
            .Select(n => n[PeftModel.NamePrefix.Length..^".hada_w1_a".Length])
            .ToDictionary(m => m, m =>
            {
                var p = PeftModel.NamePrefix + m + ".hada_";
                return Read(p + "w1_a").matmul(Read(p + "w1_b")) * Read(p + "w2_a").matmul(Read(p + "w2_b")) * scale;
            });
    }

    // ΔW of every adapted module as the merge applies it: merged weight − base weight, in float64.
    private static Dictionary<string, Tensor> MergedDeltas(PeftModel source, Dictionary<string, Tensor> baseState)
    {
        var modules = source.AdapterLayers().Select(l => l.Name).ToList();
        var merged = ToySources.MergedParameters(source);
        return modules.ToDictionary(m => m, m => (merged[m + ".weight"] - baseState[m + ".weight"]).to(ScalarType.Float64));
    }

    [Theory]
    [MemberData(nameof(LowRankMethods))]
    public void Below_rank_dW_each_module_error_is_the_tail_of_the_independent_spectrum(string method)
    {
        const int k = 2;
        var (baseState, source, folder) = _sources.Save(Config(method));
        var deltas = method == "loha" ? LohaDeltas(folder, 3.0 / 2) : MergedDeltas(source, baseState);
        using var compressed = CompressOnBase(baseState, folder, new CompressionOptions { Rank = k });
        var outDir = SaveCompressed(compressed, "tail");
        var config = (LoraConfig)PeftAdapterFiles.ReadConfig(outDir);
        using var file = PeftAdapterFiles.OpenWeights(outDir);
        Assert.Equal(6, deltas.Count);
        foreach (var (module, delta) in deltas)
        {
            var sigma = torch.linalg.svdvals(delta).data<double>().ToArray();
            var tail = Math.Sqrt(sigma.Skip(k).Sum(s => s * s));
            Assert.True(tail > 1e-2 * sigma[0], $"{module}: the truncation must drop part of ΔW");
            var a = file.Read(PeftModel.NamePrefix + module + ".lora_A.weight").to(ScalarType.Float64);
            var b = file.Read(PeftModel.NamePrefix + module + ".lora_B.weight").to(ScalarType.Float64);
            Assert.Equal(k, a.shape[0]);
            var error = (delta - b.matmul(a) * ((LoraConfig)config.ForModule(module)).Scaling).norm().item<double>();
            Assert.True(Math.Abs(error - tail) <= 1e-5 * sigma[0], $"{method} {module}: ‖ΔW − ΔW'‖ = {error}, tail = {tail}");
            Assert.Equal(tail, compressed.Modules.Single(m => m.Module == module).Error, 1e-5 * sigma[0]);
        }
    }

    [Fact]
    public void Budget_units_go_to_the_largest_remaining_singular_values_of_a_loha_adapter()
    {
        // Five 6×6 modules, each rank unit costing 12: rank 1 everywhere is 60 and 108 buys four more units. Greedy by σ²
        // then takes the four largest of the pooled σ₂, σ₃, σ₄ (each module's σ descend; LoHa r = 2 has rank ≤ 4).
        var config = new LoHaConfig { Rank = 2, Alpha = 2, TargetModules = TargetModules.Of("q_proj", "v_proj", "left") };
        var (baseState, _, folder) = _sources.Save(config, seed: 3);
        var spectra = LohaDeltas(folder, 1).ToDictionary(kv => kv.Key, kv => torch.linalg.svdvals(kv.Value).data<double>().ToArray());
        var bought = spectra.SelectMany(kv => kv.Value.Skip(1).Take(3).Select(s => (Module: kv.Key, Sigma: s))).OrderByDescending(u => u.Sigma).Take(4).ToList();
        var expected = spectra.Keys.ToDictionary(m => m, m => 1 + bought.Count(u => u.Module == m));

        using var compressed = CompressOnBase(baseState, folder, new CompressionOptions { Budget = 108 });
        Assert.True(compressed.Parameters <= 108);
        var outDir = SaveCompressed(compressed, "budget");
        var loaded = ToySources.Load(baseState, outDir);
        var ranks = loaded.AdapterLayers().ToDictionary(l => l.Name, l => ((LoraLayer)l.Layer).RankOf("default"));
        Assert.Equal(expected.OrderBy(kv => kv.Key), ranks.OrderBy(kv => kv.Key));
    }

    public static TheoryData<string> MergeableMethods()
    {
        var d = new TheoryData<string>();
        foreach (var c in MethodContractTests.Contracts.Where(c => c.Mergeable))
        {
            d.Add(c.Name);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(MergeableMethods))]
    public void Every_mergeable_method_at_its_numerical_rank_becomes_a_lora_with_the_same_merged_model(string name)
    {
        var contract = MethodContractTests.Contracts.Single(c => c.Name == name);
        var (baseState, source, folder) = _sources.Save(contract.Config(s_targets), std: 0.2);
        var x = torch.randn(5, 4);
        using var expected = ((NestedNet)source.Model).call(x);
        var expectedWeights = ToySources.MergedParameters(source);

        // A budget that buys every singular value above the numerical-rank tolerance.
        var options = new CompressionOptions { Budget = long.MaxValue / 4 };
        using var compressed = LoraCompression.NeedsBaseModel(PeftAdapterFiles.ReadConfig(folder))
            ? CompressOnBase(baseState, folder, options)
            : LoraCompression.CompressFolder(folder, options);
        var outDir = SaveCompressed(compressed, "all");
        Assert.Equal("LORA", PeftAdapterFiles.ReadConfigJson(outDir).PeftType);
        var loaded = ToySources.Load(baseState, outDir);
        using var got = ((NestedNet)loaded.Model).call(x);
        Assert.True(Weights.MaxAbsDiff(got, expected) <= 1e-5 * Scale(expected), $"{name}: output differs by {Weights.MaxAbsDiff(got, expected)}");
        var gotWeights = ToySources.MergedParameters(loaded);
        foreach (var (p, w) in expectedWeights)
        {
            Assert.True(Weights.MaxAbsDiff(gotWeights[p], w) <= 1e-5 * Scale(w), $"{name}: merged {p} differs by {Weights.MaxAbsDiff(gotWeights[p], w)}");
        }
    }

    [Fact]
    public void Mole_has_no_closed_form_update_so_the_error_names_it_and_the_base_is_untouched()
    {
        var config = new MoleConfig { Rank = 2, Alpha = 4, NumExperts = 3, ExpertModules = TargetModules.Of("v_proj"), TargetModules = s_targets };
        var (baseState, _, folder) = _sources.Save(config);
        var model = ToySources.Fresh(baseState);
        model.lm_head.parameters().First().requires_grad = false;
        var e = Assert.Throws<PeftException>(() => LoraCompression.CompressFolder(folder, new CompressionOptions { Rank = 1 }, model));
        Assert.Contains("MOLE", e.Message);
        Assert.Contains("no closed-form ΔW", e.Message);
        Assert.Contains(PeftAdapterFiles.WeightsFileName, e.Message);
        AssertUntouched(model, baseState);
    }

    [Fact]
    public void A_hydra_bias_change_is_carried_as_lora_only_biases()
    {
        // q_proj and left have biases, which Hydra's sequential branch changes when merged; v_proj has none.
        var config = new PeftSharp.Methods.Hydra.HydraConfig { Rank = 1, SequentialRank = 2, TargetModules = s_targets };
        var (baseState, source, folder) = _sources.Save(config);
        var expectedWeights = ToySources.MergedParameters(source);
        using var compressed = CompressOnBase(baseState, folder, new CompressionOptions { Budget = long.MaxValue / 4 });
        var outDir = SaveCompressed(compressed, "hydra");
        Assert.Equal("lora_only", ((LoraConfig)PeftAdapterFiles.ReadConfig(outDir)).Bias);
        using var file = PeftAdapterFiles.OpenWeights(outDir);
        foreach (var module in new[] { "blocks.0.q_proj", "blocks.1.q_proj", "branches.left", "stem.proj" })
        {
            using var bias = file.Read(PeftModel.NamePrefix + module + ".base_layer.bias");
            Assert.False(Weights.Exact(bias, baseState[module + ".bias"]), $"{module}: the merge changes this bias");
            Assert.True(Weights.MaxAbsDiff(bias, expectedWeights[module + ".bias"]) <= 1e-6, $"{module}: saved bias is not the merged one");
        }
        Assert.DoesNotContain(file.Entries, e => e.Name.Contains("v_proj.base_layer", StringComparison.Ordinal));
    }

    [Fact]
    public void Hundred_compressions_by_either_route_leak_no_tensors()
    {
        var targets = TargetModules.Of("q_proj", "v_proj", "proj");
        var (_, _, lora) = _sources.Save(new LoraConfig { Rank = 3, TargetModules = targets }, "lora");
        var (baseState, _, loha) = _sources.Save(new LoHaConfig { Rank = 2, TargetModules = targets, ModulesToSave = ["lm_head"] }, "loha");
        var model = ToySources.Fresh(baseState);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            var options = step % 2 == 0 ? new CompressionOptions { Rank = 2 } : new CompressionOptions { Budget = 60 };
            using (var compressed = step % 3 == 0 ? LoraCompression.CompressFolder(lora, options) : LoraCompression.CompressFolder(loha, options, model))
            {
                Assert.NotEmpty(compressed.Tensors);
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    // LoHa on NestedNet: ΔW of rank ≤ 4 per module; k = 1 with p = 1 keeps k + p below min(m, n), so the sketch is used.
    [Fact]
    public void Randomized_svd_reports_its_measured_error_and_writes_identical_bytes_with_the_same_seed()
    {
        var (baseState, _, folder) = _sources.Save(Config("loha"));
        var options = new CompressionOptions { Rank = 1, Svd = SvdAlgorithm.Randomized, Oversampling = 1, PowerIterations = 1, Seed = 4 };
        string Run(string name)
        {
            using var compressed = LoraCompression.CompressFolder(folder, options, ToySources.Fresh(baseState));
            Assert.All(compressed.Modules, m => Assert.NotNull(m.SquaredNorm));
            var dir = Path.Combine(_sources.Root, name);
            compressed.Save(dir);
            var lora = (LoraConfig)PeftAdapterFiles.ReadConfig(dir);
            using var file = PeftAdapterFiles.OpenWeights(dir);
            var merged = ToySources.MergedParameters(ToySources.Load(baseState, folder));
            foreach (var m in compressed.Modules)
            {
                var delta = (merged[m.Module + ".weight"] - baseState[m.Module + ".weight"]).to(ScalarType.Float64);
                var a = file.Read(PeftModel.NamePrefix + m.Module + ".lora_A.weight").to(ScalarType.Float64);
                var b = file.Read(PeftModel.NamePrefix + m.Module + ".lora_B.weight").to(ScalarType.Float64);
                var error = (delta - b.matmul(a) * ((LoraConfig)lora.ForModule(m.Module)).Scaling).norm().item<double>();
                var tail = FactoredSvd.TailNorm(torch.linalg.svdvals(delta).data<double>().ToArray(), 1);
                Assert.True(Math.Abs(error - m.Error) <= 1e-5 * Math.Max(1, error), $"{m.Module}: reported {m.Error}, measured {error}");
                Assert.True(error >= tail - 1e-6 && error <= 1.05 * tail, $"{m.Module}: error {error}, optimal {tail}");
            }
            return dir;
        }
        var first = File.ReadAllBytes(Path.Combine(Run("a"), "adapter_model.safetensors"));
        var second = File.ReadAllBytes(Path.Combine(Run("b"), "adapter_model.safetensors"));
        Assert.Equal(first, second);
    }
}
