using System.Text.Json.Serialization;
using PeftSharp.Methods.Lycoris;

namespace PeftSharp.Methods.LoHa;

/// <summary>
/// LoHa, low-rank Hadamard product (FedPara, Hyeon-Woo et al., arXiv 2108.06098; LyCORIS):
/// <c>ΔW = (W1a W1b) ⊙ (W2a W2b) · alpha / r</c>. Keys and defaults are PEFT's <c>LoHaConfig</c>.
/// </summary>
public sealed record LoHaConfig : LycorisConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "LOHA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>
    /// <c>true</c> (PEFT default): W1a, W1b, W2a (and the conv cores) Kaiming-uniform, W2b = 0, so the adapter starts as a
    /// no-op; <c>false</c>: W2b is random too (not a no-op). PEFT: <c>init_weights</c>.
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    /// <summary>LoHa always divides its rank-dropout mask by the mask's mean (PEFT has no switch for it).</summary>
    [JsonIgnore]
    public override bool RescalesRankDropout => true;
}
