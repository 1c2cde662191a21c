using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using PeftSharp.Training;

namespace PeftSharp.Methods.LoraPro;

/// <summary>
/// Registry entry for LoRA-Pro (PeftSharp type <c>LORA_PRO</c>; not in PEFT). The method is an optimizer: it supplies
/// the trainer's <see cref="ITrainingHooks.CustomOptimizer"/> through <see cref="ITrainingHooksProvider"/>.
/// </summary>
public sealed class LoraProMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "lorapro";

    public string PeftType => LoraProConfig.Type;

    public string Description => "LoRA trained by Adam on the equivalent full-weight gradient, mapped back to A, B with a Sylvester solve (Wang et al. 2024, arXiv 2407.18242); optimizer state 2·d_in·d_out per layer";

    public string ParameterCountFormula => "r·(d_in + d_out)";

    public Type ConfigType => typeof(LoraProConfig);

    public bool Supports(BaseLayer layer) => WeightFactors.IsLinearLike(layer);

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoraProLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new LoraProHooks(model, adapterName);
}
