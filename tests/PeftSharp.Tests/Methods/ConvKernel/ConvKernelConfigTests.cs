using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.ConvKernel;
using PeftSharp.Methods.ConvLora;
using PeftSharp.Methods.CpLora;
using PeftSharp.Methods.LoraC;

namespace PeftSharp.Tests.Methods.ConvKernel;

/// <summary>The conv-kernel methods' adapter_config.json: LoRA's keys and defaults, use_dora, errors naming the key.</summary>
public class ConvKernelConfigTests
{
    private static AdapterConfig Parse(string peftType, string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"" + peftType + "\", \"target_modules\": [\"conv\"]" + body + "}", "adapter_config.json");

    [Theory]
    [InlineData("LORA_C", "lora-c", typeof(LoraCConfig))]
    [InlineData("CONV_LORA", "conv-lora", typeof(ConvLoraConfig))]
    [InlineData("CP_LORA", "cp-lora", typeof(CpLoraConfig))]
    public void Each_type_parses_with_lora_defaults_and_is_found_by_name(string peftType, string name, Type configType)
    {
        var c = Assert.IsAssignableFrom<KernelLoraConfig>(Parse(peftType, ""));
        Assert.IsType(configType, c);
        Assert.Equal((8, 8.0, 0.0, false, true, 1.0), (c.Rank, c.Alpha, c.Dropout, c.UseDora, c.InitLoraWeights, c.Scaling));
        Assert.Equal(peftType, MethodRegistry.Default.Get(name).PeftType);
    }

    [Fact]
    public void Use_dora_and_the_other_keys_round_trip()
    {
        var c = Parse("CP_LORA", ", \"r\": 4, \"lora_alpha\": 2, \"lora_dropout\": 0.1, \"use_dora\": true, \"init_lora_weights\": false, \"extra\": [1]");
        var json = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(c))!.AsObject();
        Assert.Equal("CP_LORA", json["peft_type"]!.GetValue<string>());
        Assert.Equal((4, 2.0, 0.1, true, false), (json["r"]!.GetValue<int>(), json["lora_alpha"]!.GetValue<double>(), json["lora_dropout"]!.GetValue<double>(),
            json["use_dora"]!.GetValue<bool>(), json["init_lora_weights"]!.GetValue<bool>()));
        Assert.Equal("[1]", json["extra"]!.ToJsonString());
        var again = Assert.IsType<CpLoraConfig>(MethodRegistry.Default.ParseConfig(json.ToJsonString(), "again.json"));
        Assert.Equal(0.5, again.Scaling);
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"lora_alpha\": 0", "lora_alpha must be > 0")]
    [InlineData(", \"lora_dropout\": 1", "lora_dropout must be in [0, 1)")]
    [InlineData(", \"init_lora_weights\": \"gaussian\"", "key \"init_lora_weights\" has the wrong type")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        foreach (var type in new[] { "LORA_C", "CONV_LORA", "CP_LORA" })
        {
            var e = Assert.Throws<ConfigException>(() => Parse(type, body));
            Assert.Contains(message, e.Message);
        }
    }

    [Fact]
    public void Embedding_layers_are_refused_by_name()
    {
        var net = TorchSharp.torch.nn.Sequential(("emb", TorchSharp.torch.nn.Embedding(10, 4)));
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(net, new CpLoraConfig { TargetModules = TargetModules.Of("emb") }));
        Assert.Contains("cp-lora cannot adapt", e.Message);
    }
}
