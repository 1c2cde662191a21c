using PeftSharp.Core;

namespace PeftSharp.Methods.LoKr;

/// <summary>Registry entry for LoKr (PEFT <c>LOKR</c>).</summary>
public sealed class LoKrMethod : IAdapterMethod
{
    public string Name => "lokr";

    public string PeftType => LoKrConfig.Type;

    public string Description => "Kronecker product update (W1 ⊗ W2)·alpha/r with optional low-rank sides (Edalati et al., arXiv 2212.10650; LyCORIS, arXiv 2309.14859)";

    public string ParameterCountFormula =>
        "a·c + b·d with (a, b) = factorization(d_out), (c, d) = factorization(d_in); a side written as a rank-r product counts r·(rows + cols)";

    public Type ConfigType => typeof(LoKrConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv2d;

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoKrLayer(layer);
}
