using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.LoHa;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Methods.LoHa;

/// <summary>LoHa's adapter_config.json: PEFT's keys and defaults, validation naming the key, per-module patterns.</summary>
public class LoHaConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"LOHA\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Peft_fixture_config_reads_and_writes_back_the_same_keys_and_values()
    {
        var text = File.ReadAllText(SharedPaths.Fixture("cases", "llama-loha-qv", "adapter", "adapter_config.json"));
        var config = Assert.IsType<LoHaConfig>(MethodRegistry.Default.ParseConfig(text, "adapter_config.json"));
        Assert.Equal((8, 8.0, 1.0, true, false), (config.Rank, config.Alpha, config.Scaling, config.InitWeights, config.UseEffectiveConv2d));
        var written = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(config))!.AsObject();
        var original = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(original.Select(p => p.Key).Order(), written.Select(p => p.Key).Order());
        foreach (var (key, value) in original)
        {
            Assert.True(SameValue(value, written[key]), $"{key}: {value?.ToJsonString()} written back as {written[key]?.ToJsonString()}");
        }
    }

    // Numbers by value (Python writes 0.0 where .NET writes 0); target_modules is a set in PEFT, so compared as one.
    private static bool SameValue(JsonNode? a, JsonNode? b)
    {
        if (a is JsonValue va && b is JsonValue vb && va.TryGetValue<double>(out var x) && vb.TryGetValue<double>(out var y))
        {
            return x == y;
        }
        if (a is JsonArray aa && b is JsonArray ab)
        {
            return aa.Select(v => v!.ToJsonString()).Order().SequenceEqual(ab.Select(v => v!.ToJsonString()).Order());
        }
        return a?.ToJsonString() == b?.ToJsonString();
    }

    [Fact]
    public void Defaults_are_peft_defaults()
    {
        var c = (LoHaConfig)Parse("");
        Assert.Equal((8, 8.0, 0.0, 0.0, false, true), (c.Rank, c.Alpha, c.RankDropout, c.ModuleDropout, c.UseEffectiveConv2d, c.InitWeights));
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"rank_dropout\": 1.0", "rank_dropout must be in [0, 1)")]
    [InlineData(", \"rank_dropout\": -0.1", "rank_dropout must be in [0, 1)")]
    [InlineData(", \"module_dropout\": 1.5", "module_dropout must be in [0, 1]")]
    [InlineData(", \"rank_pattern\": {\"v_proj\": -2}", "rank_pattern[\"v_proj\"] must be > 0")]
    [InlineData(", \"layers_pattern\": \"layers\"", "layers_pattern is set but layers_to_transform is not")]
    [InlineData(", \"init_weights\": \"gaussian\"", "key \"init_weights\" has the wrong type")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Rank_and_alpha_patterns_resolve_per_module_by_peft_suffix_rule()
    {
        var c = (LoHaConfig)Parse(", \"r\": 4, \"alpha\": 2, \"rank_pattern\": {\"layers.0.self_attn.q_proj\": 16}, \"alpha_pattern\": {\"q_proj\": 32}");
        var first = (LoHaConfig)c.ForModule("model.layers.0.self_attn.q_proj");
        Assert.Equal((16, 32.0, 2.0), (first.Rank, first.Alpha, first.Scaling));
        var other = (LoHaConfig)c.ForModule("model.layers.10.self_attn.q_proj");
        Assert.Equal((4, 32.0), (other.Rank, other.Alpha));
        Assert.Same(c, c.ForModule("model.layers.0.self_attn.v_proj"));
    }

    [Fact]
    public void Rank_pattern_changes_the_saved_shapes_of_that_module_only()
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoHaConfig { Rank = 2, RankPattern = new Dictionary<string, int> { ["blocks.1.q_proj"] = 5 }, TargetModules = TargetModules.Of("q_proj") });
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new[] { 6L, 5 }, t["base_model.model.blocks.1.q_proj.hada_w1_a"].shape);
        Assert.Equal(new[] { 6L, 2 }, t["base_model.model.blocks.0.q_proj.hada_w1_a"].shape);
    }
}
