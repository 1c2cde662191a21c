using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Merging;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Lora;

/// <summary>
/// PEFT's <c>lora_bias</c>: lora_B gets a bias, the branch is <c>s·(B·A·x + b_B)</c> and merging adds <c>s·b_B</c> to the
/// base bias. The references below are written from those formulas with plain tensor arithmetic on the saved tensors.
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class LoraBiasTests
{
    private static LoraConfig Config(params string[] targets) =>
        new() { Rank = 3, Alpha = 5, LoraBias = true, TargetModules = TargetModules.Of(targets) };

    private static void Randomise(PeftModel peft, string adapter = "default")
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.AdapterStateDict(adapter).Values)
        {
            p.copy_(torch.randn_like(p) * 0.3);
        }
    }

    private static Tensor Param(nn.Module net, string name) => net.named_parameters().Single(p => p.name == name).parameter.detach();

    [Fact]
    public void Linear_forward_is_base_plus_scaled_branch_with_its_bias_and_zero_at_init()
    {
        torch.manual_seed(11);
        var net = nn.Sequential(("lin", nn.Linear(4, 6)));
        var x = torch.randn(5, 4);
        using var before = net.call(x);
        var peft = PeftModel.Create(net, Config("lin"));
        Assert.True(Weights.Exact(before, net.call(x)), "with init_lora_weights=true the bias starts at 0 and B = 0");
        Assert.Equal(0f, Param(net, "lin.lora_B.default.bias").abs().max().item<float>());

        Randomise(peft);
        var (w, b0) = (Param(net, "lin.base_layer.weight"), Param(net, "lin.base_layer.bias"));
        var (a, b, bb) = (Param(net, "lin.lora_A.default.weight"), Param(net, "lin.lora_B.default.weight"), Param(net, "lin.lora_B.default.bias"));
        var expected = x.matmul(w.t()) + b0 + (x.matmul(a.t()).matmul(b.t()) + bb) * (5.0 / 3);
        Assert.True(Weights.MaxAbsDiff(net.call(x), expected) <= 1e-5);
        Assert.Equal(3 * 4 + 6 * 3 + 6, peft.ParameterCounts().Trainable);
    }

    [Fact]
    public void Init_false_leaves_the_bias_at_the_layer_default_uniform_init()
    {
        torch.manual_seed(12);
        var net = nn.Sequential(("lin", nn.Linear(4, 6)));
        PeftModel.Create(net, Config("lin") with { InitLoraWeights = InitLoraWeights.Random });
        var bias = Param(net, "lin.lora_B.default.bias");
        var bound = 1 / Math.Sqrt(3);
        Assert.True(bias.abs().max().item<float>() > 0);
        Assert.True(bias.abs().max().item<float>() <= bound, "nn.Linear(r, out) bias is U(−1/√r, 1/√r)");
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("conv1d")]
    [InlineData("conv2d")]
    public void Merge_adds_the_scaled_bias_equals_unmerged_and_unmerge_restores(string kind)
    {
        torch.manual_seed(13);
        nn.Module<Tensor, Tensor> net;
        Tensor x;
        string target;
        switch (kind)
        {
            case "linear":
                net = nn.Sequential(("lin", nn.Linear(4, 6)));
                (x, target) = (torch.randn(5, 4), "lin");
                break;
            case "conv1d":
                var conv1d = new Conv1D(4, 6);
                using (torch.no_grad())
                {
                    conv1d.weight.copy_(torch.randn(4, 6));
                    conv1d.bias.copy_(torch.randn(6));
                }
                net = nn.Sequential(("c_attn", conv1d));
                (x, target) = (torch.randn(2, 5, 4), "c_attn");
                break;
            default:
                net = new ToyConvNet();
                (x, target) = (Weights.InputIds(), "conv");
                break;
        }
        net.eval();
        var peft = PeftModel.Create(net, Config(target) with { FanInFanOut = kind == "conv1d" });
        Randomise(peft);
        var prefix = kind == "conv2d" ? "conv" : target;
        var biasBefore = Param(net, $"{prefix}.base_layer.bias").clone();
        var weightBefore = Param(net, $"{prefix}.base_layer.weight").clone();
        var loraBias = Param(net, $"{prefix}.lora_B.default.bias").clone();
        using var unmerged = net.call(x);

        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(Param(net, $"{prefix}.base_layer.bias"), biasBefore + loraBias * (5.0 / 3)) <= 1e-6);
        Assert.True(Weights.MaxAbsDiff(net.call(x), unmerged) <= 1e-5 * Math.Max(1, unmerged.abs().max().item<float>()));

        peft.Unmerge();
        Assert.True(Weights.MaxAbsDiff(Param(net, $"{prefix}.base_layer.bias"), biasBefore) <= 1e-6);
        Assert.True(Weights.MaxAbsDiff(Param(net, $"{prefix}.base_layer.weight"), weightBefore) <= 1e-5);
    }

    [Fact]
    public void Merging_into_a_layer_without_bias_fails_and_leaves_the_weight_unchanged()
    {
        torch.manual_seed(14);
        var net = nn.Sequential(("lin", nn.Linear(4, 6, hasBias: false)));
        var peft = PeftModel.Create(net, Config("lin"));
        Randomise(peft);
        var x = torch.randn(5, 4);
        var (a, b, bb) = (Param(net, "lin.lora_A.default.weight"), Param(net, "lin.lora_B.default.weight"), Param(net, "lin.lora_B.default.bias"));
        var expected = x.matmul(Param(net, "lin.base_layer.weight").t()) + (x.matmul(a.t()).matmul(b.t()) + bb) * (5.0 / 3);
        Assert.True(Weights.MaxAbsDiff(net.call(x), expected) <= 1e-5, "the forward works without a base bias");
        var weight = Param(net, "lin.base_layer.weight").clone();

        var e = Assert.ThrowsAny<PeftException>(() => peft.Merge());
        Assert.Contains("lora_bias", e.Message);
        Assert.Contains("no bias", e.Message);
        Assert.True(Weights.Exact(weight, Param(net, "lin.base_layer.weight")));
    }

    [Fact]
    public void Config_and_target_restrictions_match_peft()
    {
        Assert.Throws<ConfigException>(() => (Config("lin") with { UseDora = true }).Validate());
        Assert.Throws<ConfigException>(() => (Config("lin") with { InitLoraWeights = InitLoraWeights.Gaussian }).Validate());
        var e = Assert.ThrowsAny<PeftException>(() => PeftModel.Create(new ToyConvNet(), Config("emb")));
        Assert.Contains("Embedding", e.Message);
    }

    [Fact]
    public void A_mixed_batch_with_a_lora_bias_adapter_equals_each_row_alone()
    {
        torch.manual_seed(15);
        var net = nn.Sequential(("lin", nn.Linear(4, 6)), ("act", nn.Tanh()), ("head", nn.Linear(6, 3)));
        net.eval();
        var peft = PeftModel.Create(net, Config("lin", "head"), "a");
        peft.AddAdapter("b", new LoraConfig { Rank = 2, Alpha = 2, TargetModules = TargetModules.Of("lin", "head") });
        Randomise(peft, "a");
        Randomise(peft, "b");
        using var _ = torch.no_grad();
        var x = torch.randn(4, 4);
        string[] rows = ["a", "b", AdapterRouting.BaseName, "a"];
        var mixed = RowByRow.Routed(peft, net, x, rows);
        Assert.True(Weights.MaxAbsDiff(mixed, RowByRow.Run(peft, net, x, rows)) <= 1e-5);
    }

    [Fact]
    public void Add_weighted_adapter_refuses_a_lora_bias_adapter()
    {
        var net = nn.Sequential(("lin", nn.Linear(4, 6)));
        var peft = PeftModel.Create(net, Config("lin"), "a");
        peft.AddAdapter("b", Config("lin"));
        var e = Assert.ThrowsAny<PeftException>(() =>
            AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], [0.5, 0.5], "ab", new CombinationOptions()));
        Assert.Contains("lora_bias", e.Message);
    }

    [Fact]
    public void A_peft_format_folder_with_lora_bias_loads_into_qwen2_as_its_formula_says_and_round_trips_bit_exactly()
    {
        torch.manual_seed(16);
        var fixture = SharedPaths.Fixture("bases", "qwen2");
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        const double Scale = 4.0 / 2;
        // The folder a Python PEFT LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], lora_bias=True) saves.
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var reference = AutoModel.FromPretrained(fixture);
        var qProjs = reference.named_parameters().Where(p => p.name.EndsWith("q_proj.weight", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(qProjs);
        foreach (var (name, w) in qProjs)
        {
            var module = name[..^".weight".Length];
            var (a, b, bias) = (torch.randn(2, w.shape[1]) * 0.2, torch.randn(w.shape[0], 2) * 0.2, torch.randn(w.shape[0]) * 0.2);
            tensors[$"base_model.model.{module}.lora_A.weight"] = a;
            tensors[$"base_model.model.{module}.lora_B.weight"] = b;
            tensors[$"base_model.model.{module}.lora_B.bias"] = bias;
            // The reference: the formula applied to the plain model's own parameters, no PeftSharp merge code.
            using var _ = torch.no_grad();
            w.add_(b.matmul(a) * Scale);
            Param(reference, module + ".bias").add_(bias * Scale);
        }
        var config = new JsonObject
        {
            ["peft_type"] = "LORA", ["r"] = 2, ["lora_alpha"] = 4, ["lora_dropout"] = 0.0, ["target_modules"] = new JsonArray("q_proj"),
            ["lora_bias"] = true, ["bias"] = "none", ["task_type"] = "CAUSAL_LM", ["init_lora_weights"] = true,
        };
        using var _g = torch.no_grad();
        PeftFolderCheck.LoadsAsExpectedAndRoundTrips(fixture, tensors, config, reference.Forward(ids, mask).Logits);
    }
}
