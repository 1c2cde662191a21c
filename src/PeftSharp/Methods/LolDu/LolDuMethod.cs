using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;

namespace PeftSharp.Methods.LolDu;

/// <summary>Registry entry for LoLDU (PeftSharp type <c>LOLDU</c>; not in PEFT).</summary>
public sealed class LolDuMethod : IAdapterMethod
{
    public string Name => "loldu";

    public string PeftType => LolDuConfig.Type;

    public string Description => "Trains only r diagonal entries z of the pivoted LU W = P·L·diag(D)·U of the frozen weight (arXiv 2410.13618)";

    public string ParameterCountFormula => "r";

    public Type ConfigType => typeof(LolDuConfig);

    public bool Supports(BaseLayer layer) => WeightFactors.IsLinearLike(layer);

    public AdapterLayer CreateLayer(BaseLayer layer) => new LolDuLayer(layer);
}
