using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.LolDu;

/// <summary>
/// LoLDU (arXiv 2410.13618): the pivoted LU of the frozen weight rewritten as <c>W = P L diag(D) U</c> (L, U unit
/// triangular); the first r components form a frozen basis and only their r diagonal entries z train:
/// <c>W' = W + σ · P L_r diag(z − z₀) U_r</c>, <c>σ = lora_alpha / r</c>, z₀ = D[:r]. PEFT has no LoLDU, so
/// <c>peft_type</c> is PeftSharp's <c>LOLDU</c>.
/// </summary>
public sealed record LolDuConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "LOLDU";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r: how many LU components train (one scalar each). Default 8, as PEFT's LoRA.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator α, <c>σ = α / r</c>. Default 1, as the official <c>LoLDUParametrization.from_linear</c>.</summary>
    [JsonPropertyName("lora_alpha")]
    public double Alpha { get; init; } = 1;

    /// <summary>The scale σ applied to the LU term.</summary>
    [JsonIgnore]
    public double Scaling => Alpha / Rank;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Alpha <= 0 || !double.IsFinite(Alpha))
        {
            throw new ConfigException($"lora_alpha must be > 0, got {Alpha}");
        }
    }
}
