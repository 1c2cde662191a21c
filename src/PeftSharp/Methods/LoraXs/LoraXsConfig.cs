using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.LoraXs;

/// <summary>
/// LoRA-XS (Bałazy et al., arXiv 2405.17604): <c>y = W x + s · B R A dropout(x)</c> with B and A frozen at the truncated
/// SVD of W (<c>B = U_r</c>, <c>A = Σ_r V_rᵀ</c>) and only the r×r matrix R trained; <c>s = lora_alpha / r</c>. PEFT has no
/// LoRA-XS, so <c>peft_type</c> is PeftSharp's <c>LORA_XS</c>; the keys keep LoRA's names and meanings.
/// </summary>
public sealed record LoraXsConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "LORA_XS";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r: the number of singular directions kept; R is r×r (default 8, as PEFT's LoRA).</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator α, <c>s = α / r</c> (default 8, as PEFT's LoRA).</summary>
    [JsonPropertyName("lora_alpha")]
    public double Alpha { get; init; } = 8;

    /// <summary>Dropout probability on the adapter input only (default 0).</summary>
    [JsonPropertyName("lora_dropout")]
    public double Dropout { get; init; }

    /// <summary>
    /// <c>true</c> (default): R = 0, so the output equals the base exactly at init (the gradient of R is still non-zero).
    /// <c>false</c>: R ~ N(0, 1e-5²), the official repository's init (the output moves by about 1e-5 relative).
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    /// <summary>The scale s applied to B·R·A.</summary>
    [JsonIgnore]
    public double Scaling => Alpha / Rank;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Alpha <= 0 || double.IsNaN(Alpha))
        {
            throw new ConfigException($"lora_alpha must be > 0, got {Alpha}");
        }
        if (Dropout < 0 || Dropout >= 1 || double.IsNaN(Dropout))
        {
            throw new ConfigException($"lora_dropout must be in [0, 1), got {Dropout}");
        }
    }
}
