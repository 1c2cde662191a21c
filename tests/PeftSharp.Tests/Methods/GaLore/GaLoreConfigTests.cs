using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.GaLore;

namespace PeftSharp.Tests.Methods.GaLore;

/// <summary>GaLore's adapter_config.json: keys, defaults and validation errors naming the key.</summary>
public class GaLoreConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"GALORE\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_are_the_official_ones_and_keys_round_trip()
    {
        var c = Assert.IsType<GaLoreConfig>(Parse(""));
        Assert.Equal((128, 200, 1.0, "std", 1e-6, 0.0), (c.Rank, c.UpdateProjectionGap, c.Scale, c.ProjectionType, c.Eps, c.WeightDecay));
        Assert.Equal([0.9, 0.999], c.Betas);
        var written = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(new GaLoreConfig { Rank = 4, UpdateProjectionGap = 50, Scale = 0.25, TargetModules = TargetModules.Of("q_proj") }))!.AsObject();
        Assert.Equal("GALORE", written["peft_type"]!.GetValue<string>());
        Assert.Equal(4, written["r"]!.GetValue<int>());
        Assert.Equal(50, written["update_proj_gap"]!.GetValue<int>());
        Assert.Equal(0.25, written["scale"]!.GetValue<double>());
        var options = ((GaLoreConfig)Parse(", \"proj_type\": \"reverse_std\", \"betas\": [0.8, 0.99]")).ToOptions();
        Assert.Equal((GaLoreProjection.ReverseStandard, 0.8, 0.99), (options.Projection, options.Beta1, options.Beta2));
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"update_proj_gap\": 0", "update_proj_gap must be > 0")]
    [InlineData(", \"scale\": -1", "scale must be")]
    [InlineData(", \"proj_type\": \"full\"", "proj_type \"full\"")]
    [InlineData(", \"proj_type\": \"diagonal\"", "proj_type must be std, reverse_std, left or right")]
    [InlineData(", \"betas\": [0.9]", "betas must be two numbers")]
    [InlineData(", \"weight_decay\": -0.1", "weight_decay must be >= 0")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Embeddings_and_convolutions_are_refused_naming_the_module()
    {
        var net = new Support.ToyConvNet();
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(net, new GaLoreConfig { Rank = 2, TargetModules = TargetModules.Of("emb") }));
        Assert.Contains("'emb'", e.Message);
    }
}
