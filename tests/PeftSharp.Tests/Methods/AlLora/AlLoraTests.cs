using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.AlLora;
using PeftSharp.Tests.Support;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.AlLora;

/// <summary>
/// ALLoRA's gradient factor against the reference's hand values (methods_training.md §9), the hook that applies it per
/// row of lora_A and lora_B, the frozen-factor variant, and the adapter's s = 1 forward.
/// </summary>
public class AlLoraTests
{
    private static double[] Values(Tensor t) => t.to_type(ScalarType.Float64).data<double>().ToArray();

    [Fact]
    public void Squared_factor_is_eta_on_a_zero_row_and_one_over_sqrt_9_01_on_a_row_of_norm_3()
    {
        // η = 10: zero row → 1/√(0 + 0.01) = 10; ‖θ‖ = 3 → 1/√(9 + 0.01) = 0.333148 (reference §9).
        var theta = torch.tensor(new float[,] { { 0, 0, 0 }, { 1, 2, 2 } });
        var f = Values(AlLoraFactor.RowFactors(theta, eta: 10, squared: true));
        Assert.Equal(10.0, f[0], 5);
        Assert.Equal(0.333148, f[1], 6);
    }

    [Fact]
    public void Unsquared_factor_on_a_row_of_norm_3_is_0_576390()
    {
        var theta = torch.tensor(new float[,] { { 0, 3 } });
        Assert.Equal(0.576390, Values(AlLoraFactor.RowFactors(theta, eta: 10, squared: false))[0], 6);
    }

    [Fact]
    public void Gradient_row_is_scaled_by_its_own_factor()
    {
        // The reference's gradient [0.3, −0.6] on the row of norm 3 becomes [0.099944, −0.199889]; the zero row's ×10.
        var theta = torch.tensor(new float[,] { { 3, 0 }, { 0, 0 } });
        var grad = torch.tensor(new float[,] { { 0.3f, -0.6f }, { 0.1f, 0.2f } });
        AlLoraFactor.ScaleRows(grad, AlLoraFactor.RowFactors(theta, 10, squared: true));
        var g = Values(grad);
        Assert.Equal(0.099944, g[0], 5);
        Assert.Equal(-0.199889, g[1], 5);
        Assert.Equal(1.0, g[2], 5);
        Assert.Equal(2.0, g[3], 5);
    }

    private static (PeftModel Peft, AlLoraLayer Layer) OneLayer(AlLoraConfig config)
    {
        torch.manual_seed(5);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, config with { TargetModules = TargetModules.Of("proj") });
        var layer = (AlLoraLayer)peft.AdapterLayers().Single().Layer;
        return (peft, layer);
    }

    [Fact]
    public void PreStep_hook_scales_each_row_of_A_and_B_by_the_factor_of_that_weight_row()
    {
        var (peft, layer) = OneLayer(new AlLoraConfig { Rank = 2, Eta = 10 });
        var a = layer.A("default");
        var b = layer.B("default");
        using (torch.no_grad())
        {
            // A rows of norm 3 and 5 ([3,0,0,0], [0,3,4,0]); B rows: five zero rows and one of norm 3 ([0, 3]).
            a.copy_(torch.tensor(new float[,] { { 3, 0, 0, 0 }, { 0, 3, 4, 0 } }));
            b.zero_();
            b[5, 1] = torch.tensor(3f);
        }
        a.grad = torch.ones(2, 4);
        b.grad = torch.ones(6, 2);
        var named = peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter)).ToList();
        new AlLoraMethod().CreateHooks(peft, "default")!.PreStep(new TrainingStep(0, 1e-3, 1), named);
        var ga = Values(a.grad);
        var gb = Values(b.grad);
        // By hand: 1/√(9.01) = 0.333148, 1/√(25.01) = 0.199960, zero row → 10.
        Assert.All(ga[..4], v => Assert.Equal(0.333148, v, 5));
        Assert.All(ga[4..], v => Assert.Equal(0.199960, v, 5));
        Assert.All(gb[..10], v => Assert.Equal(10.0, v, 4));
        Assert.All(gb[10..], v => Assert.Equal(0.333148, v, 5));
    }

    [Fact]
    public void First_step_variant_keeps_the_first_factors_and_saves_them_with_the_checkpoint()
    {
        var (peft, layer) = OneLayer(new AlLoraConfig { Rank = 1, Eta = 10, FactorUpdate = AlLoraConfig.FirstStep });
        var a = layer.A("default");
        var b = layer.B("default");
        var named = peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter)).ToList();
        var hooks = (ICheckpointedHooks)new AlLoraMethod().CreateHooks(peft, "default")!;
        using (torch.no_grad())
        {
            a.copy_(torch.tensor(new float[,] { { 3, 0, 0, 0 } }));
            b.zero_();
        }
        a.grad = torch.ones(1, 4);
        b.grad = torch.ones(6, 1);
        hooks.PreStep(new TrainingStep(0, 1e-3, 1), named);
        using (torch.no_grad())
        {
            a.copy_(torch.tensor(new float[,] { { 0, 0, 0, 5 } }));
            b.fill_(7);
        }
        a.grad = torch.ones(1, 4);
        b.grad = torch.ones(6, 1);
        hooks.PreStep(new TrainingStep(1, 1e-3, 1), named);
        Assert.All(Values(a.grad), v => Assert.Equal(0.333148, v, 5));
        Assert.All(Values(b.grad), v => Assert.Equal(10.0, v, 4));

        var saved = hooks.SaveState();
        var restored = (ICheckpointedHooks)new AlLoraMethod().CreateHooks(peft, "default")!;
        restored.RestoreState(JsonNode.Parse(saved.ToJsonString())!);
        a.grad = torch.ones(1, 4);
        restored.PreStep(new TrainingStep(2, 1e-3, 1), named);
        Assert.All(Values(a.grad), v => Assert.Equal(0.333148, v, 5));
    }

    [Fact]
    public void Adapter_has_no_scale_and_no_dropout_and_B_starts_at_zero()
    {
        var (peft, layer) = OneLayer(new AlLoraConfig { Rank = 2 });
        Assert.Equal(1.0, layer.ScalingOf("default"));
        Assert.True(Weights.Exact(layer.B("default"), torch.zeros(6, 2)));
        using (torch.no_grad())
        {
            layer.B("default").copy_(torch.randn(6, 2));
        }
        layer.train();
        var x = torch.randn(3, 4);
        using var first = layer.call(x);
        using var second = layer.call(x);
        Assert.True(Weights.Exact(first, second), "training-mode forward must be deterministic (no dropout)");
        using var expected = layer.Base.Module.call(x) + x.matmul(layer.A("default").t()).matmul(layer.B("default").t());
        Assert.True(Weights.MaxAbsDiff(first, expected) < 1e-6);
        Assert.NotNull(peft);
    }

    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"ALLORA\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Config_defaults_and_round_trip()
    {
        var c = Assert.IsType<AlLoraConfig>(Parse(""));
        Assert.Equal((8, 2.0, "squared", "every_step"), (c.Rank, c.Eta, c.FactorNorm, c.FactorUpdate));
        var text = MethodRegistry.Default.SerializeConfig(c with { FactorNorm = "unsquared" });
        var json = JsonNode.Parse(text)!.AsObject();
        Assert.False(json.ContainsKey("lora_alpha"));
        Assert.False(json.ContainsKey("lora_dropout"));
        Assert.Equal("unsquared", Assert.IsType<AlLoraConfig>(MethodRegistry.Default.ParseConfig(text, "again.json")).FactorNorm);
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"eta\": 0", "eta must be > 0")]
    [InlineData(", \"factor_norm\": \"cubed\"", "factor_norm must be")]
    [InlineData(", \"factor_update\": \"never\"", "factor_update must be")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
