using PeftSharp.Core;
using PeftSharp.Methods.LoKr;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Methods.LoKr;

/// <summary>LoKr's adapter_config.json: PEFT's keys and defaults, <c>init_weights</c> as bool or "lycoris", validation.</summary>
public class LoKrConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"LOKR\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Peft_fixture_config_reads_with_peft_defaults()
    {
        var text = File.ReadAllText(SharedPaths.Fixture("cases", "llama-lokr-qv", "adapter", "adapter_config.json"));
        var c = Assert.IsType<LoKrConfig>(MethodRegistry.Default.ParseConfig(text, "adapter_config.json"));
        Assert.Equal((8, 8.0, false, -1, false, LoKrInit.Default, false), (c.Rank, c.Alpha, c.DecomposeBoth, c.DecomposeFactor, c.RankDropoutScale, c.InitWeights, c.UseEffectiveConv2d));
        var d = (LoKrConfig)Parse("");
        Assert.Equal((8, 8.0, false, -1, false, LoKrInit.Default), (d.Rank, d.Alpha, d.DecomposeBoth, d.DecomposeFactor, d.RankDropoutScale, d.InitWeights));
    }

    [Theory]
    [InlineData("true", LoKrInit.Default)]
    [InlineData("false", LoKrInit.Random)]
    [InlineData("\"lycoris\"", LoKrInit.Lycoris)]
    public void Init_weights_reads_and_writes_peft_spelling(string json, LoKrInit expected)
    {
        var c = (LoKrConfig)Parse(", \"init_weights\": " + json);
        Assert.Equal(expected, c.InitWeights);
        Assert.Contains("\"init_weights\": " + json, MethodRegistry.Default.SerializeConfig(c));
    }

    [Theory]
    [InlineData(", \"decompose_factor\": 0", "decompose_factor must be -1 or > 0, got 0")]
    [InlineData(", \"decompose_factor\": -3", "decompose_factor must be -1 or > 0, got -3")]
    [InlineData(", \"init_weights\": \"gaussian\"", "key \"init_weights\" has the wrong type or value")]
    [InlineData(", \"r\": -1", "r must be > 0")]
    [InlineData(", \"module_dropout\": -1", "module_dropout must be in [0, 1]")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
