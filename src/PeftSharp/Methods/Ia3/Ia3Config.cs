using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Ia3;

/// <summary>
/// (IA)³ (Liu et al. 2022, arXiv 2205.05638): a learned vector rescales a layer's activations, its output
/// (<c>y = l ⊙ (W x + b)</c>) or, on a feed-forward module, its input (<c>y = W (l ⊙ x) + b</c>). Keys and defaults are
/// PEFT's <c>IA3Config</c>.
/// </summary>
public sealed record Ia3Config : AdapterConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "IA3";

    /// <summary>
    /// PEFT's feed-forward modules of the model types PeftSharp loads (its TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING
    /// for llama, mistral, qwen2, gpt2 and bert), used when <see cref="FeedforwardModules"/> is null as PEFT fills it in.
    /// </summary>
    public static IReadOnlyList<string> DefaultFeedforward { get; } = ["down_proj", "mlp.c_proj", "output.dense"];

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>
    /// Targets whose input, not output, is rescaled; must be among <see cref="AdapterConfig.TargetModules"/> when both are
    /// lists. PEFT: <c>feedforward_modules</c>.
    /// </summary>
    [JsonPropertyName("feedforward_modules")]
    public TargetModules? FeedforwardModules { get; init; }

    /// <summary>True when the target stores its weight as <c>[in, out]</c> (GPT-2 Conv1D). PEFT: <c>fan_in_fan_out</c>.</summary>
    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary><c>true</c> (default): every scale starts at 1, so the output equals the base; <c>false</c>: N(0, 1). PEFT: <c>init_ia3_weights</c>.</summary>
    [JsonPropertyName("init_ia3_weights")]
    public bool InitIa3Weights { get; init; } = true;

    /// <summary>Resolved per module by <see cref="ForModule"/>: whether this module is a feed-forward one.</summary>
    [JsonIgnore]
    public bool IsFeedforward { get; init; }

    public override AdapterConfig ForModule(string qualifiedName) => this with
    {
        IsFeedforward = FeedforwardModules?.Matches(qualifiedName)
            ?? DefaultFeedforward.Any(n => qualifiedName == n || qualifiedName.EndsWith("." + n, StringComparison.Ordinal)),
    };

    public override void Validate()
    {
        base.Validate();
        if (FeedforwardModules?.Names is { } ff && TargetModules?.Names is { } targets && !ff.All(targets.Contains))
        {
            throw new ConfigException(
                $"feedforward_modules [{string.Join(", ", ff)}] must be a subset of target_modules [{string.Join(", ", targets)}] (as in PEFT)");
        }
    }
}
