using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.LoraXs;

/// <summary>
/// LoRA-XS (Bałazy et al., arXiv 2405.17604): <c>y = W x + s · B R A dropout(x)</c> with B and A frozen at the truncated
/// SVD of W (<c>B = U_r</c>, <c>A = Σ_r V_rᵀ</c>) and only the r×r matrix R trained; <c>s = lora_alpha / r</c>. PEFT has no
/// LoRA-XS, so <c>peft_type</c> is PeftSharp's <c>LORA_XS</c>; the keys keep LoRA's names, meanings and defaults
/// (<see cref="LoraKeysConfig"/>): r is the number of singular directions kept (R is r×r), and s scales B·R·A.
/// </summary>
public sealed record LoraXsConfig : LoraKeysConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "LORA_XS";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>
    /// <c>true</c> (default): R = 0, so the output equals the base exactly at init (the gradient of R is still non-zero).
    /// <c>false</c>: R ~ N(0, 1e-5²), the official repository's init (the output moves by about 1e-5 relative).
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

}
