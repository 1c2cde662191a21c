using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Lora;

public class LoraPropertyTests
{
    private static LoraConfig Config(params string[] targets) => new() { Rank = 4, Alpha = 8, TargetModules = TargetModules.Of(targets) };

    private static void Randomise(PeftModel model, string adapter = "default", double std = 0.3)
    {
        using var _ = torch.no_grad();
        foreach (var p in model.AdapterStateDict(adapter).Values)
        {
            p.copy_(torch.randn_like(p) * std);
        }
    }

    private static Tensor Input() => torch.randn(3, 4);

    [Fact]
    public void Output_equals_base_at_init_exactly()
    {
        torch.manual_seed(1);
        var net = new NestedNet();
        var x = Input();
        using var before = net.call(x);
        var peft = PeftModel.Create(net, Config("q_proj", "v_proj", "proj", "left"));
        using var after = net.call(x);
        Assert.True(Weights.Exact(before, after), "LoRA with B = 0 must not change the output");
    }

    [Fact]
    public void Merged_forward_equals_unmerged_within_1e5_and_unmerge_restores_base()
    {
        torch.manual_seed(2);
        var net = new NestedNet();
        var x = Input();
        var peft = PeftModel.Create(net, Config("q_proj", "v_proj", "proj", "left", "right"));
        var baseWeights = net.named_parameters().Where(p => p.name.EndsWith("base_layer.weight")).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        Randomise(peft);
        using var unmerged = net.call(x);
        peft.Merge();
        using var merged = net.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5 * Math.Max(1, unmerged.abs().max().item<float>()));
        peft.Unmerge();
        foreach (var (name, p) in net.named_parameters().Where(p => p.name.EndsWith("base_layer.weight")))
        {
            var rel = (p - baseWeights[name]).norm().item<float>() / baseWeights[name].norm().item<float>();
            Assert.True(rel <= 1e-6, $"{name}: unmerge left relative error {rel}");
        }
    }

    [Fact]
    public void Disabled_adapter_gives_base_output_exactly_even_when_merged()
    {
        torch.manual_seed(3);
        var net = new NestedNet();
        var x = Input();
        using var baseOut = net.call(x);
        var peft = PeftModel.Create(net, Config("q_proj", "v_proj"));
        Randomise(peft);
        using var adapted = net.call(x);
        Assert.False(adapted.allclose(baseOut), "randomised adapter must change the output");
        using (peft.DisableAdapters())
        {
            using var disabled = net.call(x);
            Assert.True(Weights.Exact(disabled, baseOut));
        }
        using var again = net.call(x);
        Assert.True(Weights.Exact(again, adapted));
        peft.Merge();
        using (peft.DisableAdapters())
        {
            using var disabledAfterMerge = net.call(x);
            Assert.True(Weights.MaxAbsDiff(disabledAfterMerge, baseOut) <= 1e-6);
        }
    }

    [Fact]
    public void Unload_returns_the_plain_modules_and_merge_and_unload_keeps_the_update()
    {
        torch.manual_seed(4);
        var net = new NestedNet();
        var x = Input();
        var peft = PeftModel.Create(net, Config("q_proj", "v_proj", "proj"));
        Randomise(peft);
        using var adapted = net.call(x);
        var plain = peft.MergeAndUnload();
        Assert.DoesNotContain(plain.named_modules(), m => m.module is AdapterLayer);
        Assert.Equal(new NestedNet().named_parameters().Select(p => p.name), plain.named_parameters().Select(p => p.name));
        using var merged = ((nn.Module<Tensor, Tensor>)plain).call(x);
        Assert.True(Weights.MaxAbsDiff(merged, adapted) <= 1e-5);
    }

    [Fact]
    public void Scaling_is_alpha_over_r_or_alpha_over_sqrt_r_with_rslora()
    {
        Assert.Equal(2.0, new LoraConfig { Rank = 4, Alpha = 8 }.Scaling);
        Assert.Equal(4 / Math.Sqrt(2), new LoraConfig { Rank = 2, Alpha = 4, UseRsLora = true }.Scaling, 12);

        // The reference's merge example (§1): W0 = [[1,2],[3,4],[5,6]], A = I, B = [[1,0],[0,1],[1,1]], α = 4, r = 2 → s = 2.
        var lin = nn.Linear(2, 3, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.copy_(torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }, 3, 2));
        }
        var holder = nn.Sequential(("lin", lin));
        var peft = PeftModel.Create(holder, new LoraConfig { Rank = 2, Alpha = 4, TargetModules = TargetModules.Of("lin") });
        var t = peft.AdapterStateDict("default");
        using (torch.no_grad())
        {
            t["base_model.model.lin.lora_A.weight"].copy_(torch.eye(2));
            t["base_model.model.lin.lora_B.weight"].copy_(torch.tensor(new float[] { 1, 0, 0, 1, 1, 1 }, 3, 2));
        }
        using var y = holder.call(torch.tensor(new float[] { 1, -1 }, 1, 2));
        Assert.Equal(new float[] { 1, -3, -1 }, y.data<float>().ToArray());
        peft.Merge();
        Assert.Equal(new float[] { 3, 2, 3, 6, 7, 8 }, lin.weight!.data<float>().ToArray());
    }

    [Fact]
    public void Conv1D_fan_in_fan_out_merges_the_transposed_delta()
    {
        torch.manual_seed(5);
        var conv = new Conv1D(4, 6);
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.randn(4, 6));
        }
        var holder = nn.Sequential(("c_attn", conv));
        var x = torch.randn(2, 5, 4);
        var peft = PeftModel.Create(holder, new LoraConfig { Rank = 2, Alpha = 4, FanInFanOut = true, TargetModules = TargetModules.Of("c_attn") });
        Randomise(peft);
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new long[] { 2, 4 }, t["base_model.model.c_attn.lora_A.weight"].shape);
        Assert.Equal(new long[] { 6, 2 }, t["base_model.model.c_attn.lora_B.weight"].shape);
        using var unmerged = holder.call(x);
        var w0 = conv.weight.detach().clone();
        peft.Merge();
        var expected = w0 + 2.0 * t["base_model.model.c_attn.lora_B.weight"].matmul(t["base_model.model.c_attn.lora_A.weight"]).t();
        Assert.True(Weights.MaxAbsDiff(conv.weight, expected) <= 1e-6);
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5);
    }

    [Fact]
    public void Several_adapters_switch_and_each_gives_its_own_output()
    {
        torch.manual_seed(6);
        var net = new NestedNet();
        var x = Input();
        var peft = PeftModel.Create(net, Config("q_proj"));
        Randomise(peft, "default");
        using var first = net.call(x);
        peft.AddAdapter("second", Config("q_proj", "v_proj"));
        Randomise(peft, "second");
        Assert.Equal(["default"], peft.ActiveAdapters);
        using var stillFirst = net.call(x);
        Assert.True(Weights.Exact(stillFirst, first));
        peft.SetActiveAdapters("second");
        using var second = net.call(x);
        Assert.False(second.allclose(first));
        // Only the active adapter trains.
        Assert.All(peft.AdapterStateDict("second").Values, p => Assert.True(p.requires_grad));
        Assert.All(peft.AdapterStateDict("default").Values, p => Assert.False(p.requires_grad));
        peft.SetActiveAdapters("default", "second");
        using var both = net.call(x);
        using var baseOut = Disabled(peft, net, x);
        // With both active, the two deltas add up at the first adapted layer; outputs differ from either alone.
        Assert.False(both.allclose(first) || both.allclose(second));
        peft.DeleteAdapter("second");
        peft.SetActiveAdapters("default");
        using var afterDelete = net.call(x);
        Assert.True(Weights.Exact(afterDelete, first));
        Assert.DoesNotContain(net.named_parameters(), p => p.name.Contains(".second"));
        Assert.False(baseOut.allclose(first));
    }

    private static Tensor Disabled(PeftModel peft, nn.Module<Tensor, Tensor> net, Tensor x)
    {
        using (peft.DisableAdapters())
        {
            return net.call(x);
        }
    }

    [Fact]
    public void Parameter_counts_match_r_times_din_plus_dout()
    {
        var net = new NestedNet(d: 6);
        var total = net.parameters().Sum(p => p.numel());
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 3, TargetModules = TargetModules.Of("q_proj", "v_proj") });
        var (trainable, all) = peft.ParameterCounts();
        Assert.Equal(4 * 3 * (6 + 6), trainable);
        Assert.Equal(total + trainable, all);
        Assert.Equal($"trainable params: 144 || all params: {all:N0} || trainable%: {100.0 * 144 / all:F4}", peft.TrainableParametersSummary());
    }

    [Fact]
    public void Only_adapter_parameters_are_trainable_and_base_is_frozen()
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, Config("q_proj"));
        var trainable = net.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(["blocks.0.q_proj.lora_A.default.weight", "blocks.0.q_proj.lora_B.default.weight",
            "blocks.1.q_proj.lora_A.default.weight", "blocks.1.q_proj.lora_B.default.weight"], trainable);
        Assert.Contains(peft.NamedParameters(), p => p.Name == "base_model.model.blocks.0.q_proj.base_layer.weight");
    }

    [Fact]
    public void Hundred_forward_backward_steps_leak_no_tensors()
    {
        torch.manual_seed(7);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 2, Dropout = 0.1, TargetModules = TargetModules.AllLinearLayers });
        var x = torch.randn(3, 4);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                var loss = net.call(x).pow(2).mean();
                loss.backward();
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
