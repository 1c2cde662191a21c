using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Lora;

/// <summary>
/// PEFT LoraConfig values beyond the fixtures: the "orthogonal" and "eva" inits, and the keys PeftSharp does not
/// implement, which must be refused by name rather than ignored (ignoring one would load an adapter that computes
/// something else than PEFT does).
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class LoraConfigCoverageTests
{
    private static AdapterConfig Parse(string extra) => MethodRegistry.Default.ParseConfig(
        "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"lin\"]" + extra + "}", "some/adapter_config.json");

    private static Tensor Param(nn.Module net, string name) => net.named_parameters().Single(p => p.name == name).parameter.detach();

    [Fact]
    public void Orthogonal_init_has_nonzero_factors_whose_product_is_zero()
    {
        torch.manual_seed(21);
        var net = nn.Sequential(("lin", nn.Linear(10, 7)));
        var x = torch.randn(3, 10);
        using var before = net.call(x);
        PeftModel.Create(net, (LoraConfig)Parse(", \"init_lora_weights\": \"orthogonal\""));
        var a = Param(net, "lin.lora_A.default.weight");
        var b = Param(net, "lin.lora_B.default.weight");
        Assert.True(a.abs().max().item<float>() > 1e-3 && b.abs().max().item<float>() > 1e-3, "neither factor is zero");
        Assert.True(b.matmul(a).abs().max().item<float>() <= 1e-6, "B·A = 0: Q's odd and even rows are orthogonal");
        Assert.True(Weights.MaxAbsDiff(net.call(x), before) <= 1e-6);
        // The factors' row and column spaces: A's rows lie in span(Q_odd), B's columns' coefficients in span(Q_even).
        Assert.Equal(2, torch.linalg.matrix_rank(a).item<long>());
        Assert.Equal(2, torch.linalg.matrix_rank(b).item<long>());
    }

    [Fact]
    public void Orthogonal_init_needs_an_even_rank_and_a_linear_layer()
    {
        var odd = Assert.ThrowsAny<PeftException>(() => PeftModel.Create(nn.Sequential(("lin", nn.Linear(10, 7))),
            (LoraConfig)Parse(", \"init_lora_weights\": \"orthogonal\"") with { Rank = 3 }));
        Assert.Contains("even", odd.Message);
        var conv = Assert.ThrowsAny<PeftException>(() => PeftModel.Create(new ToyConvNet(),
            (LoraConfig)Parse(", \"init_lora_weights\": \"orthogonal\"") with { TargetModules = TargetModules.Of("conv") }));
        Assert.Contains("Linear", conv.Message);
    }

    [Fact]
    public void Eva_init_starts_with_b_zero_as_peft_layer_init_does_and_round_trips_its_name()
    {
        torch.manual_seed(22);
        var net = nn.Sequential(("lin", nn.Linear(10, 7)));
        var x = torch.randn(3, 10);
        using var before = net.call(x);
        var config = Parse(", \"init_lora_weights\": \"eva\"");
        var peft = PeftModel.Create(net, config);
        Assert.Equal(0f, Param(net, "lin.lora_B.default.weight").abs().max().item<float>());
        Assert.True(Weights.Exact(net.call(x), before));
        Assert.Contains("\"init_lora_weights\": \"eva\"", MethodRegistry.Default.SerializeConfig(config));
    }

    [Theory]
    [InlineData("loftq")]
    [InlineData("corda")]
    [InlineData("lora_ga")]
    public void Inits_that_rewrite_the_base_from_data_are_refused_naming_the_file(string init)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($", \"init_lora_weights\": \"{init}\""));
        Assert.Contains("some/adapter_config.json", e.Message);
        Assert.Contains(init, e.Message);
    }

    [Theory]
    [InlineData("layer_replication", "[[0, 1], [0, 1]]")]
    [InlineData("trainable_token_indices", "[3, 5]")]
    [InlineData("target_parameters", "[\"experts.gate_up_proj\"]")]
    [InlineData("alora_invocation_tokens", "[12, 7]")]
    [InlineData("use_qalora", "true")]
    [InlineData("arrow_config", "{\"top_k\": 2}")]
    public void Keys_that_change_the_computation_are_refused_by_name_when_set(string key, string value)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($", \"{key}\": {value}"));
        Assert.Contains(key, e.Message);
        Assert.Contains("some/adapter_config.json", e.Message);
    }

    [Theory]
    [InlineData("layer_replication", "null")]
    [InlineData("trainable_token_indices", "null")]
    [InlineData("target_parameters", "[]")]
    [InlineData("use_qalora", "false")]
    [InlineData("qalora_group_size", "16")]
    [InlineData("megatron_core", "\"megatron.core\"")]
    [InlineData("ensure_weight_tying", "false")]
    public void The_same_keys_at_their_defaults_load_and_are_written_back(string key, string value)
    {
        var config = Parse($", \"{key}\": {value}");
        Assert.Contains($"\"{key}\"", MethodRegistry.Default.SerializeConfig(config));
    }
}
