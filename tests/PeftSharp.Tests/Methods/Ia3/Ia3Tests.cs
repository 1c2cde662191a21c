using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Ia3;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Ia3;

/// <summary>
/// (IA)³ as PEFT's <c>ia3/layer.py</c> defines it: <c>y = l ⊙ (W x + b)</c>, or <c>y = W (l ⊙ x) + b</c> on a feed-forward
/// module; scales of several active adapters multiply; merging multiplies W's rows (columns) and, without feed-forward,
/// the bias. References are written from those formulas with plain tensor arithmetic.
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class Ia3Tests
{
    private static Ia3Config Config(string[] targets, params string[] feedforward) => new()
    {
        TargetModules = TargetModules.Of(targets),
        FeedforwardModules = TargetModules.Of(feedforward),
    };

    private static nn.Module<Tensor, Tensor> Net()
    {
        var conv = new Conv1D(6, 5);
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.randn(6, 5));
            conv.bias.copy_(torch.randn(5));
        }
        return nn.Sequential(("up", nn.Linear(4, 6)), ("act", nn.Tanh()), ("c_proj", conv), ("head", nn.Linear(5, 3)));
    }

    private static Tensor P(nn.Module net, string name) => net.named_parameters().Single(p => p.name == name).parameter.detach();

    private static void Randomise(PeftModel peft, string adapter = "default")
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.AdapterStateDict(adapter).Values)
        {
            p.copy_(1 + torch.randn_like(p) * 0.5);
        }
    }

    // up: output scaled; c_proj (Conv1D, weight [in, out]): input scaled; head: output scaled.
    private static Tensor Reference(nn.Module net, Tensor x, Func<string, Tensor> l)
    {
        var h = (x.matmul(P(net, "up.base_layer.weight").t()) + P(net, "up.base_layer.bias")) * l("up");
        h = h.tanh();
        h = (h * l("c_proj")).matmul(P(net, "c_proj.base_layer.weight")) + P(net, "c_proj.base_layer.bias");
        return (h.matmul(P(net, "head.base_layer.weight").t()) + P(net, "head.base_layer.bias")) * l("head");
    }

    [Fact]
    public void Output_equals_base_at_init_exactly_and_the_parameter_count_is_the_formula()
    {
        torch.manual_seed(31);
        var net = Net();
        var x = torch.randn(7, 4);
        using var before = net.call(x);
        var peft = PeftModel.Create(net, Config(["up", "c_proj", "head"], "c_proj"));
        Assert.True(Weights.Exact(before, net.call(x)));
        // d_out for up (6) and head (3), d_in for the feed-forward c_proj (6).
        Assert.Equal(6 + 6 + 3, peft.ParameterCounts().Trainable);
        Assert.Equal([1L, 6], P(net, "c_proj.ia3_l.default").shape);
        Assert.Equal([6L, 1], P(net, "up.ia3_l.default").shape);
    }

    [Fact]
    public void Forward_scales_outputs_and_feedforward_inputs_and_active_adapters_multiply()
    {
        torch.manual_seed(32);
        var net = Net();
        var x = torch.randn(7, 4);
        var peft = PeftModel.Create(net, Config(["up", "c_proj", "head"], "c_proj"), "a");
        peft.AddAdapter("b", Config(["up", "c_proj", "head"], "c_proj"));
        Randomise(peft, "a");
        Randomise(peft, "b");
        using var _ = torch.no_grad();
        peft.SetActiveAdapters("a");
        Assert.True(Weights.MaxAbsDiff(net.call(x), Reference(net, x, m => P(net, $"{m}.ia3_l.a").flatten())) <= 1e-5);
        peft.SetActiveAdapters("a", "b");
        var both = Reference(net, x, m => P(net, $"{m}.ia3_l.a").flatten() * P(net, $"{m}.ia3_l.b").flatten());
        Assert.True(Weights.MaxAbsDiff(net.call(x), both) <= 1e-5);
    }

    [Fact]
    public void Merge_scales_rows_columns_and_non_feedforward_bias_equals_unmerged_and_unmerge_restores()
    {
        torch.manual_seed(33);
        var net = Net();
        var x = torch.randn(7, 4);
        var peft = PeftModel.Create(net, Config(["up", "c_proj", "head"], "c_proj"));
        Randomise(peft);
        var original = net.named_parameters().Where(p => p.name.Contains("base_layer")).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var unmerged = net.call(x);
        var lUp = P(net, "up.ia3_l.default").clone();
        var lFf = P(net, "c_proj.ia3_l.default").clone();

        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(net.call(x), unmerged) <= 1e-5);
        Assert.True(Weights.MaxAbsDiff(P(net, "up.base_layer.weight"), original["up.base_layer.weight"] * lUp) <= 1e-6);
        Assert.True(Weights.MaxAbsDiff(P(net, "up.base_layer.bias"), original["up.base_layer.bias"] * lUp.flatten()) <= 1e-6);
        // Conv1D stores [in, out]: the feed-forward scale multiplies its rows, and its bias is left alone.
        Assert.True(Weights.MaxAbsDiff(P(net, "c_proj.base_layer.weight"), original["c_proj.base_layer.weight"] * lFf.t()) <= 1e-6);
        Assert.True(Weights.Exact(P(net, "c_proj.base_layer.bias"), original["c_proj.base_layer.bias"]));

        peft.Unmerge();
        foreach (var (name, w) in original)
        {
            Assert.True(Weights.MaxAbsDiff(P(net, name), w) <= 1e-5 * Math.Max(1, w.abs().max().item<float>()), name);
        }
    }

    [Fact]
    public void Mixed_batch_rows_equal_each_row_alone()
    {
        torch.manual_seed(34);
        var net = Net();
        net.eval();
        var peft = PeftModel.Create(net, Config(["up", "c_proj", "head"], "c_proj"), "a");
        peft.AddAdapter("b", Config(["up", "c_proj", "head"], "c_proj"));
        Randomise(peft, "a");
        Randomise(peft, "b");
        using var _ = torch.no_grad();
        var x = torch.randn(4, 4);
        string[] rows = ["b", AdapterRouting.BaseName, "a", "b"];
        var mixed = RowByRow.Routed(peft, net, x, rows);
        Assert.True(Weights.MaxAbsDiff(mixed, RowByRow.Run(peft, net, x, rows)) <= 1e-5);
    }

    [Fact]
    public void Add_weighted_adapter_refuses_ia3_adapters_with_a_clear_error()
    {
        var net = Net();
        var peft = PeftModel.Create(net, Config(["up", "head"]), "a");
        peft.AddAdapter("b", Config(["up", "head"]));
        var e = Assert.ThrowsAny<PeftException>(() =>
            PeftSharp.Merging.AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], [0.5, 0.5], "ab", new PeftSharp.Merging.CombinationOptions()));
        Assert.Contains("IA3", e.Message);
    }

    [Fact]
    public void Feedforward_modules_outside_target_modules_are_refused()
    {
        var e = Assert.Throws<ConfigException>(() => Config(["up"], "c_proj").Validate());
        Assert.Contains("subset", e.Message);
    }

    [Fact]
    public void A_peft_format_folder_loads_into_llama_as_the_formula_says_and_round_trips_bit_exactly()
    {
        torch.manual_seed(35);
        var fixture = SharedPaths.Fixture("bases", "llama");
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var reference = AutoModel.FromPretrained(fixture);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, w) in reference.named_parameters().ToList())
        {
            var module = name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^".weight".Length] : null;
            if (module is null || !(module.EndsWith("k_proj", StringComparison.Ordinal) || module.EndsWith("v_proj", StringComparison.Ordinal) || module.EndsWith("down_proj", StringComparison.Ordinal)))
            {
                continue;
            }
            var ff = module.EndsWith("down_proj", StringComparison.Ordinal);
            var l = 1 + torch.randn(ff ? [1, w.shape[1]] : [w.shape[0], 1]) * 0.3;
            tensors[$"base_model.model.{module}.ia3_l"] = l;
            using var _ = torch.no_grad();
            w.mul_(l);  // [out, 1] scales rows, [1, in] columns: the formula on the plain model's own weights
        }
        Assert.Equal(3 * 2, tensors.Count);
        var config = new JsonObject
        {
            ["peft_type"] = "IA3", ["task_type"] = "CAUSAL_LM", ["init_ia3_weights"] = true, ["fan_in_fan_out"] = false,
            ["target_modules"] = new JsonArray("k_proj", "v_proj", "down_proj"), ["feedforward_modules"] = new JsonArray("down_proj"),
        };
        using var _g = torch.no_grad();
        PeftFolderCheck.LoadsAsExpectedAndRoundTrips(fixture, tensors, config, reference.Forward(ids, mask).Logits);
    }
}
