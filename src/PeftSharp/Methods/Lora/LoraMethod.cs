using PeftSharp.Core;

namespace PeftSharp.Methods.Lora;

/// <summary>Registry entry for LoRA (PEFT <c>LORA</c>).</summary>
public sealed class LoraMethod(params Func<LoraConfig, ILoraVariant?>[] variants) : IAdapterMethod
{
    /// <summary>Variant factories (e.g. DoRA for <c>use_dora</c>); each returns null for configs it does not handle.</summary>
    public IReadOnlyList<Func<LoraConfig, ILoraVariant?>> Variants { get; } = variants;

    /// <summary><c>--method pissa</c>: LoRA initialised on the principal singular vectors (arXiv 2404.02948).</summary>
    public static MethodPreset PissaPreset { get; } = new("pissa", LoraConfig.Type,
        "LoRA initialised from the top-r SVD of W; the base keeps the residual (Meng et al. 2024, arXiv 2404.02948)",
        "r·(d_in + d_out)", () => new LoraConfig { InitLoraWeights = InitLoraWeights.Pissa });

    /// <summary><c>--method olora</c>: LoRA initialised from a thin QR of W (arXiv 2406.01775).</summary>
    public static MethodPreset OloraPreset { get; } = new("olora", LoraConfig.Type,
        "LoRA initialised from the thin QR of W; the base keeps the residual (Büyükakyüz 2024, arXiv 2406.01775)",
        "r·(d_in + d_out)", () => new LoraConfig { InitLoraWeights = InitLoraWeights.Olora });

    public string Name => "lora";

    public string PeftType => LoraConfig.Type;

    public string Description => "Low-rank update s·B·A on frozen weights (Hu et al. 2021, arXiv 2106.09685); rsLoRA, PiSSA, OLoRA inits; DoRA with use_dora";

    public string ParameterCountFormula => "r·(d_in + d_out)";

    public Type ConfigType => typeof(LoraConfig);

    public bool Supports(BaseLayer layer) => true;

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoraLayer(layer, Variants);
}
