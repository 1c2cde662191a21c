using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using PeftSharp.Core;

namespace PeftSharp.Methods.Lycoris;

/// <summary>
/// The keys LoHa and LoKr share, as PEFT's <c>LycorisConfig</c> and the fields both of its subclasses declare:
/// rank <c>r</c>, <c>alpha</c> (scale <c>alpha / r</c>), the two training-only dropouts, <c>use_effective_conv2d</c> and
/// the per-module <c>rank_pattern</c> / <c>alpha_pattern</c>.
/// </summary>
public abstract record LycorisConfig : AdapterConfig
{
    /// <summary>Rank r of the factors (PEFT default 8). PEFT: <c>r</c>.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator: ΔW is multiplied by <c>alpha / r</c> (PEFT default 8). PEFT: <c>alpha</c>.</summary>
    [JsonPropertyName("alpha")]
    public double Alpha { get; init; } = 8;

    /// <summary>
    /// Training only: the probability that one output row of ΔW is zeroed for a forward pass (PEFT default 0). PEFT:
    /// <c>rank_dropout</c>. Despite its name it drops rows of the update, not ranks.
    /// </summary>
    [JsonPropertyName("rank_dropout")]
    public double RankDropout { get; init; }

    /// <summary>Training only: the probability that the whole adapter is skipped for a forward pass (PEFT default 0). PEFT: <c>module_dropout</c>.</summary>
    [JsonPropertyName("module_dropout")]
    public double ModuleDropout { get; init; }

    /// <summary>
    /// Conv2d with a kernel larger than 1×1: factor the kernel with a small r×r×k_h×k_w core (FedPara "Proposition 3")
    /// instead of flattening it into the input dimension (PEFT default false). PEFT: <c>use_effective_conv2d</c>.
    /// </summary>
    [JsonPropertyName("use_effective_conv2d")]
    public bool UseEffectiveConv2d { get; init; }

    /// <summary>Per-module rank overrides; a key (a regex) matches the end of the module name. PEFT: <c>rank_pattern</c>.</summary>
    [JsonPropertyName("rank_pattern")]
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Per-module alpha overrides, matched as <see cref="RankPattern"/>. PEFT: <c>alpha_pattern</c>.</summary>
    [JsonPropertyName("alpha_pattern")]
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>The factor ΔW is multiplied by: <c>alpha / r</c>.</summary>
    [JsonIgnore]
    public double Scaling => Alpha / Rank;

    /// <summary>Whether the rank-dropout mask is divided by its mean (LoHa always; LoKr with <c>rank_dropout_scale</c>).</summary>
    [JsonIgnore]
    public abstract bool RescalesRankDropout { get; }

    public override AdapterConfig ForModule(string qualifiedName)
    {
        var rank = PatternKeys.Find(RankPattern, qualifiedName);
        var alpha = PatternKeys.Find(AlphaPattern, qualifiedName);
        return rank is null && alpha is null ? this : this with { Rank = rank ?? Rank, Alpha = alpha ?? Alpha };
    }


    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (!double.IsFinite(Alpha))
        {
            throw new ConfigException($"alpha must be a finite number, got {Alpha}");
        }
        // p = 1 would zero every row, and LoHa's mean rescaling would then divide by zero.
        if (!(RankDropout >= 0 && RankDropout < 1))
        {
            throw new ConfigException($"rank_dropout must be in [0, 1), got {RankDropout}");
        }
        if (!(ModuleDropout >= 0 && ModuleDropout <= 1))
        {
            throw new ConfigException($"module_dropout must be in [0, 1], got {ModuleDropout}");
        }
        PatternKeys.ValidateRanks(RankPattern);
        foreach (var (key, a) in AlphaPattern)
        {
            if (!double.IsFinite(a))
            {
                throw new ConfigException($"alpha_pattern[\"{key}\"] must be a finite number, got {a}");
            }
        }
        if (LayersPattern is { Count: > 0 } && LayersToTransform is not { Count: > 0 })
        {
            throw new ConfigException("layers_pattern is set but layers_to_transform is not; give both or neither");
        }
    }
}
