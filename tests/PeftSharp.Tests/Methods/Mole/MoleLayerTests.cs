using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Mole;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Mole;

/// <summary>MoLE's forward paths, routing, init, saved names and parameter count on a tiny Llama-named stack.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class MoleLayerTests
{
    internal static readonly TargetModules Targets = TargetModules.Of("q_proj", "gate_proj", "up_proj", "down_proj");

    internal static MoleConfig Config(string routing = MoleConfig.Sparse, int experts = 3, double weight = 0.01) => new()
    {
        Rank = 2,
        Alpha = 4,
        Dropout = 0,
        NumExperts = experts,
        Routing = routing,
        BalanceWeight = weight,
        TargetModules = Targets,
    };

    internal static void Randomise(PeftModel peft, double scale = 0.3)
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.TrainableParameters())
        {
            p.add_(torch.randn_like(p) * scale);
        }
    }

    /// <summary>
    /// The dense oracle: every expert of every projection runs on every token, and the routing (computed here from the
    /// saved router tensors) picks or weighs them. <paramref name="routings"/> gets each MLP's router probabilities.
    /// </summary>
    internal static Tensor Oracle(PeftModel peft, Tensor x, MoleConfig c, int layers, List<Tensor>? routings = null)
    {
        var tensors = peft.AdapterStateDict("default");
        var bases = peft.AdapterLayers().ToDictionary(l => l.Name, l => l.Layer.Base);
        var s = c.Alpha / c.Rank;
        Tensor T(string module, string key) => tensors[PeftModel.NamePrefix + module + "." + key];
        Tensor BaseOut(string module, Tensor input) => nn.functional.linear(input, bases[module].Weight, bases[module].Bias);
        var h = x;
        for (var i = 0; i < layers; i++)
        {
            var q = $"layers.{i}.self_attn.q_proj";
            h = h + BaseOut(q, h) + h.matmul(T(q, "lora_A.weight").t()).matmul(T(q, "lora_B.weight").t()) * s;
            var gate = $"layers.{i}.mlp.gate_proj";
            // The router's softmax runs in float32 (reference trap 4), whatever the model's dtype.
            var logits = h.matmul(T(gate, "router.weight").t()) + T(gate, "router.bias");
            var p = nn.functional.softmax(logits.to(ScalarType.Float32), -1).to(h.dtype);
            routings?.Add(p);
            var hard = nn.functional.one_hot(p.argmax(-1), c.NumExperts).to(p.dtype);
            var w = c.Routing switch
            {
                MoleConfig.Sparse => hard,
                MoleConfig.Switch => hard * p,
                _ => p,
            };
            Tensor Projection(string module, Tensor input)
            {
                var y = BaseOut(module, input);
                for (var k = 0; k < c.NumExperts; k++)
                {
                    var delta = input.matmul(T(module, $"experts.{k}.lora_A.weight").t()).matmul(T(module, $"experts.{k}.lora_B.weight").t()) * s;
                    y = y + w[.., .., k..(k + 1)] * delta;
                }
                return y;
            }
            var z = nn.functional.silu(Projection(gate, h)) * Projection($"layers.{i}.mlp.up_proj", h);
            h = h + Projection($"layers.{i}.mlp.down_proj", z);
        }
        return h;
    }

    [Theory]
    [InlineData(MoleConfig.Sparse)]
    [InlineData(MoleConfig.Switch)]
    [InlineData(MoleConfig.Dense)]
    public void Gather_scatter_forward_equals_the_dense_oracle_within_1e6(string routing)
    {
        // In float64, so that the comparison sees the routing and not float32 summation order (the router's softmax
        // still runs in float32, as the reference asks).
        torch.manual_seed(11);
        var net = new ToyMoleNet();
        net.to(ScalarType.Float64);
        net.eval();
        var config = Config(routing);
        var peft = PeftModel.Create(net, config);
        Randomise(peft);
        var x = torch.randn(3, 7, 6, dtype: ScalarType.Float64);
        using var _ = torch.no_grad();
        var got = net.call(x);
        var routings = new List<Tensor>();
        var expected = Oracle(peft, x, config, 2, routings);
        var diff = (got - expected).abs().max().item<double>();
        Assert.True(diff <= 1e-6, $"{routing}: max |Δ| = {diff}");
        // The check means something only if tokens really go to different experts and the experts differ from the base.
        Assert.All(routings, p => Assert.True(p.argmax(-1).unique().output.numel() >= 2, "every token went to one expert"));
        using (peft.DisableAdapters())
        {
            Assert.True((net.call(x) - got).abs().max().item<double>() > 1e-3);
        }
    }

    [Theory]
    [InlineData(MoleConfig.Sparse)]
    [InlineData(MoleConfig.Switch)]
    [InlineData(MoleConfig.Dense)]
    public void Every_routing_is_exactly_the_base_model_at_init(string routing)
    {
        torch.manual_seed(12);
        var net = new ToyMoleNet();
        net.eval();
        var x = torch.randn(2, 5, 6);
        using var before = net.call(x);
        var peft = PeftModel.Create(net, Config(routing));
        using var after = net.call(x);
        Assert.True(Weights.Exact(after, before));
        // The router is not zero (a zero router ties every logit and sends every token to expert 0).
        var router = peft.AdapterLayers().Select(l => l.Layer).OfType<MoleLayer>().First(l => l.OwnsRouter("default")).RouterOf("default")!;
        Assert.True(router.weight!.abs().sum().item<float>() > 0);
        Assert.True(router.bias!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Reference_example_routes_h_1_0_to_expert_0_with_p_0_8438()
    {
        // Reference §1 numeric test: K = 3, h = [1, 0], W_r = [[2,0],[0,1],[-1,0]], b_r = 0 → logits [2, 0, −1],
        // p = [0.8438, 0.1142, 0.0420], k* = 0.
        foreach (var routing in new[] { MoleConfig.Sparse, MoleConfig.Switch, MoleConfig.Dense })
        {
            torch.manual_seed(13);
            var net = new ToyMoleNet(d: 2, ff: 3, count: 1);
            net.eval();
            var config = Config(routing) with { TargetModules = TargetModules.Of("gate_proj", "up_proj", "down_proj") };
            var peft = PeftModel.Create(net, config);
            Randomise(peft);
            var gate = peft.AdapterLayers().Single(l => l.Name == "layers.0.mlp.gate_proj").Layer;
            var mole = (MoleLayer)gate;
            using var _ = torch.no_grad();
            mole.RouterOf("default")!.weight!.copy_(torch.tensor(new float[] { 2, 0, 0, 1, -1, 0 }).reshape(3, 2));
            mole.RouterOf("default")!.bias!.zero_();
            var h = torch.tensor(new float[] { 1, 0 }).reshape(1, 1, 2);
            var got = gate.call(h).reshape(-1);
            var experts = mole.ExpertsOf("default")!;
            var s = config.Alpha / config.Rank;
            Tensor Delta(int k) => experts[k].B.matmul(experts[k].A).matmul(torch.tensor(new float[] { 1, 0 })) * s;
            var p = new[] { 0.8438, 0.1142, 0.0420 };
            var baseOut = gate.Base.Weight[.., 0] + gate.Base.Bias!;
            var expected = routing switch
            {
                MoleConfig.Sparse => baseOut + Delta(0),
                MoleConfig.Switch => baseOut + Delta(0) * p[0],
                _ => baseOut + Delta(0) * p[0] + Delta(1) * p[1] + Delta(2) * p[2],
            };
            Assert.True(Weights.MaxAbsDiff(got, expected) <= 1e-4, $"{routing}: {Weights.MaxAbsDiff(got, expected)}");
            Assert.True(Delta(0).abs().max().item<float>() > 1e-2);
        }
    }

    [Fact]
    public void Saved_keys_are_the_documented_names_and_reload_is_bit_exact()
    {
        torch.manual_seed(14);
        var net = new ToyMoleNet(count: 1);
        net.eval();
        var baseState = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var peft = PeftModel.Create(net, Config(MoleConfig.Sparse, experts: 2));
        Randomise(peft);
        var expectedKeys = new List<string> { "layers.0.self_attn.q_proj.lora_A.weight", "layers.0.self_attn.q_proj.lora_B.weight", "layers.0.mlp.gate_proj.router.weight", "layers.0.mlp.gate_proj.router.bias" };
        foreach (var proj in new[] { "gate_proj", "up_proj", "down_proj" })
        {
            for (var k = 0; k < 2; k++)
            {
                expectedKeys.Add($"layers.0.mlp.{proj}.experts.{k}.lora_A.weight");
                expectedKeys.Add($"layers.0.mlp.{proj}.experts.{k}.lora_B.weight");
            }
        }
        var state = peft.AdapterStateDict("default");
        Assert.Equal(expectedKeys.Select(k => PeftModel.NamePrefix + k).Order(StringComparer.Ordinal), state.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([2, 6], state[PeftModel.NamePrefix + "layers.0.mlp.gate_proj.router.weight"].shape);
        Assert.Equal([2, 10], state[PeftModel.NamePrefix + "layers.0.mlp.down_proj.experts.1.lora_A.weight"].shape);
        // In memory the adapter name sits after the container, as PEFT's lora_A.default.weight.
        Assert.Contains(net.named_parameters(), p => p.name == "layers.0.mlp.up_proj.experts.default.1.lora_B.weight");
        Assert.Contains(net.named_parameters(), p => p.name == "layers.0.mlp.gate_proj.router.default.bias");

        var x = torch.randn(2, 4, 6);
        using var expected = net.call(x);
        var dir = Directory.CreateTempSubdirectory("peftsharp-mole-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var fresh = new ToyMoleNet(count: 1);
            using (torch.no_grad())
            {
                foreach (var (n, p) in fresh.named_parameters())
                {
                    p.copy_(baseState[n]);
                }
            }
            fresh.eval();
            var loaded = PeftAdapterFiles.FromPretrained(fresh, dir);
            using var got = fresh.call(x);
            Assert.True(Weights.Exact(got, expected));
            var config = (MoleConfig)loaded.Configs["default"];
            Assert.Equal(2, config.NumExperts);
            Assert.Equal(MoleConfig.DefaultExpertModules, config.ExpertModules.Pattern);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Trainable_count_is_K_experts_per_projection_plus_one_router_per_mlp()
    {
        var net = new ToyMoleNet(d: 6, ff: 10, count: 2);
        var peft = PeftModel.Create(net, Config(experts: 3));
        // Per layer: q r(6+6) = 24; gate, up 3·2·(6+10) = 96 each; down 3·2·(10+6) = 96; router 3·(6+1) = 21.
        Assert.Equal(2 * (24 + 96 * 3 + 21), peft.ParameterCounts().Trainable);
        var layers = peft.AdapterLayers().ToDictionary(l => l.Name, l => (MoleLayer)l.Layer);
        Assert.True(layers["layers.1.mlp.gate_proj"].OwnsRouter("default"));
        Assert.False(layers["layers.1.mlp.up_proj"].OwnsRouter("default"));
        Assert.Equal("layers.1", layers["layers.1.mlp.down_proj"].GroupOf("default"));
        Assert.False(layers["layers.1.self_attn.q_proj"].HasExperts("default"));
    }

    [Fact]
    public void Merging_is_refused_with_a_reason()
    {
        var peft = PeftModel.Create(new ToyMoleNet(), Config());
        var e = Assert.ThrowsAny<PeftException>(() => peft.Merge());
        Assert.Contains("cannot be merged", e.Message);
    }

    [Fact]
    public void Default_expert_modules_pick_the_mlp_projections_of_llama_gpt2_and_bert()
    {
        var m = new MoleConfig().ExpertModules;
        foreach (var name in new[] { "model.layers.3.mlp.gate_proj", "model.layers.3.mlp.up_proj", "model.layers.3.mlp.down_proj", "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj", "bert.encoder.layer.2.intermediate.dense", "bert.encoder.layer.2.output.dense" })
        {
            Assert.True(m.Matches(name), name);
        }
        foreach (var name in new[] { "model.layers.3.self_attn.o_proj", "transformer.h.0.attn.c_proj", "bert.encoder.layer.2.attention.output.dense", "bert.pooler.dense" })
        {
            Assert.False(m.Matches(name), name);
        }
        Assert.Equal("bert.encoder.layer.2", MoleConfig.GroupKey("bert.encoder.layer.2.output.dense"));
        Assert.Equal("model.layers.11", MoleConfig.GroupKey("model.layers.11.mlp.gate_proj"));
    }

    [Theory]
    [InlineData("num_experts", "0")]
    [InlineData("routing", "\"top2\"")]
    [InlineData("moe_balance_w", "-1")]
    [InlineData("r", "0")]
    [InlineData("lora_dropout", "1")]
    public void Bad_config_values_are_rejected_naming_the_key(string key, string value)
    {
        var json = $$"""{"peft_type": "MOLE", "target_modules": ["q_proj"], "{{key}}": {{value}}}""";
        var e = Assert.Throws<ConfigException>(() => MethodRegistry.Default.ParseConfig(json, "adapter_config.json"));
        Assert.Contains(key, e.Message);
    }
}
