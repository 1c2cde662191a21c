using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.Vera;
using PeftSharp.Training.Jobs;
using Xunit;

namespace PeftSharp.Tests.Training.Jobs;

public class MethodOptionsTests
{
    // As FineTuneJob builds it: the method's defaults with the run's target modules.
    private static AdapterConfig Targeted(string method) => MethodRegistry.Default.DefaultConfig(method) with { TargetModules = TargetModules.Of(["query", "value"]) };

    [Fact]
    public void Cli_option_values_parse_as_json_and_fall_back_to_strings()
    {
        Assert.Equal(0.25, MethodConfigs.ParseOption("d_initial=0.25").Value!.GetValue<double>());
        Assert.True(MethodConfigs.ParseOption("use_dora=true").Value!.GetValue<bool>());
        Assert.Equal("gaussian", MethodConfigs.ParseOption("init_lora_weights=gaussian").Value!.GetValue<string>());
        Assert.Null(MethodConfigs.ParseOption("layers_to_transform=null").Value);
        Assert.Equal(2, MethodConfigs.ParseOption("layers_to_transform=[0,1]").Value!.AsArray().Count);
        var ex = Assert.Throws<ConfigException>(() => MethodConfigs.ParseOption("use_dora"));
        Assert.Contains("KEY=VALUE", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Method_options_set_config_keys_by_their_peft_names()
    {
        var vera = (VeraConfig)MethodConfigs.WithOptions(Targeted("vera"), new Dictionary<string, JsonNode?> { ["d_initial"] = 0.25, ["projection_prng_key"] = 7 });
        Assert.Equal(0.25, vera.DInitial);
        Assert.Equal(7, vera.ProjectionPrngKey);
        var lora = (LoraConfig)MethodConfigs.WithOptions(Targeted("lora"), new Dictionary<string, JsonNode?> { ["use_rslora"] = true });
        Assert.True(lora.UseRsLora);
    }

    [Fact]
    public void An_unknown_method_option_is_an_error_listing_the_valid_keys()
    {
        var ex = Assert.Throws<ConfigException>(() => MethodConfigs.WithOptions(Targeted("vera"), new Dictionary<string, JsonNode?> { ["d_intial"] = 0.25 }));
        Assert.Contains("d_intial", ex.Message, StringComparison.Ordinal);
        Assert.Contains("d_initial", ex.Message, StringComparison.Ordinal);
        Assert.Contains("VERA", ex.Message, StringComparison.Ordinal);
    }
}
