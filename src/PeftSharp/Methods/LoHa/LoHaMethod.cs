using PeftSharp.Core;

namespace PeftSharp.Methods.LoHa;

/// <summary>Registry entry for LoHa (PEFT <c>LOHA</c>).</summary>
public sealed class LoHaMethod : IAdapterMethod
{
    public string Name => "loha";

    public string PeftType => LoHaConfig.Type;

    public string Description => "Hadamard product of two rank-r updates, (W1a·W1b)⊙(W2a·W2b)·alpha/r (FedPara, arXiv 2108.06098; LyCORIS)";

    public string ParameterCountFormula => "2r·(d_in + d_out); Conv2d: 2r·(C_out + C_in·k_h·k_w), effective conv: 2r·(C_out + C_in) + 2r²·k_h·k_w";

    public Type ConfigType => typeof(LoHaConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv2d;

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoHaLayer(layer);
}
