using PeftSharp.Core;
using PeftSharp.Training;
using PeftSharp.Training.Optim;

namespace PeftSharp.Methods.LoraPro;

/// <summary>
/// The trainer's hook for one LoRA-Pro adapter: <see cref="CustomOptimizer"/> claims the adapter's trainable (A, B)
/// pairs, paired per layer (never by parameter order, reference trap 1), and returns a <see cref="LoraProOptimizer"/> over
/// them with the adapter's scale and Adam settings. Its state is the optimizer's, so checkpoints carry it.
/// </summary>
internal sealed class LoraProHooks(PeftModel model, string adapterName) : ITrainingHooks
{
    public TrainingOptimizer? CustomOptimizer(IReadOnlyList<NamedParameter> trainable)
    {
        var config = (LoraProConfig)model.Configs[adapterName];
        var byParameter = trainable.ToDictionary(p => (object)p.Parameter, ReferenceEqualityComparer.Instance);
        var pairs = new List<LoraProPair>();
        foreach (var (_, layer) in model.AdapterLayers())
        {
            if (layer is not LoraProLayer pro || !pro.AdapterNames.Contains(adapterName))
            {
                continue;
            }
            if (byParameter.TryGetValue(pro.A(adapterName), out var a) && byParameter.TryGetValue(pro.B(adapterName), out var b))
            {
                pairs.Add(new LoraProPair(a, b, pro.ScalingOf(adapterName)));
            }
        }
        return pairs.Count == 0 ? null : new LoraProOptimizer(pairs, config.PinvDelta, config.AdamBetas[0], config.AdamBetas[1], config.AdamEps);
    }
}
