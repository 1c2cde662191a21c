using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;

namespace PeftSharp.Methods.Salt;

/// <summary>Registry entry for SALT (PeftSharp type <c>SALT</c>; not in PEFT). Linear and Conv1D only: the official Conv2d variant is not implemented.</summary>
public sealed class SaltMethod : IAdapterMethod
{
    public string Name => "salt";

    public string PeftType => SaltConfig.Type;

    public string Description => "Scale and shift of the top singular values plus a rank-r LoRA block on the rest, W' = U·ReLU(Σ')·Vᵀ (arXiv 2503.16055)";

    public string ParameterCountFormula => "2t + 2(k − t)·r, k = min(d_in, d_out), t = max(1, ⌊k·salt_ratio⌋)";

    public Type ConfigType => typeof(SaltConfig);

    public bool Supports(BaseLayer layer) => WeightFactors.IsLinearLike(layer);

    public AdapterLayer CreateLayer(BaseLayer layer) => new SaltLayer(layer);
}
