using PeftSharp.Core;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp.Modules;

namespace PeftSharp.Methods.GaLore;

/// <summary>
/// Registry entry for GaLore (PeftSharp type <c>GALORE</c>; not in PEFT). The layers make the target weights trainable
/// (<see cref="GaLoreLayer"/>); the training hooks (<see cref="ITrainingHooksProvider"/>) hand those weights to
/// <see cref="GaLoreAdamW"/>, and the trainer's default optimizer keeps every other trainable parameter.
/// </summary>
public sealed class GaLoreMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "galore";

    public string PeftType => GaLoreConfig.Type;

    public string Description => "Full-weight training with Adam moments in a rank-r gradient projection refreshed by SVD every T steps (Zhao et al., arXiv 2403.03507)";

    public string ParameterCountFormula => "d_in·d_out (the full weight); optimizer state 2·r·max(d_in, d_out) + r·min(d_in, d_out) instead of AdamW's 2·d_in·d_out";

    public Type ConfigType => typeof(GaLoreConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new GaLoreLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) =>
        new GaLoreHooks(model, adapterName, (GaLoreConfig)model.Configs[adapterName]);
}

/// <summary>GaLore's only hook: the optimizer of the adapter's full weights.</summary>
internal sealed class GaLoreHooks(PeftModel model, string adapterName, GaLoreConfig config) : ITrainingHooks
{
    public TrainingOptimizer? CustomOptimizer(IReadOnlyList<NamedParameter> trainable)
    {
        var weights = model.AdapterLayers().Select(l => l.Layer).OfType<GaLoreLayer>()
            .Where(l => l.AdapterNames.Contains(adapterName))
            .Select(l => l.WeightOf(adapterName))
            .ToHashSet<Parameter>(ReferenceEqualityComparer.Instance);
        var claimed = trainable.Where(p => weights.Contains(p.Parameter)).ToList();
        if (claimed.Count == 0)
        {
            return null;
        }
        var options = config.ToOptions();
        return new GaLoreAdamW([new ParameterGroup("galore", claimed, options.WeightDecay)], options);
    }
}
