using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Salt;

namespace PeftSharp.Tests.Methods.Salt;

/// <summary>SALT's adapter_config.json: keys, defaults, the top-count rule and validation errors naming the key.</summary>
public class SaltConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"SALT\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_and_keys()
    {
        var c = Assert.IsType<SaltConfig>(Parse(""));
        Assert.Equal((8, 0.1, true), (c.Rank, c.Ratio, c.InitWeights));
        var written = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(c with { Ratio = 0.25 }))!.AsObject();
        Assert.Equal(("SALT", 8, 0.25), (written["peft_type"]!.GetValue<string>(), written["r"]!.GetValue<int>(), written["salt_ratio"]!.GetValue<double>()));
        Assert.True(written.ContainsKey("init_weights"));
    }

    [Theory]
    [InlineData(0.1, 768, 76)]
    [InlineData(0.1, 5, 1)]
    [InlineData(0.5, 4, 2)]
    [InlineData(1.0, 6, 6)]
    public void Top_count_is_max_1_floor_k_ratio(double ratio, long k, int expected) =>
        Assert.Equal(expected, new SaltConfig { Ratio = ratio }.TopCount(k));

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"salt_ratio\": 0", "salt_ratio must be in (0, 1]")]
    [InlineData(", \"salt_ratio\": 1.5", "salt_ratio must be in (0, 1]")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
