using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using PeftSharp.Training;

namespace PeftSharp.Methods.LoraSb;

/// <summary>
/// Registry entry for LoRA-SB (PeftSharp type <c>LORA_SB</c>; not in PEFT). Supplies the trainer's calibration hook
/// (<see cref="ITrainingHooksProvider"/>), because the gradient estimate needs a forward/backward of the whole model.
/// </summary>
public sealed class LoraSbMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "lora-sb";

    public string PeftType => LoraSbConfig.Type;

    public string Description => "LoRA-XS structure B·R·A initialised from the truncated SVD of an approximated first full update, calibrated on ~50 samples (arXiv 2411.19557)";

    public string ParameterCountFormula => "r²";

    public Type ConfigType => typeof(LoraSbConfig);

    public bool Supports(BaseLayer layer) => WeightFactors.IsLinearLike(layer);

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoraSbLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new LoraSbHooks(model, adapterName);
}
