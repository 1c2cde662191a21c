using PeftSharp.Core;

namespace PeftSharp.Methods.Hydra;

/// <summary>Registry entry for Hydra (<c>HYDRA</c>; not in PEFT).</summary>
public sealed class HydraMethod : IAdapterMethod
{
    public string Name => "hydra";

    public string PeftType => HydraConfig.Type;

    public string Description => "Parallel low-rank branch on the input plus sequential low-rank branch on the output (Hydra, arXiv 2309.06922)";

    public string ParameterCountFormula => "r_p·(d_in + d_out) + 2·r_s·d_out; with hydra_bias + r_p + r_s + 2·d_out";

    public Type ConfigType => typeof(HydraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new HydraLayer(layer);
}
