using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.AlLora;

/// <summary>
/// ALLoRA (Huang &amp; Balestriero, "ALLoRA: Adaptive Learning Rate Mitigates LoRA Fatal Flaws", arXiv 2410.09692):
/// LoRA without dropout and without the scale factor, <c>y = W x + B A x</c>, whose gradients are scaled per row θ_i of
/// A <c>[r, d_in]</c> and of B <c>[d_out, r]</c> by <c>1/√(‖θ_i‖² + 1/η²)</c> before the optimizer (<see cref="AlLoraFactor"/>).
/// No official code exists and only the abstract was readable: the squared, per-step form is the reference's
/// reconstruction and the default; the other published reading (unsquared norm, factor fixed at the first step) is
/// selectable through <c>factor_norm</c> and <c>factor_update</c>. PEFT has no ALLoRA, so <c>peft_type</c> is
/// PeftSharp's <c>ALLORA</c>; tensors are saved as PEFT LoRA's <c>lora_A.weight</c> / <c>lora_B.weight</c> (a PEFT LoRA with
/// <c>lora_alpha = r</c> loads them unchanged).
/// </summary>
public sealed record AlLoraConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "ALLORA";

    /// <summary><c>factor_norm</c>: <c>1/√(‖θ_i‖₂² + 1/η²)</c> (default).</summary>
    public const string SquaredNorm = "squared";

    /// <summary><c>factor_norm</c>: <c>1/√(‖θ_i‖₂ + 1/η²)</c> (the third-party "Automagic" optimizers citing ALLoRA).</summary>
    public const string UnsquaredNorm = "unsquared";

    /// <summary><c>factor_update</c>: recompute the factor from the current weights before every step (default).</summary>
    public const string EveryStep = "every_step";

    /// <summary><c>factor_update</c>: compute it once, from the weights at the first step, and keep it (third-party reading).</summary>
    public const string FirstStep = "first_step";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r (default 8, as PEFT's LoRA). There is no α and no dropout: ALLoRA removes both.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>
    /// η, the factor's bound: a zero row (B at init) gets factor η. Default 2, the only value seen (a third-party optimizer's
    /// default); the paper's value is unverified.
    /// </summary>
    [JsonPropertyName("eta")]
    public double Eta { get; init; } = 2;

    /// <summary><c>"squared"</c> (default) or <c>"unsquared"</c>: whether the row norm enters the factor squared.</summary>
    [JsonPropertyName("factor_norm")]
    public string FactorNorm { get; init; } = SquaredNorm;

    /// <summary><c>"every_step"</c> (default) or <c>"first_step"</c>: when the factor is computed.</summary>
    [JsonPropertyName("factor_update")]
    public string FactorUpdate { get; init; } = EveryStep;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Eta <= 0 || !double.IsFinite(Eta))
        {
            throw new ConfigException($"eta must be > 0, got {Eta}");
        }
        if (FactorNorm is not (SquaredNorm or UnsquaredNorm))
        {
            throw new ConfigException($"factor_norm must be \"{SquaredNorm}\" or \"{UnsquaredNorm}\", got \"{FactorNorm}\"");
        }
        if (FactorUpdate is not (EveryStep or FirstStep))
        {
            throw new ConfigException($"factor_update must be \"{EveryStep}\" or \"{FirstStep}\", got \"{FactorUpdate}\"");
        }
    }
}
