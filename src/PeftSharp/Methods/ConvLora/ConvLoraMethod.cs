using PeftSharp.Core;

namespace PeftSharp.Methods.ConvLora;

/// <summary>Registry entry for convLoRA and, with <c>use_dora</c>, convDoRA (<c>CONV_LORA</c>; not in PEFT).</summary>
public sealed class ConvLoraMethod : IAdapterMethod
{
    /// <summary><c>--method conv-dora</c>: this method with <c>use_dora</c>.</summary>
    public static MethodPreset DoraPreset { get; } = new("conv-dora", ConvLoraConfig.Type,
        "convDoRA: DoRA on the convLoRA kernel update (use_dora on CONV_LORA)", "r·k²·(C_in + C_out/groups) + C_out (Linear: r·(d_in + d_out) + d_out)", () => new ConvLoraConfig { UseDora = true });

    public string Name => "conv-lora";

    public string PeftType => ConvLoraConfig.Type;

    public string Description => "loralib's ConvLoRA: (B·A) of [C_out/g·k, r·k]·[r·k, C_in·k] viewed as the kernel; convDoRA with use_dora";

    public string ParameterCountFormula => "r·k²·(C_in + C_out/groups) (Linear: r·(d_in + d_out)); use_dora: + C_out";

    public Type ConfigType => typeof(ConvLoraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Conv2d or BaseLayerKind.Linear;

    public AdapterLayer CreateLayer(BaseLayer layer) => new ConvLoraLayer(layer);
}
