using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;

namespace PeftSharp.Methods.LoraXs;

/// <summary>Registry entry for LoRA-XS (PeftSharp type <c>LORA_XS</c>; not in PEFT).</summary>
public sealed class LoraXsMethod : IAdapterMethod
{
    public string Name => "lora-xs";

    public string PeftType => LoraXsConfig.Type;

    public string Description => "Trains only an r×r matrix R between frozen truncated-SVD factors of W, s·U_r·R·Σ_rV_rᵀ (Bałazy et al., arXiv 2405.17604)";

    public string ParameterCountFormula => "r²";

    public Type ConfigType => typeof(LoraXsConfig);

    public bool Supports(BaseLayer layer) => WeightFactors.IsLinearLike(layer);

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoraXsLayer(layer);
}
