using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Hydra;

namespace PeftSharp.Tests.Methods.Hydra;

/// <summary>Hydra's adapter_config.json: keys, defaults, round trip and validation errors naming the key.</summary>
public class HydraConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"HYDRA\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_and_registry_names()
    {
        var c = Assert.IsType<HydraConfig>(Parse(""));
        Assert.Equal((8, 8, 1.0, 0.0, false, HydraInit.Kaiming), (c.Rank, c.SequentialRank, c.Scale, c.Dropout, c.BranchBias, c.InitWeights));
        Assert.IsType<HydraMethod>(MethodRegistry.Default.Get("hydra"));
    }

    [Fact]
    public void Keys_are_written_back_with_their_values()
    {
        var c = Parse(", \"r\": 2, \"sequential_r\": 3, \"hydra_scale\": 0.1, \"hydra_dropout\": 0.2, \"hydra_bias\": true, \"init_weights\": \"xavier\", \"custom\": 5");
        var json = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(c))!.AsObject();
        Assert.Equal("HYDRA", json["peft_type"]!.GetValue<string>());
        Assert.Equal(2, json["r"]!.GetValue<int>());
        Assert.Equal(3, json["sequential_r"]!.GetValue<int>());
        Assert.Equal(0.1, json["hydra_scale"]!.GetValue<double>());
        Assert.Equal(0.2, json["hydra_dropout"]!.GetValue<double>());
        Assert.True(json["hydra_bias"]!.GetValue<bool>());
        Assert.Equal("xavier", json["init_weights"]!.GetValue<string>());
        Assert.Equal(5, json["custom"]!.GetValue<int>());
        var again = Assert.IsType<HydraConfig>(MethodRegistry.Default.ParseConfig(json.ToJsonString(), "again.json"));
        Assert.Equal(HydraInit.Xavier, again.InitWeights);
        Assert.False(Assert.IsType<HydraConfig>(Parse(", \"init_weights\": false")).InitWeights == HydraInit.Kaiming);
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"sequential_r\": -1", "sequential_r must be > 0")]
    [InlineData(", \"hydra_scale\": 0", "hydra_scale must be a finite non-zero number")]
    [InlineData(", \"hydra_dropout\": 1.0", "hydra_dropout must be in [0, 1)")]
    [InlineData(", \"init_weights\": \"gaussian\"", "key \"init_weights\" has the wrong type")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Embedding_and_conv2d_layers_are_refused_by_name()
    {
        var net = TorchSharp.torch.nn.Sequential(("emb", TorchSharp.torch.nn.Embedding(10, 4)));
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(net, new HydraConfig { TargetModules = TargetModules.Of("emb") }));
        Assert.Contains("hydra cannot adapt", e.Message);
    }
}
