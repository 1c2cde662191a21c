using System.Text.Json.Serialization;
using PeftSharp.Methods.ConvKernel;

namespace PeftSharp.Methods.LoraC;

/// <summary>
/// LoRA-C (Ding et al., "LoRA-C: Parameter-Efficient Fine-Tuning of Robust CNN for IoT Devices", arXiv 2410.16954), as
/// the reference (§16b, a reconstruction) defines it: the kernel unfolded to <c>C_out × (C_in·k_h·k_w)</c> and
/// <c>ΔK = s·B·A</c>, the layout of PEFT's conv LoRA. With <c>use_dora</c> it is DoRA-C. Not in PEFT: <c>peft_type</c>
/// <c>LORA_C</c>.
/// </summary>
public sealed record LoraCConfig : KernelLoraConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "LORA_C";

    [JsonIgnore]
    public override string PeftType => Type;
}
