using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Training;
using PeftSharp.Training.Optim;

namespace PeftSharp.Methods.LoraSqueeze;

/// <summary>Registry entry for in-tuning LoRA-Squeeze (<c>--method lora_squeeze</c>); saved adapters are plain PEFT LoRA.</summary>
public sealed class LoraSqueezeMethod : IAdapterMethod, ITrainingHooksProvider
{
    public string Name => "lora_squeeze";

    public string PeftType => LoraSqueezeConfig.Type;

    public string Description => "LoRA trained at rank r and annealed to target_r by truncated SVDs of ΔW at squeeze_steps; saves a plain LoRA (Vulić et al. 2026, arXiv 2602.10993)";

    public string ParameterCountFormula => "r·(d_in + d_out), then target_r·(d_in + d_out)";

    public Type ConfigType => typeof(LoraSqueezeConfig);

    public bool Supports(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    public AdapterLayer CreateLayer(BaseLayer layer) => new LoraSqueezeLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new LoraSqueezeHooks(model, adapterName);

    /// <summary>A plain LoRA config at the layers' current rank (per-module ranks, should they differ, in rank_pattern).</summary>
    public AdapterConfig ConfigForSave(AdapterConfig config, IReadOnlyList<AdapterLayer> layers, string adapterName)
    {
        var c = (LoraSqueezeConfig)config;
        var ranks = layers.OfType<LoraSqueezeLayer>().Select(l => l.RankOf(adapterName)).ToList();
        if (ranks.Count == 0 || ranks.All(r => r == ranks[0]))
        {
            return c.AsLora(ranks.Count == 0 ? c.Rank : ranks[0]);
        }
        throw new PeftException($"lora_squeeze adapter '{adapterName}' has layers of different ranks ({string.Join(", ", ranks.Distinct())}); the squeeze schedule is global, so this is a bug");
    }
}

/// <summary>
/// Runs the squeeze schedule for one adapter: after the optimizer step that completes step <c>squeeze_steps[i]</c>,
/// every layer goes to the rank of stage i + 1 and the optimizer state follows through the layers' maps. The stage is
/// checkpointed; on resume the shapes are re-created (values then come from the checkpoint).
/// </summary>
internal sealed class LoraSqueezeHooks(PeftModel model, string adapter) : ICheckpointedHooks
{
    private int _stage;

    public string StateName => "lora_squeeze/" + adapter;

    private LoraSqueezeConfig Config => (LoraSqueezeConfig)model.Configs[adapter];

    public IReadOnlyList<ParameterChange> OnSchedule(TrainingStep step, TrainingOptimizer optimizer)
    {
        var changes = new List<ParameterChange>();
        var steps = Config.SqueezeSteps;
        while (_stage < steps.Count && step.Step + 1 >= steps[_stage])
        {
            _stage++;
            changes.AddRange(SqueezeTo(Config.RankAfterStage(_stage)));
        }
        return changes;
    }

    private IEnumerable<ParameterChange> SqueezeTo(int rank) =>
        model.AdapterLayers().Select(l => l.Layer).OfType<LoraSqueezeLayer>()
            .Where(l => l.AdapterNames.Contains(adapter) && l.RankOf(adapter) > rank)
            .SelectMany(l => l.Squeeze(adapter, rank))
            .ToList();

    public JsonNode SaveState() => new JsonObject { ["stage"] = _stage };

    public IReadOnlyList<ParameterChange> RestoreState(JsonNode state)
    {
        var target = state["stage"]!.GetValue<int>();
        if (target < _stage || target > Config.SqueezeSteps.Count)
        {
            throw new ConfigException($"lora_squeeze: checkpoint stage {target} does not fit this run (stage {_stage} of {Config.SqueezeSteps.Count})");
        }
        _stage = target;
        return [.. SqueezeTo(Config.RankAfterStage(target))];
    }
}
