using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Methods.Vera;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Vera;

/// <summary>VeRA: the hand-computed update, PEFT's init and projections, the saved names, and config errors.</summary>
public class VeraTests
{
    private static readonly string s_fixtureAdapter = SharedPaths.Fixture("cases", "llama-vera-qv", "adapter");

    // big: 4 → 3 and small: 3 → 2, so the shared projections are vera_A [r, 4], vera_B [3, r] and `small` uses slices.
    private static (nn.Module<Tensor, Tensor> Net, PeftModel Peft) TwoLayers(VeraConfig config) => Wrap(NewNet(), config);

    private static nn.Module<Tensor, Tensor> NewNet()
    {
        var net = nn.Sequential(("big", nn.Linear(4, 3)), ("small", nn.Linear(3, 2)));
        net.eval();
        return net;
    }

    private static (nn.Module<Tensor, Tensor> Net, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> net, VeraConfig config) =>
        (net, PeftModel.Create(net, config with { TargetModules = TargetModules.Of("big", "small") }));

    private static VeraLayer Layer(PeftModel peft, string name) => (VeraLayer)peft.AdapterLayers().Single(l => l.Name == name).Layer;

    private static Tensor T(float[] values, params long[] shape) => torch.tensor(values, shape);

    [Fact]
    public void Delta_weight_and_forward_match_the_hand_computed_update()
    {
        var (_, peft) = TwoLayers(new VeraConfig { Rank = 2 });
        var small = Layer(peft, "small");
        var tensors = small.AdapterTensors("default");
        using (torch.no_grad())
        {
            tensors["base_model.vera_A"].copy_(T([1, 2, 0, 5, 0, 1, -1, 7], 2, 4));
            tensors["base_model.vera_B"].copy_(T([1, 0, 2, 1, 9, 9], 3, 2));
            tensors["vera_lambda_d"].copy_(T([2, 3], 2));
            tensors["vera_lambda_b"].copy_(T([1, -1], 2));
        }
        // A_s = [[1,2,0],[0,1,-1]], B_s = [[1,0],[2,1]]; diag(λ_b) B_s diag(λ_d) A_s = [[2,4,0],[-4,-11,3]].
        using var delta = small.DeltaWeight("default")!;
        Assert.True(Weights.Exact(delta, T([2, 4, 0, -4, -11, 3], 2, 3)), delta.ToString(TorchSharp.TensorStringStyle.Julia));
        using var _ = torch.no_grad();
        var x = T([1, 1, 1], 1, 3);
        using var baseOut = small.Base.Module.call(x);
        using var adapted = small.call(x);
        Assert.True(Weights.MaxAbsDiff(adapted - baseOut, T([6, -12], 1, 2)) < 1e-5);
    }

    [Fact]
    public void Init_sets_lambda_b_to_zero_and_lambda_d_to_d_initial_and_shares_one_projection_pair()
    {
        var (_, peft) = TwoLayers(new VeraConfig { Rank = 5, DInitial = 0.25 });
        var big = Layer(peft, "big").AdapterTensors("default");
        var small = Layer(peft, "small").AdapterTensors("default");
        Assert.True(Weights.Exact(small["vera_lambda_b"], torch.zeros(2)));
        Assert.True(Weights.Exact(small["vera_lambda_d"], torch.full(5, 0.25f)));
        Assert.Equal([3L], big["vera_lambda_b"].shape);
        Assert.Same(big["base_model.vera_A"], small["base_model.vera_A"]);
        Assert.Same(big["base_model.vera_B"], small["base_model.vera_B"]);
        Assert.Equal([5L, 4L], small["base_model.vera_A"].shape);
        Assert.Equal([3L, 5L], small["base_model.vera_B"].shape);
        Assert.IsNotType<TorchSharp.Modules.Parameter>(small["base_model.vera_A"]);
        Assert.Equal((3 + 5) + (2 + 5), peft.ParameterCounts().Trainable);
    }

    [Fact]
    public void Without_init_weights_lambda_b_is_one_and_the_adapter_changes_the_output()
    {
        torch.manual_seed(3);
        var (net, peft) = TwoLayers(new VeraConfig { Rank = 2, InitWeights = false });
        Assert.True(Weights.Exact(Layer(peft, "small").AdapterTensors("default")["vera_lambda_b"], torch.ones(2)));
        using var _ = torch.no_grad();
        var x = torch.randn(2, 4);
        using var adapted = net.call(x);
        using (peft.DisableAdapters())
        {
            using var baseOut = net.call(x);
            Assert.False(adapted.allclose(baseOut));
        }
    }

    [Fact]
    public void Projections_are_kaiming_uniform_and_a_function_of_the_key()
    {
        var (_, p0) = TwoLayers(new VeraConfig { Rank = 16 });
        var (_, p0Again) = TwoLayers(new VeraConfig { Rank = 16 });
        var (_, p1) = TwoLayers(new VeraConfig { Rank = 16, ProjectionPrngKey = 1 });
        var a = p0.AdapterStateDict("default")["base_model.vera_A"];
        var b = p0.AdapterStateDict("default")["base_model.vera_B"];
        // Kaiming-uniform with gain √2: bound √(6 / fan_in); fan_in is d_in for A [r, d_in] and r for B [d_out, r].
        Assert.True(a.abs().max().item<float>() <= Math.Sqrt(6.0 / 4));
        Assert.True(b.abs().max().item<float>() <= Math.Sqrt(6.0 / 16));
        Assert.True(a.abs().max().item<float>() > 0.5 * Math.Sqrt(6.0 / 4));
        Assert.True(Weights.Exact(a, p0Again.AdapterStateDict("default")["base_model.vera_A"]));
        Assert.False(a.allclose(p1.AdapterStateDict("default")["base_model.vera_A"]));
    }

    [Fact]
    public void Fresh_adapter_on_the_fixture_base_has_PEFTs_names_shapes_and_projections()
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
        // libtorch's CPU generator is PyTorch's: the projections drawn from projection_prng_key = 0 are PEFT's, bit for bit.
        foreach (var key in new[] { "base_model.vera_A", "base_model.vera_B" })
        {
            using var saved = file.Read(key);
            Assert.True(Weights.Exact(ours[key], saved), $"{key} differs from PEFT's by {Weights.MaxAbsDiff(ours[key], saved)}");
        }
    }

    [Fact]
    public void Without_save_projection_the_file_holds_only_the_lambdas_and_reloads_identically()
    {
        torch.manual_seed(5);
        var net = NewNet();
        var fresh = NewNet();
        fresh.load_state_dict(net.state_dict());
        var (_, peft) = Wrap(net, new VeraConfig { Rank = 3, SaveProjection = false });
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.add_(torch.randn_like(p));
            }
        }
        var x = torch.randn(2, 4);
        using var expected = net.call(x);
        using var baseOut = fresh.call(x);
        Assert.False(expected.allclose(baseOut), "the randomised adapter must change the output");
        var dir = Directory.CreateTempSubdirectory("peftsharp-vera-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            using (var file = SafetensorsFile.Open(Path.Combine(dir, PeftAdapterFiles.WeightsFileName)))
            {
                Assert.All(file.Entries, e => Assert.Contains(".vera_lambda_", e.Name));
                Assert.Equal(4, file.Entries.Count);
            }
            PeftAdapterFiles.FromPretrained(fresh, dir);
            using var got = fresh.call(x);
            Assert.True(Weights.Exact(got, expected));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Loading_a_file_without_the_projections_its_config_promises_names_the_missing_key()
    {
        var (_, peft) = TwoLayers(new VeraConfig { Rank = 2, SaveProjection = false });
        var dir = Directory.CreateTempSubdirectory("peftsharp-vera-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var configPath = Path.Combine(dir, PeftAdapterFiles.ConfigFileName);
            File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"save_projection\": false", "\"save_projection\": true", StringComparison.Ordinal));
            var fresh = NewNet();
            var e = Assert.Throws<ModelMismatchException>(() => PeftAdapterFiles.FromPretrained(fresh, dir));
            Assert.Contains("base_model.vera_", e.Message);
            Assert.DoesNotContain(fresh.named_modules(), m => m.module is AdapterLayer);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Conv1D_target_merges_the_transposed_update()
    {
        torch.manual_seed(6);
        var conv = new Conv1D(4, 6);
        using (torch.no_grad())
        {
            conv.weight.normal_();
            conv.bias.normal_();
        }
        var net = nn.Sequential(("c_attn", conv));
        var peft = PeftModel.Create(net, new VeraConfig { Rank = 3, FanInFanOut = true, TargetModules = TargetModules.Of("c_attn") });
        using var _ = torch.no_grad();
        foreach (var p in peft.TrainableParameters())
        {
            p.add_(torch.randn_like(p));
        }
        var x = torch.randn(2, 4);
        using var unmerged = net.call(x);
        peft.Merge();
        using var merged = net.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-5);
    }

    [Theory]
    [InlineData("\"r\": 0", "r must be > 0")]
    [InlineData("\"vera_dropout\": 1.5", "vera_dropout")]
    [InlineData("\"d_initial\": \"x\"", "d_initial")]
    [InlineData("\"bias\": \"vera_only\"", "bias \"vera_only\"")]
    [InlineData("\"bias\": \"some\"", "bias must be")]
    [InlineData("\"layers_pattern\": \"layers\"", "layers_to_transform")]
    public void Config_errors_name_the_key(string entry, string expected)
    {
        var json = $$"""{ "peft_type": "VERA", "target_modules": ["q_proj"], {{entry}} }""";
        var e = Assert.Throws<ConfigException>(() => MethodRegistry.Default.ParseConfig(json, "adapter_config.json"));
        Assert.Contains(expected, e.Message);
        Assert.Contains("adapter_config.json", e.Message);
    }

    [Fact]
    public void Config_defaults_are_PEFTs()
    {
        var c = (VeraConfig)MethodRegistry.Default.ParseConfig("""{ "peft_type": "VERA", "target_modules": ["q_proj"] }""", "adapter_config.json");
        Assert.Equal(256, c.Rank);
        Assert.Equal(0, c.ProjectionPrngKey);
        Assert.True(c.SaveProjection);
        Assert.Equal(0.1, c.DInitial);
        Assert.Equal(0.0, c.Dropout);
        Assert.True(c.InitWeights);
        Assert.Equal("none", c.Bias);
    }

    [Fact]
    public void In_memory_names_are_PEFTs_and_only_the_vectors_train()
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new VeraConfig { Rank = 2, TargetModules = TargetModules.Of("q_proj") });
        var trainable = net.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(["blocks.0.q_proj.vera_lambda_b.default", "blocks.0.q_proj.vera_lambda_d.default",
            "blocks.1.q_proj.vera_lambda_b.default", "blocks.1.q_proj.vera_lambda_d.default"], trainable);
        Assert.DoesNotContain(net.named_buffers(), b => b.name.Contains("vera", StringComparison.Ordinal));
        Assert.Contains(peft.NamedParameters(), p => p.Name == "base_model.model.blocks.0.q_proj.base_layer.weight");
    }

    [Fact]
    public void Hundred_forward_backward_steps_leak_no_tensors_and_both_vectors_get_gradients()
    {
        torch.manual_seed(7);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new VeraConfig { Rank = 2, Dropout = 0.1, InitWeights = false, TargetModules = TargetModules.AllLinearLayers });
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
