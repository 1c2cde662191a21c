using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.LoraSb;

namespace PeftSharp.Tests.Methods.LoraSb;

/// <summary>LoRA-SB's adapter_config.json: keys, defaults and validation errors naming the key.</summary>
public class LoraSbConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"LORA_SB\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_and_keys()
    {
        var c = Assert.IsType<LoraSbConfig>(Parse(""));
        Assert.Equal((8, 0.0, true, 50, (double?)null, "sign"), (c.Rank, c.Dropout, c.InitWeights, c.CalibrationSamples, c.CalibrationLearningRate, c.CalibrationUpdate));
        var text = MethodRegistry.Default.SerializeConfig(c with { CalibrationLearningRate = 3.2e-6 });
        var written = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(3.2e-6, written["calibration_lr"]!.GetValue<double>());
        Assert.Equal("LORA_SB", written["peft_type"]!.GetValue<string>());
        var again = Assert.IsType<LoraSbConfig>(MethodRegistry.Default.ParseConfig(text, "again.json"));
        Assert.Equal((8, 50, (double?)3.2e-6, "sign"), (again.Rank, again.CalibrationSamples, again.CalibrationLearningRate, again.CalibrationUpdate));
    }

    [Theory]
    [InlineData(", \"r\": -1", "r must be > 0")]
    [InlineData(", \"lora_dropout\": -0.5", "lora_dropout must be in [0, 1)")]
    [InlineData(", \"calibration_samples\": 0", "calibration_samples must be > 0")]
    [InlineData(", \"calibration_lr\": 0", "calibration_lr must be > 0")]
    [InlineData(", \"calibration_update\": \"adam\"", "calibration_update must be \"sign\" or \"gradient\"")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
