using PeftSharp.Core;
using PeftSharp.Training;

namespace PeftSharp.Methods.DyLora;

/// <summary>
/// Registry entry for DyLoRA (PeftSharp type <c>DYLORA</c>; not in PEFT). Its hook (<see cref="DyLoraHooks"/>) samples one
/// rank per optimizer step for every layer of the adapter.
/// </summary>
public sealed class DyLoraMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "dylora";

    public string PeftType => DyLoraConfig.Type;

    public string Description => "LoRA trained with a random rank b per step (scale α/b) so every prefix rank works at inference (Valipour et al. 2023, arXiv 2210.07558)";

    public string ParameterCountFormula => "r·(d_in + d_out)";

    public Type ConfigType => typeof(DyLoraConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new DyLoraLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new DyLoraHooks(model, adapterName);
}
