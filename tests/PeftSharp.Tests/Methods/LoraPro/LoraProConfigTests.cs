using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.LoraPro;

namespace PeftSharp.Tests.Methods.LoraPro;

/// <summary>LoRA-Pro's adapter_config.json: LoRA's keys and defaults, its own keys, and errors naming the key.</summary>
public class LoraProConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"LORA_PRO\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_follow_PEFT_LoRA_and_the_official_optimizer()
    {
        var c = Assert.IsType<LoraProConfig>(Parse(""));
        Assert.Equal((8, 8.0, 0.0, false, 1e-8, 1e-8), (c.Rank, c.Alpha, c.Dropout, c.UseRsLora, c.PinvDelta, c.AdamEps));
        Assert.Equal([0.9, 0.999], c.AdamBetas);
        Assert.Equal(16 / Math.Sqrt(8), (c with { Alpha = 16, UseRsLora = true }).Scaling, 12);
        var json = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(c))!.AsObject();
        Assert.True(json["init_lora_weights"]!.GetValue<bool>());
        Assert.Equal("LORA_PRO", json["peft_type"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"lora_alpha\": -1", "lora_alpha must be > 0")]
    [InlineData(", \"lora_dropout\": 1", "lora_dropout must be in [0, 1)")]
    [InlineData(", \"init_lora_weights\": \"pissa\"", "init_lora_weights must be true or \"gaussian\"")]
    [InlineData(", \"pinv_delta\": -1", "pinv_delta must be >= 0")]
    [InlineData(", \"adam_betas\": [0.9]", "adam_betas must be two numbers")]
    [InlineData(", \"adam_eps\": -1", "adam_eps must be >= 0")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
