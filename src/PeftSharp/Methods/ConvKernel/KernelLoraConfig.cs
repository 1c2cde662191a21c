using System.Text.Json.Serialization;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.ConvKernel;

/// <summary>
/// The keys the convolution-kernel LoRAs share (LoRA-C, convLoRA, CP-LoRA; reference §16b). They are LoRA variants, so
/// they use LoRA's key names: <c>r</c>, <c>lora_alpha</c> (scale <c>s = lora_alpha / r</c>), <c>lora_dropout</c>,
/// <c>init_lora_weights</c>, and <c>use_dora</c>, which turns each into its DoRA counterpart (DoRA-C, convDoRA, CP-DoRA)
/// exactly as PEFT turns LoRA into DoRA. <c>r</c>, <c>lora_alpha</c> and <c>lora_dropout</c> are
/// <see cref="LoraKeysConfig"/>'s; r is the rank of the kernel update (CP-LoRA: the number of rank-one terms R).
/// </summary>
public abstract record KernelLoraConfig : LoraKeysConfig
{
    /// <summary>
    /// DoRA on top (Liu et al., arXiv 2402.09353): <c>K' = m ⊙ (K + ΔK) / ‖K + ΔK‖</c>, the norm per output channel and
    /// detached, the magnitude <c>lora_magnitude_vector</c> trained (default false).
    /// </summary>
    [JsonPropertyName("use_dora")]
    public bool UseDora { get; init; }

    /// <summary><c>true</c> (default): one factor starts at zero, so the output equals the base; <c>false</c>: every factor random.</summary>
    [JsonPropertyName("init_lora_weights")]
    public bool InitLoraWeights { get; init; } = true;
}
