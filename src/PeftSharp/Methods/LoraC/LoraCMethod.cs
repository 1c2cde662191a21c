using PeftSharp.Core;

namespace PeftSharp.Methods.LoraC;

/// <summary>Registry entry for LoRA-C and, with <c>use_dora</c>, DoRA-C (<c>LORA_C</c>; not in PEFT).</summary>
public sealed class LoraCMethod : IAdapterMethod
{
    /// <summary><c>--method dora-c</c>: this method with <c>use_dora</c>.</summary>
    public static MethodPreset DoraPreset { get; } = new("dora-c", LoraCConfig.Type,
        "DoRA-C: DoRA on the LoRA-C kernel update (use_dora on LORA_C)", "r·(C_in·k_h·k_w + C_out) + C_out (Linear: r·(d_in + d_out) + d_out)", () => new LoraCConfig { UseDora = true });

    public string Name => "lora-c";

    public string PeftType => LoraCConfig.Type;

    public string Description => "Conv kernel unfolded to C_out × (C_in·k_h·k_w), update s·B·A (LoRA-C, arXiv 2410.16954, as reconstructed); DoRA-C with use_dora";

    public string ParameterCountFormula => "r·(C_in·k_h·k_w + C_out) (Linear: r·(d_in + d_out)); use_dora: + C_out";

    public Type ConfigType => typeof(LoraCConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Conv2d or BaseLayerKind.Linear;

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoraCLayer(layer);
}
