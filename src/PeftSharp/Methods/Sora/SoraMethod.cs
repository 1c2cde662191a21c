using PeftSharp.Core;
using PeftSharp.Training;

namespace PeftSharp.Methods.Sora;

/// <summary>
/// Registry entry for SoRA (PeftSharp type <c>SORA</c>; not in PEFT). Its training hooks (<see cref="SoraHooks"/>) give the
/// gates their own AdamW, add the L1 term and threshold the gates after every optimizer step.
/// </summary>
public sealed class SoraMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "sora";

    public string PeftType => SoraConfig.Type;

    public string Description => "LoRA with a gate vector between A and B, sparsified by a proximal L1 step; prunes to a plain LoRA of the surviving rank (Ding et al. 2023, arXiv 2311.11696)";

    public string ParameterCountFormula => "r·(d_in + d_out) + r (pruned: |K|·(d_in + d_out))";

    public Type ConfigType => typeof(SoraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new SoraLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new SoraHooks(model, adapterName);
}
