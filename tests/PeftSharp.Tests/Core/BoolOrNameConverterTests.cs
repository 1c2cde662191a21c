using System.Text.Json.Nodes;
using PeftSharp.Core;

namespace PeftSharp.Tests.Core;

/// <summary>The bool-or-name <c>init_weights</c> of LoKr, Hydra, MiSS and Bone: every value round-trips as written, and a wrong one is named with the accepted list.</summary>
public class BoolOrNameConverterTests
{
    private static AdapterConfig Parse(string peftType, string value) => MethodRegistry.Default.ParseConfig(
        "{\"peft_type\": \"" + peftType + "\", \"target_modules\": [\"q_proj\"], \"init_weights\": " + value + "}", "adapter_config.json");

    [Theory]
    [InlineData("LOKR", "true")]
    [InlineData("LOKR", "false")]
    [InlineData("LOKR", "\"lycoris\"")]
    [InlineData("HYDRA", "true")]
    [InlineData("HYDRA", "false")]
    [InlineData("HYDRA", "\"xavier\"")]
    [InlineData("MISS", "true")]
    [InlineData("MISS", "false")]
    [InlineData("MISS", "\"bat\"")]
    [InlineData("MISS", "\"mini\"")]
    [InlineData("BONE", "\"bat\"")]
    public void Each_accepted_value_is_written_back_as_read(string peftType, string value)
    {
        var text = MethodRegistry.Default.SerializeConfig(Parse(peftType, value));
        Assert.Equal(value, JsonNode.Parse(text)!["init_weights"]!.ToJsonString());
    }

    [Theory]
    [InlineData("LOKR", "\"gaussian\"", "init_weights must be true, false or \"lycoris\", got \"gaussian\"")]
    [InlineData("LOKR", "1", "init_weights must be true, false or \"lycoris\", got Number")]
    [InlineData("HYDRA", "\"kaiming\"", "init_weights must be true, false or \"xavier\", got \"kaiming\"")]
    [InlineData("MISS", "\"pissa\"", "init_weights must be true, false, \"bat\" or \"mini\", got \"pissa\"")]
    [InlineData("MISS", "null", "init_weights must be true, false, \"bat\" or \"mini\", got Null")]
    public void A_wrong_value_names_the_key_and_the_accepted_values(string peftType, string value, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(peftType, value));
        Assert.Equal($"adapter_config.json: key \"init_weights\" has the wrong type or value ({message})", e.Message);
    }
}
