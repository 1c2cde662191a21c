using PeftSharp.Core;
using PeftSharp.IO.Safetensors;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Tests.Methods.Lora;

/// <summary>The file-only LoRA checks <c>peft inspect</c> runs: factor pairs, ranks against the config, targets.</summary>
public class LoraFileCheckTests
{
    private const string Path = "some/adapter_model.safetensors";

    private static SafetensorsEntry E(string module, string suffix, params long[] shape) =>
        new($"base_model.model.{module}.{suffix}", SafetensorsDType.F32, shape, 0, 0);

    private static LoraConfig Config(params string[] targets) => new()
    {
        Rank = 4,
        TargetModules = TargetModules.Of(targets),
        RankPattern = new Dictionary<string, int> { ["layers.1.q_proj"] = 2 },
    };

    private static readonly SafetensorsEntry[] s_good =
    [
        E("model.layers.0.q_proj", "lora_A.weight", 4, 16), E("model.layers.0.q_proj", "lora_B.weight", 16, 4),
        E("model.layers.1.q_proj", "lora_A.weight", 2, 16), E("model.layers.1.q_proj", "lora_B.weight", 16, 2),
        E("model.embed_tokens", "lora_embedding_A", 4, 100), E("model.embed_tokens", "lora_embedding_B", 16, 4),
        E("model.conv", "lora_A.weight", 4, 3, 3, 3), E("model.conv", "lora_B.weight", 8, 4, 1, 1),
        E("score", "weight", 2, 16),
    ];

    [Fact]
    public void A_consistent_file_with_rank_pattern_embedding_and_conv_factors_passes() =>
        LoraFileCheck.Check(Config("q_proj", "embed_tokens", "conv"), s_good, Path);

    [Fact]
    public void A_factor_without_its_partner_is_named()
    {
        var e = Assert.Throws<ModelMismatchException>(() => LoraFileCheck.Check(Config("q_proj", "embed_tokens", "conv"), s_good.Where(x => !x.Name.EndsWith("embed_tokens.lora_embedding_A", StringComparison.Ordinal)).ToList(), Path));
        Assert.Contains(Path, e.Message);
        Assert.Contains("'base_model.model.model.embed_tokens.lora_embedding_B' has no 'base_model.model.model.embed_tokens.lora_embedding_A'", e.Message);
    }

    [Fact]
    public void A_rank_that_differs_from_the_config_or_between_a_and_b_is_named()
    {
        var e = Assert.Throws<ModelMismatchException>(() => LoraFileCheck.Check(Config("q_proj", "embed_tokens", "conv") with { RankPattern = new Dictionary<string, int>() }, s_good, Path));
        Assert.Contains("'model.layers.1.q_proj' has rank 2 in its tensors but r = 4", e.Message);
        var crossed = s_good.Select(x => x.Name.EndsWith("layers.0.q_proj.lora_B.weight", StringComparison.Ordinal) ? x with { Shape = [16, 3] } : x).ToList();
        var f = Assert.Throws<ModelMismatchException>(() => LoraFileCheck.Check(Config("q_proj", "embed_tokens", "conv"), crossed, Path));
        Assert.Contains("has rank 4 but 'base_model.model.model.layers.0.q_proj.lora_B.weight' [16, 3] has 3 columns", f.Message);
    }

    [Fact]
    public void Tensors_for_a_module_the_config_does_not_select_are_named()
    {
        var e = Assert.Throws<ModelMismatchException>(() => LoraFileCheck.Check(Config("q_proj", "conv"), s_good, Path));
        Assert.Contains("'model.embed_tokens'", e.Message);
        Assert.Contains("target_modules", e.Message);
        var excluded = Config("q_proj", "embed_tokens", "conv") with { ExcludeModules = TargetModules.Of("conv") };
        Assert.Contains("exclude_modules", Assert.Throws<ModelMismatchException>(() => LoraFileCheck.Check(excluded, s_good, Path)).Message);
        LoraFileCheck.Check(Config("q_proj", "conv") with { TargetModules = TargetModules.AllLinearLayers }, s_good, Path);
    }
}
