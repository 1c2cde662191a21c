using PeftSharp.Core;
using PeftSharp.Training;

namespace PeftSharp.Methods.Diffora;

/// <summary>Registry entry for DiffoRA (PeftSharp type <c>DIFFORA</c>; saved as <c>LORA</c> once discretised).</summary>
public sealed class DifforaMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "diffora";

    public string PeftType => DifforaConfig.Type;

    public string Description => "LoRA on the modules a differentiable search selects: gates γ = sigmoid(ω) relaxed, then top-K kept (Jiang et al. 2025, arXiv 2502.08905)";

    public string ParameterCountFormula => "search: r·(d_in + d_out) + 1 per candidate; after: r·(d_in + d_out) per kept module";

    public Type ConfigType => typeof(DifforaConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new DifforaLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) =>
        model.Configs.TryGetValue(adapterName, out var c) && c is DifforaConfig config ? new DifforaSearch(model, adapterName, config) : null;
}
