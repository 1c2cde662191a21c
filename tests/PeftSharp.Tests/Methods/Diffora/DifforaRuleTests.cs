using PeftSharp.Core;
using PeftSharp.Methods.Diffora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Diffora;

/// <summary>The defining rules of DiffoRA with hand-computed numbers (reference §15): relaxation, top-K, config keys.</summary>
public class DifforaRuleTests
{
    /// <summary>One Linear, no bias: W0 = [[1,2],[3,4],[5,6]] (d_in 2, d_out 3).</summary>
    private sealed class OneLinear : nn.Module<Tensor, Tensor>
    {
        public nn.Module<Tensor, Tensor> proj;

        public OneLinear() : base(nameof(OneLinear))
        {
            proj = nn.Linear(2, 3, hasBias: false);
            using (torch.no_grad())
            {
                ((TorchSharp.Modules.Linear)proj).weight!.copy_(torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(3, 2));
            }
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => proj.call(x);
    }

    // A = I₂, B = [[1,0],[0,1],[1,1]], r = 2, α = 4 → s = 2; ω = ln 3 → γ = 0.75.
    private static (OneLinear Net, PeftModel Peft, DifforaLayer Layer) Hand()
    {
        var net = new OneLinear();
        var peft = PeftModel.Create(net, new DifforaConfig { Rank = 2, Alpha = 4, TargetModules = TargetModules.Of("proj") });
        var layer = (DifforaLayer)peft.AdapterLayers().Single().Layer;
        using (torch.no_grad())
        {
            layer.A("default").copy_(torch.eye(2));
            layer.B("default").copy_(torch.tensor(new float[] { 1, 0, 0, 1, 1, 1 }).reshape(3, 2));
            layer.Gate("default").fill_(Math.Log(3));
        }
        return (net, peft, layer);
    }

    [Fact]
    public void Relaxed_output_is_the_gate_weighted_sum_of_the_adapted_and_the_base_output()
    {
        var (net, _, layer) = Hand();
        using var _ = torch.no_grad();
        var x = torch.tensor(new float[] { 1, -1 }).reshape(1, 2);
        // W0 x = [-1,-1,-1]; (W0 + s B A) x = [-1,-1,-1] + 2·[1,-1,0] = [1,-3,-1]; 0.75·adapted + 0.25·base:
        var expected = new[] { 0.5f, -2.5f, -1f };
        Assert.Equal(0.75, layer.GateValue("default"), 6);
        var got = net.call(x).data<float>().ToArray();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(expected[i], got[i], 5);
        }
    }

    [Fact]
    public void Delta_weight_is_gate_times_scale_times_BA()
    {
        var (_, _, layer) = Hand();
        using var _ = torch.no_grad();
        var delta = layer.DeltaWeight("default")!.data<float>().ToArray();
        float[] expected = [1.5f, 0, 0, 1.5f, 1.5f, 1.5f];
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(expected[i], delta[i], 5);
        }
    }

    [Fact]
    public void Gate_gradient_is_the_adapter_branch_dotted_with_the_output_gradient_times_dsigmoid()
    {
        // d/dω Σ y = σ'(ω)·s·Σ (B A x) with σ' = γ(1 − γ) = 0.1875, s = 2, and for x = [1, 0]: B A x = [1, 0, 1] (sum 2).
        var (net, _, layer) = Hand();
        var x = torch.tensor(new float[] { 1, 0 }).reshape(1, 2);
        net.call(x).sum().backward();
        Assert.Equal(0.75 * 0.25 * 2 * 2, layer.Gate("default").grad!.item<float>(), 5);
    }

    [Fact]
    public void Top_k_on_gates_09_02_07_04_with_k_2_keeps_modules_0_and_2()
    {
        var candidates = new[] { 0.9, 0.2, 0.7, 0.4 }.Select((g, i) => new DifforaCandidate($"m{i}", g, 10)).ToList();
        var s = DifforaSelection.TopK(candidates, 0.5, "modules");
        Assert.Equal(["m0", "m2"], s.Selected);
    }

    [Fact]
    public void Module_budget_rounds_half_away_from_zero_and_keeps_at_least_one()
    {
        var five = Enumerable.Range(0, 5).Select(i => new DifforaCandidate($"m{i}", 0.1 * i, 10)).ToList();
        Assert.Equal(["m2", "m3", "m4"], DifforaSelection.TopK(five, 0.5, "modules").Selected);
        Assert.Equal(["m4"], DifforaSelection.TopK(five, 0.01, "modules").Selected);
    }

    [Fact]
    public void Equal_gates_keep_model_order()
    {
        var tied = Enumerable.Range(0, 4).Select(i => new DifforaCandidate($"m{i}", 0.5, 10)).ToList();
        Assert.Equal(["m0", "m1"], DifforaSelection.TopK(tied, 0.5, "modules").Selected);
    }

    [Fact]
    public void Parameter_budget_keeps_the_longest_prefix_of_the_ranking_that_fits()
    {
        // Budget 0.5 · 300 = 150: ranking m0 (100), m1 (50) = 150 fits; m2 would make 200.
        var a = new[] { new DifforaCandidate("m0", 0.9, 100), new DifforaCandidate("m1", 0.8, 50), new DifforaCandidate("m2", 0.7, 50), new DifforaCandidate("m3", 0.6, 100) };
        Assert.Equal(["m0", "m1"], DifforaSelection.TopK(a, 0.5, "parameters").Selected);
        // Budget 105: m0 fits, m1 (100) does not, and the rule stops there (m2 is not taken out of order).
        var b = new[] { new DifforaCandidate("m0", 0.9, 100), new DifforaCandidate("m1", 0.8, 100), new DifforaCandidate("m2", 0.7, 10) };
        Assert.Equal(["m0"], DifforaSelection.TopK(b, 0.5, "parameters").Selected);
    }

    [Theory]
    [InlineData("selection_ratio", """{"peft_type":"DIFFORA","target_modules":["q"],"selection_ratio":0}""")]
    [InlineData("selection_ratio", """{"peft_type":"DIFFORA","target_modules":["q"],"selection_ratio":1.5}""")]
    [InlineData("budget_unit", """{"peft_type":"DIFFORA","target_modules":["q"],"budget_unit":"flops"}""")]
    [InlineData("search_steps", """{"peft_type":"DIFFORA","target_modules":["q"],"search_steps":0}""")]
    [InlineData("arch_lr_scale", """{"peft_type":"DIFFORA","target_modules":["q"],"arch_lr_scale":-1}""")]
    [InlineData("init_lora_weights", """{"peft_type":"DIFFORA","target_modules":["q"],"init_lora_weights":"pissa"}""")]
    [InlineData("lora_alpha", """{"peft_type":"DIFFORA","target_modules":["q"],"lora_alpha":0}""")]
    [InlineData("r", """{"peft_type":"DIFFORA","target_modules":["q"],"r":0}""")]
    public void Bad_config_values_are_rejected_naming_the_key(string key, string json)
    {
        var e = Assert.Throws<ConfigException>(() => MethodRegistry.Default.ParseConfig(json, "adapter_config.json"));
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void Config_round_trips_with_its_keys_and_defaults()
    {
        var c = MethodRegistry.Default.ParseConfig("""{"peft_type":"DIFFORA","target_modules":["q"]}""", "x");
        var d = Assert.IsType<DifforaConfig>(c);
        Assert.Equal((8, 8.0, 0.5, "modules", 20, 10.0, 0.0), (d.Rank, d.Alpha, d.SelectionRatio, d.BudgetUnit, d.SearchSteps, d.ArchLearningRateScale, d.GateInit));
        var json = MethodRegistry.Default.SerializeConfig(d);
        Assert.Equal(json, MethodRegistry.Default.SerializeConfig(MethodRegistry.Default.ParseConfig(json, "again")));
        Assert.Contains("\"selection_ratio\": 0.5", json);
    }
}
