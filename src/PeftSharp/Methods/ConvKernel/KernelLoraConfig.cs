using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.ConvKernel;

/// <summary>
/// The keys the convolution-kernel LoRAs share (LoRA-C, convLoRA, CP-LoRA; reference §16b). They are LoRA variants, so
/// they use LoRA's key names: <c>r</c>, <c>lora_alpha</c> (scale <c>s = lora_alpha / r</c>), <c>lora_dropout</c>,
/// <c>init_lora_weights</c>, and <c>use_dora</c>, which turns each into its DoRA counterpart (DoRA-C, convDoRA, CP-DoRA)
/// exactly as PEFT turns LoRA into DoRA.
/// </summary>
public abstract record KernelLoraConfig : AdapterConfig
{
    /// <summary>Rank r of the kernel update (CP-LoRA: the number of rank-one terms R). Default 8, as PEFT's LoRA.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator α: the kernel update is multiplied by <c>α / r</c> (default 8).</summary>
    [JsonPropertyName("lora_alpha")]
    public double Alpha { get; init; } = 8;

    /// <summary>Dropout on the adapter's input, training only (default 0).</summary>
    [JsonPropertyName("lora_dropout")]
    public double Dropout { get; init; }

    /// <summary>
    /// DoRA on top (Liu et al., arXiv 2402.09353): <c>K' = m ⊙ (K + ΔK) / ‖K + ΔK‖</c>, the norm per output channel and
    /// detached, the magnitude <c>lora_magnitude_vector</c> trained (default false).
    /// </summary>
    [JsonPropertyName("use_dora")]
    public bool UseDora { get; init; }

    /// <summary><c>true</c> (default): one factor starts at zero, so the output equals the base; <c>false</c>: every factor random.</summary>
    [JsonPropertyName("init_lora_weights")]
    public bool InitLoraWeights { get; init; } = true;

    /// <summary>The factor on the composed kernel update: <c>lora_alpha / r</c>.</summary>
    [JsonIgnore]
    public double Scaling => Alpha / Rank;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (!(Alpha > 0) || !double.IsFinite(Alpha))
        {
            throw new ConfigException($"lora_alpha must be a finite number > 0, got {Alpha}");
        }
        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ConfigException($"lora_dropout must be in [0, 1), got {Dropout}");
        }
    }
}
