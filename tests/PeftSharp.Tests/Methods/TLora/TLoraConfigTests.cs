using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.TLora;

namespace PeftSharp.Tests.Methods.TLora;

/// <summary>TLoRA's adapter_config.json: keys, defaults, round trip and validation errors naming the key.</summary>
public class TLoraConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"TLORA\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_round_trip_and_registry_name()
    {
        var c = Assert.IsType<TLoraConfig>(Parse(""));
        Assert.Equal((4, 1, 3, true), (c.Rank, c.TransformRank, c.NumCores, c.InitWeights));
        Assert.IsType<TLoraMethod>(MethodRegistry.Default.Get("tlora"));
        var json = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(Parse(", \"r\": 2, \"transform_r\": 3, \"num_cores\": 2, \"init_weights\": false")))!.AsObject();
        Assert.Equal((2, 3, 2, false), (json["r"]!.GetValue<int>(), json["transform_r"]!.GetValue<int>(), json["num_cores"]!.GetValue<int>(), json["init_weights"]!.GetValue<bool>()));
        Assert.Equal("TLORA", json["peft_type"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"transform_r\": 0", "transform_r must be > 0")]
    [InlineData(", \"num_cores\": 0", "num_cores must be in [1, 8]")]
    [InlineData(", \"num_cores\": 9", "num_cores must be in [1, 8]")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message) =>
        Assert.Contains(message, Assert.Throws<ConfigException>(() => Parse(body)).Message);
}
