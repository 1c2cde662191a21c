using PeftSharp.Core;

namespace PeftSharp.Methods.Vera;

/// <summary>Registry entry for VeRA (PEFT <c>VERA</c>).</summary>
public sealed class VeraMethod : IAdapterMethod
{
    public string Name => "vera";

    public string PeftType => VeraConfig.Type;

    public string Description => "Per-layer scaling vectors λ_b, λ_d around frozen random projections shared by all layers (Kopiczko et al. 2023, arXiv 2310.11454)";

    public string ParameterCountFormula => "d_out + r";

    public Type ConfigType => typeof(VeraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new VeraLayer(layer);

    /// <summary>Draws the adapter's shared <c>vera_A</c> / <c>vera_B</c>, sized by the largest target (PEFT's <c>_find_dim</c>).</summary>
    public AdapterConfig PrepareAdapter(AdapterConfig config, IReadOnlyList<BaseLayer> targets)
    {
        var c = (VeraConfig)config;
        return c with { Projections = VeraProjections.Create(c, targets) };
    }
}
