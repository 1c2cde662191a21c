using PeftSharp.Core;

namespace PeftSharp.Methods.TLora;

/// <summary>Registry entry for Transformed LoRA (<c>TLORA</c>; not in PEFT).</summary>
public sealed class TLoraMethod : IAdapterMethod
{
    public string Name => "tlora";

    public string PeftType => TLoraConfig.Type;

    public string Description => "Full-rank TT-format transform W·T plus a TR-format residual (Transformed LoRA, arXiv 2501.08727, reconstructed)";

    public string ParameterCountFormula => "Σ_k ρ_{k−1}·n_k²·ρ_k + Σ_k q²·o_k·i_k (d_in = Π n_k = Π i_k, d_out = Π o_k, ρ₀ = ρ_K = 1)";

    public Type ConfigType => typeof(TLoraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new TLoraLayer(layer);
}
