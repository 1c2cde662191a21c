using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.LoraPro;

/// <summary>
/// LoRA-Pro (Wang et al., "Are Low-Rank Adapters Properly Optimized?", arXiv 2407.18242, ICLR 2025): LoRA's adapter
/// <c>y = W x + s · B A dropout(x)</c>, trained by <see cref="LoraProOptimizer"/>, which runs Adam on the equivalent
/// full-weight gradient and maps the step back onto A and B. PEFT has no LoRA-Pro, so <c>peft_type</c> is PeftSharp's
/// <c>LORA_PRO</c>; the LoRA keys keep PEFT's names and defaults, and the tensors are saved as <c>lora_A.weight</c> /
/// <c>lora_B.weight</c>, so the file is a PEFT LoRA adapter once <c>peft_type</c> reads <c>LORA</c>.
/// The LoRA keys (<see cref="RsLoraKeysConfig"/>) keep PEFT's defaults; the official LoRA-Pro scripts use α = 16 with r = 8
/// and no dropout. With dropout the LoRA gradients no longer come from one full-weight gradient, so the adjustment is
/// then an approximation. The adjustment uses the config's s (the official optimizer hard-codes 16/8).
/// </summary>
public sealed record LoraProConfig : RsLoraKeysConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "LORA_PRO";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary><c>true</c> (A Kaiming-uniform, B = 0) or <c>"gaussian"</c> (A ~ N(0, 1/r²), B = 0); LoRA-Pro needs B = 0 at init.</summary>
    [JsonPropertyName("init_lora_weights")]
    public InitLoraWeights InitLoraWeights { get; init; } = InitLoraWeights.Default;

    /// <summary>δ in the regularised inverses <c>pinv(BᵀB + δI)</c>, <c>pinv(AAᵀ + δI)</c> (official code: 1e-8).</summary>
    [JsonPropertyName("pinv_delta")]
    public double PinvDelta { get; init; } = 1e-8;

    /// <summary>Adam β1, β2 of the equivalent-gradient moments (official: 0.9, 0.999).</summary>
    [JsonPropertyName("adam_betas")]
    public IReadOnlyList<double> AdamBetas { get; init; } = [0.9, 0.999];

    /// <summary>Adam ε, added after the bias-corrected square root (official: 1e-8).</summary>
    [JsonPropertyName("adam_eps")]
    public double AdamEps { get; init; } = 1e-8;

    public override void Validate()
    {
        base.Validate();
        if (InitLoraWeights != InitLoraWeights.Default && InitLoraWeights != InitLoraWeights.Gaussian)
        {
            throw new ConfigException($"init_lora_weights must be true or \"gaussian\" (LoRA-Pro starts from B = 0), got {(object?)InitLoraWeights.Method ?? InitLoraWeights.Flag}");
        }
        if (PinvDelta < 0 || !double.IsFinite(PinvDelta))
        {
            throw new ConfigException($"pinv_delta must be >= 0, got {PinvDelta}");
        }
        if (AdamBetas.Count != 2 || AdamBetas.Any(b => b is < 0 or >= 1 || double.IsNaN(b)))
        {
            throw new ConfigException($"adam_betas must be two numbers in [0, 1), got [{string.Join(", ", AdamBetas)}]");
        }
        if (AdamEps < 0 || !double.IsFinite(AdamEps))
        {
            throw new ConfigException($"adam_eps must be >= 0, got {AdamEps}");
        }
    }
}
