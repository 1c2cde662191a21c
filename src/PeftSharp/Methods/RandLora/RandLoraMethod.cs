using PeftSharp.Core;

namespace PeftSharp.Methods.RandLora;

/// <summary>Registry entry for RandLoRA (PEFT <c>RANDLORA</c>).</summary>
public sealed class RandLoraMethod : IAdapterMethod
{
    public string Name => "randlora";

    public string PeftType => RandLoraConfig.Type;

    public string Description => "Full-rank update from frozen random bases shared by all layers; trains diagonal scalings λ, γ (Albert et al. 2025, arXiv 2502.00987)";

    public string ParameterCountFormula => "n·r + n·min(d_in, d_out), n = ⌈min(d_in, d_out) / r⌉";

    public Type ConfigType => typeof(RandLoraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new RandLoraLayer(layer);

    /// <summary>Draws the adapter's shared <c>randlora_A</c> / <c>randlora_B</c>, sized by the largest target (PEFT's <c>_find_dim</c>).</summary>
    public AdapterConfig PrepareAdapter(AdapterConfig config, IReadOnlyList<BaseLayer> targets)
    {
        var c = (RandLoraConfig)config;
        return c with { Bases = RandLoraBases.Create(c, targets) };
    }
}
