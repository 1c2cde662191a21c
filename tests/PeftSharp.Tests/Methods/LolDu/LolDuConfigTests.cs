using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.LolDu;

namespace PeftSharp.Tests.Methods.LolDu;

/// <summary>LoLDU's adapter_config.json: keys, defaults and validation errors naming the key.</summary>
public class LolDuConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"LOLDU\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_and_keys()
    {
        var c = Assert.IsType<LolDuConfig>(Parse(""));
        Assert.Equal((8, 1.0, 0.125), (c.Rank, c.Alpha, c.Scaling));
        var written = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(c with { Rank = 4 }))!.AsObject();
        Assert.Equal(("LOLDU", 4, 1.0), (written["peft_type"]!.GetValue<string>(), written["r"]!.GetValue<int>(), written["lora_alpha"]!.GetValue<double>()));
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"lora_alpha\": 0", "lora_alpha must be > 0")]
    [InlineData(", \"r\": \"eight\"", "key \"r\" has the wrong type")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
