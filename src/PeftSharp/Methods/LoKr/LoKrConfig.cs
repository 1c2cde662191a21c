using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lycoris;

namespace PeftSharp.Methods.LoKr;

/// <summary>
/// LoKr, low-rank Kronecker product (Edalati et al., arXiv 2212.10650; LyCORIS, arXiv 2309.14859):
/// <c>ΔW = (W1 ⊗ W2) · alpha / r</c>, where each side may itself be a rank-r product. Keys and defaults are PEFT's
/// <c>LoKrConfig</c>.
/// </summary>
public sealed record LoKrConfig : LycorisConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "LOKR";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Also write the left factor W1 as a rank-r product when r is below half its larger side (PEFT default false). PEFT: <c>decompose_both</c>.</summary>
    [JsonPropertyName("decompose_both")]
    public bool DecomposeBoth { get; init; }

    /// <summary>
    /// How in/out dimensions are split into the two Kronecker sides: -1 (PEFT default) searches factors near the square
    /// root; k &gt; 0 makes k the first factor when it divides the dimension. PEFT: <c>decompose_factor</c>.
    /// </summary>
    [JsonPropertyName("decompose_factor")]
    public int DecomposeFactor { get; init; } = -1;

    /// <summary>Divide the rank-dropout mask by its mean (PEFT default false). PEFT: <c>rank_dropout_scale</c>.</summary>
    [JsonPropertyName("rank_dropout_scale")]
    public bool RankDropoutScale { get; init; }

    /// <summary>
    /// <c>true</c> (PEFT default): W1 (or W1a) = 0 and the rest Kaiming-uniform; <c>"lycoris"</c>: W2 (or W2b) = 0 and the
    /// rest Kaiming-uniform; <c>false</c>: everything random (not a no-op). PEFT: <c>init_weights</c>.
    /// </summary>
    [JsonPropertyName("init_weights")]
    public LoKrInit InitWeights { get; init; } = LoKrInit.Default;

    [JsonIgnore]
    public override bool RescalesRankDropout => RankDropoutScale;

    public override void Validate()
    {
        base.Validate();
        if (DecomposeFactor != -1 && DecomposeFactor <= 0)
        {
            throw new ConfigException($"decompose_factor must be -1 or > 0, got {DecomposeFactor}");
        }
    }
}

/// <summary>PEFT's LoKr <c>init_weights</c>: <c>true</c>, <c>false</c> or <c>"lycoris"</c>.</summary>
[JsonConverter(typeof(LoKrInitConverter))]
public enum LoKrInit
{
    /// <summary><c>true</c>: the left factor starts at zero.</summary>
    Default,

    /// <summary><c>false</c>: every factor random.</summary>
    Random,

    /// <summary><c>"lycoris"</c>: the right factor starts at zero, as the LyCORIS repository does.</summary>
    Lycoris,
}

internal sealed class LoKrInitConverter()
    : BoolOrNameConverter<LoKrInit>("init_weights", LoKrInit.Default, LoKrInit.Random, ("lycoris", LoKrInit.Lycoris));
