using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Methods.RandLora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.RandLora;

/// <summary>
/// RandLoRA: the reference's full-rank example (../shared/reference/methods_training.md §5) laid out as PEFT stores it,
/// both orientations, PEFT's init and bases, the saved names, and config errors.
/// </summary>
public class RandLoraTests
{
    private static readonly string s_fixtureAdapter = SharedPaths.Fixture("cases", "llama-randlora-qv", "adapter");

    private static (nn.Module<Tensor, Tensor> Net, PeftModel Peft, RandLoraLayer Layer) Single(long dIn, long dOut, RandLoraConfig config)
    {
        var net = nn.Sequential(("w", nn.Linear(dIn, dOut, hasBias: false)));
        net.eval();
        var peft = PeftModel.Create(net, config with { TargetModules = TargetModules.Of("w") });
        return (net, peft, (RandLoraLayer)peft.AdapterLayers().Single().Layer);
    }

    private static Tensor T(float[] values, params long[] shape) => torch.tensor(values, shape);

    [Fact]
    public void Reference_example_gives_its_full_rank_delta_with_PEFTs_base_pairing()
    {
        // Reference (paper form): ΔW = Σ_j B_j diag(λ_j) A diag(γ_j), d_in = d_out = 4, r = 2, n = 2, s = α/r = 1.
        float[][] aRef = [[1, 0, 1, 0], [0, 1, 0, 1]];
        float[][][] bRef = [[[1, 0], [0, 1], [1, 1], [0, 0]], [[0, 1], [1, 0], [0, 0], [1, -1]]]; // B_j[row][i]
        float[][] lambdaRef = [[1, 2], [0.5f, -1]]; // λ_j[i]
        float[][] gammaRef = [[1, 1, 1, 1], [1, 2, 3, 4]]; // γ_j[col]
        var (_, _, layer) = Single(4, 4, new RandLoraConfig { Rank = 2, Alpha = 2 });
        var t = layer.AdapterTensors("default");
        Assert.Equal([2L, 1L, 4L], t["randlora_A"].shape);
        Assert.Equal([4L, 2L, 2L], t["randlora_B"].shape);
        using (torch.no_grad())
        {
            for (var i = 0; i < 2; i++)
            {
                t["randlora_A"][i, 0].copy_(T(aRef[i], 4));
                for (var j = 0; j < 2; j++)
                {
                    t["randlora_lambda"][i, j].fill_(lambdaRef[j][i]);
                }
            }
            for (var j = 0; j < 2; j++)
            {
                t["randlora_gamma"][j].copy_(T(gammaRef[j], 4));
            }
            // PEFT pairs column p = jB·r + iB of B.flatten(1) with row p = iS·n + jS of the scaled A: so the B column
            // stored at (jB, iB) must be the paper's B_{jS}[:, iS] for the same p.
            for (var p = 0; p < 4; p++)
            {
                var (jB, iB) = (p / 2, p % 2);
                var (iS, jS) = (p / 2, p % 2);
                t["randlora_B"][.., jB, iB].copy_(T([.. bRef[jS].Select(row => row[iS])], 4));
            }
        }
        using var delta = layer.DeltaWeight("default")!;
        var expected = T([1, -2, 1, -4, 0.5f, 2, 1.5f, 2, 1, 2, 1, 2, 0.5f, 2, 1.5f, 4], 4, 4);
        Assert.True(Weights.Exact(delta, expected), delta.ToString(TorchSharp.TensorStringStyle.Julia));
        Assert.Equal(4, torch.linalg.matrix_rank(delta).item<long>());
        using var _ = torch.no_grad();
        var x = T([1, 0, 0, 0, 0, 1, 1, -1], 2, 4);
        using var adapted = layer.call(x);
        using var baseOut = layer.Base.Module.call(x);
        Assert.True(Weights.MaxAbsDiff(adapted - baseOut, x.matmul(expected.t())) < 1e-6);
    }

    [Theory]
    [InlineData(6, 4)]
    [InlineData(4, 6)]
    [InlineData(5, 5)]
    public void Delta_weight_is_out_by_in_in_both_orientations_and_equals_the_forward(long dIn, long dOut)
    {
        torch.manual_seed(11);
        var (net, peft, layer) = Single(dIn, dOut, new RandLoraConfig { Rank = 2, Alpha = 6 });
        using var _ = torch.no_grad();
        foreach (var p in peft.TrainableParameters())
        {
            p.add_(torch.randn_like(p));
        }
        var t = layer.AdapterTensors("default");
        long d = Math.Min(dIn, dOut), big = Math.Max(dIn, dOut), n = (d + 1) / 2;
        // PEFT's get_scaled_bases, element by element: U[:, j·r+i] = B[:, j, i]; S[i·n+j, :] = λ[i, j]·A[i, 0, :]⊙γ[j, :].
        var u = torch.zeros(big, n * 2);
        var s = torch.zeros(2 * n, d);
        for (var i = 0; i < 2; i++)
        {
            for (var j = 0; j < n; j++)
            {
                u[.., j * 2 + i] = t["randlora_B"][..(int)big, j, i];
                s[i * n + j] = t["randlora_lambda"][i, j] * t["randlora_A"][i, 0, ..(int)d] * t["randlora_gamma"][j];
            }
        }
        var expected = u.matmul(s) * 3.0;
        if (dIn > dOut)
        {
            expected = expected.t();
        }
        using var delta = layer.DeltaWeight("default")!;
        Assert.Equal([dOut, dIn], delta.shape);
        Assert.True(Weights.MaxAbsDiff(delta, expected) < 1e-5);
        var x = torch.randn(3, dIn);
        using var adapted = net.call(x);
        using var baseOut = layer.Base.Module.call(x);
        Assert.True(Weights.MaxAbsDiff(adapted - baseOut, x.matmul(delta.t())) < 1e-5);
    }

    [Fact]
    public void Init_zeroes_lambda_and_sets_gamma_to_one_over_max_of_its_shape()
    {
        // d = 4, r = 3: n = 2, λ [3, 2] = 0, γ [2, 4] = 1/4. Without init_weights: γ = 1/max(d_in, d_out) = 1/6, λ ~ N(0, 1).
        var (_, _, layer) = Single(6, 4, new RandLoraConfig { Rank = 3 });
        var t = layer.AdapterTensors("default");
        Assert.True(Weights.Exact(t["randlora_lambda"], torch.zeros(3, 2)));
        Assert.True(Weights.Exact(t["randlora_gamma"], torch.full(2, 4, 0.25f)));
        var (_, _, raw) = Single(6, 4, new RandLoraConfig { Rank = 3, InitWeights = false });
        var r = raw.AdapterTensors("default");
        Assert.True(Weights.Exact(r["randlora_gamma"], torch.full(2, 4, 1f / 6)));
        Assert.True(r["randlora_lambda"].abs().sum().item<float>() > 0);
        // n = 1 < d: γ = 1/d.
        var (_, _, wide) = Single(3, 5, new RandLoraConfig { Rank = 8 });
        Assert.True(Weights.Exact(wide.AdapterTensors("default")["randlora_gamma"], torch.full(1, 3, 1f / 3)));
    }

    [Fact]
    public void Bases_are_shared_sized_by_the_largest_target_and_each_layer_slices_its_own()
    {
        var net = nn.Sequential(("a", nn.Linear(8, 4)), ("b", nn.Linear(4, 6)));
        var peft = PeftModel.Create(net, new RandLoraConfig { Rank = 3, TargetModules = TargetModules.Of("a", "b") });
        var layers = peft.AdapterLayers().ToDictionary(l => l.Name, l => (RandLoraLayer)l.Layer);
        var ta = layers["a"].AdapterTensors("default");
        var tb = layers["b"].AdapterTensors("default");
        Assert.Same(ta["base_model.randlora_A"], tb["base_model.randlora_A"]);
        Assert.Same(ta["randlora_B"], tb["base_model.randlora_B"]);
        // Largest (out, in) = (6, 8): D = 8, d = 6, n = ⌈6/3⌉ = 2.
        Assert.Equal([3L, 1L, 6L], ta["base_model.randlora_A"].shape);
        Assert.Equal([8L, 2L, 3L], ta["base_model.randlora_B"].shape);
        Assert.Equal([3L, 2L], ta["randlora_lambda"].shape);
        Assert.Equal([2L, 4L], ta["randlora_gamma"].shape);
        Assert.Equal([2L, 4L], tb["randlora_gamma"].shape);
    }

    [Fact]
    public void Dense_bases_have_unit_std_and_bf16_values()
    {
        var (_, peft, _) = Single(64, 48, new RandLoraConfig { Rank = 8 });
        foreach (var key in new[] { "base_model.randlora_A", "base_model.randlora_B" })
        {
            var basis = peft.AdapterStateDict("default")[key];
            Assert.Equal(1.0, basis.std().item<float>(), 2);
            Assert.True(Weights.Exact(basis, basis.to(ScalarType.BFloat16).to(ScalarType.Float32)), $"{key} is not bf16-valued");
        }
    }

    [Theory]
    [InlineData(false, 1.0 / 3)]
    [InlineData(true, 1.0 / 8)]
    public void Sparse_bases_are_ternary_with_PEFTs_density(bool verySparse, double density)
    {
        // d = 64: sparse P(±1) = 1/6 each; very_sparse P(±1) = 1/(2√64) = 1/16 each.
        var (_, peft, _) = Single(64, 64, new RandLoraConfig { Rank = 8, Sparse = !verySparse, VerySparse = verySparse });
        var b = peft.AdapterStateDict("default")["base_model.randlora_B"];
        var magnitude = b.abs().max().item<float>();
        var nonZero = b.ne(0);
        Assert.True(b.abs().masked_select(nonZero).eq(magnitude).all().item<bool>(), "non-zero entries are not all ±1/std");
        Assert.Equal(1.0, b.std().item<float>(), 4);
        var fraction = nonZero.to(ScalarType.Float32).mean().item<float>();
        Assert.InRange(fraction, density * 0.85, density * 1.15);
        Assert.InRange(b.gt(0).to(ScalarType.Float32).mean().item<float>(), density / 2 * 0.8, density / 2 * 1.2);
    }

    [Fact]
    public void Fresh_adapter_on_the_fixture_base_has_PEFTs_names_shapes_and_bases()
    {
        var config = PeftAdapterFiles.ReadConfig(s_fixtureAdapter);
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        var peft = PeftModel.Create(model, config);
        var ours = peft.AdapterStateDict("default");
        using var file = SafetensorsFile.Open(Path.Combine(s_fixtureAdapter, PeftAdapterFiles.WeightsFileName));
        Assert.Equal(file.Entries.Select(e => e.Name).Order(), ours.Keys.Order());
        foreach (var e in file.Entries)
        {
            Assert.Equal(e.Shape, ours[e.Name].shape);
        }
        // libtorch's CPU generator is PyTorch's: bf16 Kaiming draws from projection_prng_key = 0 equal PEFT's, bit for bit.
        foreach (var key in new[] { "base_model.randlora_A", "base_model.randlora_B" })
        {
            using var saved = file.Read(key);
            Assert.True(Weights.Exact(ours[key], saved), $"{key} differs from PEFT's by {Weights.MaxAbsDiff(ours[key], saved)}");
        }
    }

    [Theory]
    [InlineData("\"r\": -1", "r must be > 0")]
    [InlineData("\"randlora_alpha\": 0", "randlora_alpha must be > 0")]
    [InlineData("\"randlora_dropout\": 1", "randlora_dropout")]
    [InlineData("\"bias\": \"randlora_only\"", "bias \"randlora_only\"")]
    [InlineData("\"sparse\": 3", "sparse")]
    public void Config_errors_name_the_key(string entry, string expected)
    {
        var json = $$"""{ "peft_type": "RANDLORA", "target_modules": ["q_proj"], {{entry}} }""";
        var e = Assert.Throws<ConfigException>(() => MethodRegistry.Default.ParseConfig(json, "adapter_config.json"));
        Assert.Contains(expected, e.Message);
        Assert.Contains("adapter_config.json", e.Message);
    }

    [Fact]
    public void Config_defaults_are_PEFTs()
    {
        var c = (RandLoraConfig)MethodRegistry.Default.ParseConfig("""{ "peft_type": "RANDLORA", "target_modules": ["q_proj"] }""", "adapter_config.json");
        Assert.Equal(32, c.Rank);
        Assert.Equal(640, c.Alpha);
        Assert.Equal(20, c.Scaling);
        Assert.Equal(0, c.ProjectionPrngKey);
        Assert.True(c.SaveProjection);
        Assert.False(c.Sparse);
        Assert.False(c.VerySparse);
        Assert.True(c.InitWeights);
    }

    [Fact]
    public void In_memory_names_are_PEFTs_and_only_the_scalings_train()
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new RandLoraConfig { Rank = 2, TargetModules = TargetModules.Of("q_proj") });
        var trainable = net.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(["blocks.0.q_proj.randlora_lambda.default", "blocks.0.q_proj.randlora_gamma.default",
            "blocks.1.q_proj.randlora_lambda.default", "blocks.1.q_proj.randlora_gamma.default"], trainable);
        Assert.DoesNotContain(net.named_buffers(), b => b.name.Contains("randlora", StringComparison.Ordinal));
        Assert.Contains(peft.NamedParameters(), p => p.Name == "base_model.model.blocks.0.q_proj.base_layer.weight");
    }

    [Fact]
    public void Hundred_forward_backward_steps_leak_no_tensors_and_both_scalings_get_gradients()
    {
        torch.manual_seed(7);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new RandLoraConfig { Rank = 2, Alpha = 2, Dropout = 0.1, InitWeights = false, TargetModules = TargetModules.AllLinearLayers });
        var x = torch.randn(3, 4);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                var loss = net.call(x).pow(2).mean();
                loss.backward();
                if (step == 0)
                {
                    Assert.All(peft.TrainableParameters(), p => Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0));
                }
                foreach (var p in peft.TrainableParameters())
                {
                    p.grad?.zero_();
                }
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
