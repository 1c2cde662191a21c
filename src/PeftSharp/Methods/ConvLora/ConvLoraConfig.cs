using System.Text.Json.Serialization;
using PeftSharp.Methods.ConvKernel;

namespace PeftSharp.Methods.ConvLora;

/// <summary>
/// convLoRA: Microsoft loralib's <c>ConvLoRA</c> layout (reference §16b), <c>A [r·k, C_in·k]</c>,
/// <c>B [C_out/groups·k, r·k]</c>, <c>ΔK = s·(B·A).view(C_out, C_in/groups, k, k)</c> — a raw row-major re-view, not the
/// natural unfolding of LoRA-C. With <c>use_dora</c> it is convDoRA. Not in PEFT: <c>peft_type</c> <c>CONV_LORA</c>.
/// </summary>
public sealed record ConvLoraConfig : KernelLoraConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "CONV_LORA";

    [JsonIgnore]
    public override string PeftType => Type;
}
