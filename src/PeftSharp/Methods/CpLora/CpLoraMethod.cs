using PeftSharp.Core;

namespace PeftSharp.Methods.CpLora;

/// <summary>Registry entry for CP-LoRA and, with <c>use_dora</c>, CP-DoRA (<c>CP_LORA</c>; not in PEFT).</summary>
public sealed class CpLoraMethod : IAdapterMethod
{
    /// <summary><c>--method cp-dora</c>: this method with <c>use_dora</c>.</summary>
    public static MethodPreset DoraPreset { get; } = new("cp-dora", CpLoraConfig.Type,
        "CP-DoRA: DoRA on the CP-decomposed kernel update (use_dora on CP_LORA)", "R·(C_out + C_in/groups + k_h + k_w) + C_out (Linear: R·(d_in + d_out) + d_out)", () => new CpLoraConfig { UseDora = true });

    public string Name => "cp-lora";

    public string PeftType => CpLoraConfig.Type;

    public string Description => "Conv kernel update as a rank-R CP tensor over (C_out, C_in, k_h, k_w) (CP-LoRA, arXiv 2508.01772, reconstructed); CP-DoRA with use_dora";

    public string ParameterCountFormula => "R·(C_out + C_in/groups + k_h + k_w) (Linear: R·(d_in + d_out)); use_dora: + C_out";

    public Type ConfigType => typeof(CpLoraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Conv2d or BaseLayerKind.Linear;

    public AdapterLayer CreateLayer(BaseLayer layer) => new CpLoraLayer(layer);
}
