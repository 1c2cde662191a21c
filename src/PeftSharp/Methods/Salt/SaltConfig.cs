using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Salt;

/// <summary>
/// SALT, Singular Value Adaptation with Low-Rank Transformation (arXiv 2503.16055): from the SVD <c>W = U diag(σ) Vᵀ</c>,
/// the top t singular values get a trained scale and shift, the remaining k − t a rank-r LoRA block X·Y in singular
/// coordinates, and the weight becomes <c>U ReLU(Σ') Vᵀ</c>. PEFT has no SALT, so <c>peft_type</c> is PeftSharp's
/// <c>SALT</c>; <c>r</c> is the LoRA rank of the residual block (official <c>r_lora</c>).
/// </summary>
public sealed record SaltConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "SALT";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank of the LoRA block X·Y on the residual singular values (official <c>r_lora</c>). Default 8, as PEFT's LoRA.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>
    /// Fraction of the k = min(d_in, d_out) singular values that get a scale and a shift: t = max(1, ⌊k · salt_ratio⌋)
    /// (official <c>ratio_salt</c>; default 0.1, the value its SAM2 backbone ships with).
    /// </summary>
    [JsonPropertyName("salt_ratio")]
    public double Ratio { get; init; } = 0.1;

    /// <summary>
    /// <c>true</c> (default, the official Linear init): scale 1, shift 0, X He-uniform (bound √(6/r)), Y = 0, so the output
    /// equals the base at init. <c>false</c>: X, Y ~ N(0, 0.01²), the official Conv2d init, which is not the identity.
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    /// <summary>How many of <paramref name="k"/> singular values get a scale and shift: <c>max(1, ⌊k · salt_ratio⌋)</c>, at most k.</summary>
    public int TopCount(long k) => (int)Math.Min(k, Math.Max(1, (long)Math.Floor(k * Ratio)));

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (!(Ratio > 0 && Ratio <= 1))
        {
            throw new ConfigException($"salt_ratio must be in (0, 1], got {Ratio}");
        }
    }
}
