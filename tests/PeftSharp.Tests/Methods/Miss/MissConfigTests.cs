using PeftSharp.Core;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Miss;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Methods.Miss;

/// <summary>adapter_config.json for MISS and BONE: PEFT's keys and defaults, the bool-or-string init_weights, and errors naming the key.</summary>
public class MissConfigTests
{
    private static AdapterConfig Parse(string json) => MethodRegistry.Default.ParseConfig(json, "adapter_config.json");

    [Fact]
    public void Fixture_configs_parse_to_their_own_method_and_variant()
    {
        var miss = Assert.IsType<MissConfig>(Parse(File.ReadAllText(SharedPaths.Fixture("cases", "llama-miss-bat-qv", "adapter", "adapter_config.json"))));
        Assert.Equal((8, ShardInit.Bat, 1, 0.0), (miss.Rank, miss.InitWeights, miss.MiniR, miss.Dropout));
        var bone = Assert.IsType<BoneConfig>(Parse(File.ReadAllText(SharedPaths.Fixture("cases", "llama-bone-qv", "adapter", "adapter_config.json"))));
        Assert.Equal((8, ShardInit.Balance), (bone.Rank, bone.InitWeights));
    }

    [Fact]
    public void Defaults_are_PEFTs()
    {
        var c = Assert.IsType<MissConfig>(Parse("""{"peft_type": "MISS", "target_modules": ["q_proj"]}"""));
        Assert.Equal((64, ShardInit.Balance, 1, 0.0, "none"), (c.Rank, c.InitWeights, c.MiniR, c.Dropout, c.Bias));
    }

    [Theory]
    [InlineData("true", ShardInit.Balance)]
    [InlineData("false", ShardInit.Random)]
    [InlineData("\"bat\"", ShardInit.Bat)]
    [InlineData("\"mini\"", ShardInit.Mini)]
    public void Init_weights_round_trips_as_PEFTs_bool_or_string(string json, ShardInit expected)
    {
        var c = Assert.IsType<MissConfig>(Parse($$"""{"peft_type": "MISS", "target_modules": ["q_proj"], "init_weights": {{json}}}"""));
        Assert.Equal(expected, c.InitWeights);
        Assert.Contains($"\"init_weights\": {json}", MethodRegistry.Default.SerializeConfig(c));
    }

    [Fact]
    public void Bone_saves_as_BONE_without_MiSS_only_keys()
    {
        var text = MethodRegistry.Default.SerializeConfig(new BoneConfig { Rank = 8, InitWeights = ShardInit.Bat, TargetModules = TargetModules.Of("q_proj") });
        Assert.Contains("\"peft_type\": \"BONE\"", text);
        Assert.Contains("\"init_weights\": \"bat\"", text);
        Assert.DoesNotContain("miss_dropout", text);
        Assert.DoesNotContain("mini_r", text);
    }

    [Theory]
    [InlineData("MISS", "\"r\": 0", "r must be > 0")]
    [InlineData("BONE", "\"r\": -2", "r must be > 0")]
    [InlineData("MISS", "\"miss_dropout\": 1.0", "miss_dropout must be in [0, 1)")]
    [InlineData("MISS", "\"mini_r\": 0", "mini_r must be > 0")]
    [InlineData("MISS", "\"init_weights\": \"pissa\"", "init_weights")]
    [InlineData("BONE", "\"init_weights\": \"mini\"", "init_weights \"mini\"")]
    [InlineData("MISS", "\"bias\": \"all\"", "bias \"all\"")]
    [InlineData("BONE", "\"bias\": \"bone_only\"", "bias \"bone_only\"")]
    public void Bad_values_are_rejected_naming_the_key(string type, string entry, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($$"""{"peft_type": "{{type}}", "target_modules": ["q_proj"], {{entry}}}"""));
        Assert.Contains(message, e.Message);
        Assert.Contains("adapter_config.json", e.Message);
    }
}
