using System.Text.Json.Serialization;
using PeftSharp.Methods.ConvKernel;

namespace PeftSharp.Methods.CpLora;

/// <summary>
/// CP-LoRA (Minoccheri, Hodgman et al., "LoRA-based methods on Unet for transfer learning in Subarachnoid Hematoma
/// Segmentation", arXiv 2508.01772): the kernel update as a rank-R canonical polyadic (CP) tensor,
/// <c>ΔK = s·Σⱼ aⱼ ∘ bⱼ ∘ cⱼ ∘ dⱼ</c> over (C_out, C_in, k_h, k_w); <c>r</c> is R. With <c>use_dora</c> it is CP-DoRA. The
/// factor layout and init are the reference's reconstruction (§16b). Not in PEFT: <c>peft_type</c> <c>CP_LORA</c>.
/// </summary>
public sealed record CpLoraConfig : KernelLoraConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "CP_LORA";

    [JsonIgnore]
    public override string PeftType => Type;
}
