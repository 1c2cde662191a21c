using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using PeftSharp.Training;

namespace PeftSharp.Methods.AlLora;

/// <summary>
/// Registry entry for ALLoRA (PeftSharp type <c>ALLORA</c>; not in PEFT). The gradient factor is a trainer hook
/// (<see cref="ITrainingHooks.PreStep"/>) supplied through <see cref="ITrainingHooksProvider"/>; any optimizer follows.
/// </summary>
public sealed class AlLoraMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "allora";

    public string PeftType => AlLoraConfig.Type;

    public string Description => "LoRA without dropout and scale; each row's gradient scaled by 1/√(‖θ_i‖² + 1/η²) (Huang & Balestriero 2024, arXiv 2410.09692)";

    public string ParameterCountFormula => "r·(d_in + d_out)";

    public Type ConfigType => typeof(AlLoraConfig);

    public bool Supports(BaseLayer layer) => WeightFactors.IsLinearLike(layer);

    public AdapterLayer CreateLayer(BaseLayer layer) => new AlLoraLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new AlLoraHooks(model, adapterName);
}
