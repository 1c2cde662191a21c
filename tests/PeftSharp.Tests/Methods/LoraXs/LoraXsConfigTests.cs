using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.LoraXs;

namespace PeftSharp.Tests.Methods.LoraXs;

/// <summary>LoRA-XS's adapter_config.json: keys, defaults and validation errors naming the key.</summary>
public class LoraXsConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"LORA_XS\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_and_keys()
    {
        var c = Assert.IsType<LoraXsConfig>(Parse(""));
        Assert.Equal((8, 8.0, 0.0, true, 1.0), (c.Rank, c.Alpha, c.Dropout, c.InitWeights, c.Scaling));
        var written = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(new LoraXsConfig { Rank = 4, Alpha = 2, TargetModules = TargetModules.Of("q_proj") }))!.AsObject();
        Assert.Equal("LORA_XS", written["peft_type"]!.GetValue<string>());
        Assert.Equal(4, written["r"]!.GetValue<int>());
        Assert.Equal(2.0, written["lora_alpha"]!.GetValue<double>());
        Assert.True(written.ContainsKey("lora_dropout") && written.ContainsKey("init_weights"));
        Assert.Equal(0.5, ((LoraXsConfig)Parse(", \"r\": 4, \"lora_alpha\": 2")).Scaling);
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"lora_alpha\": -1", "lora_alpha must be > 0")]
    [InlineData(", \"lora_dropout\": 1.0", "lora_dropout must be in [0, 1)")]
    [InlineData(", \"init_weights\": \"gaussian\"", "key \"init_weights\" has the wrong type")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
