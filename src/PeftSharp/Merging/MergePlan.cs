using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Merging;

/// <summary>
/// What a merge of named adapters of one <see cref="PeftModel"/> works on, checked before anything is computed: the
/// sources, their configs as saved, the merged target_modules and, per module the merged config adapts, which sources
/// it holds. The checks are those of PEFT's <c>_check_add_weighted_adapter</c>, plus a few PEFT leaves to later
/// errors (weights count, a module with none of the sources).
/// </summary>
internal sealed class MergePlan
{
    private MergePlan(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, IReadOnlyList<AdapterConfig> configs, TargetModules targets)
    {
        Adapters = adapters;
        Weights = weights;
        Configs = configs;
        Targets = targets;
    }

    public IReadOnlyList<string> Adapters { get; }

    public IReadOnlyList<double> Weights { get; }

    /// <summary>The sources' configs as PEFT would hold them (all-linear resolved to module names).</summary>
    public IReadOnlyList<AdapterConfig> Configs { get; }

    /// <summary>PEFT's merged target_modules: the union of the lists, or <c>(p₁)|(p₂)|…</c> of the regexes.</summary>
    public TargetModules Targets { get; }

    /// <summary>Modules the merged config adapts, in model order, with the indices of the sources each holds.</summary>
    public IReadOnlyList<(string Name, AdapterLayer Layer, IReadOnlyList<int> Sources)> Modules { get; private set; } = [];

    /// <summary>True when every source is a LoRA (or DoRA) adapter.</summary>
    public bool AllLora => Configs.All(c => c is LoraConfig);

    /// <summary>PEFT's rank of each source for allocation: r, or the largest value of its rank_pattern if larger.</summary>
    public int? MaxRank(int source) => Configs[source] is LoraConfig c
        ? Math.Max(c.Rank, c.RankPattern.Count > 0 ? c.RankPattern.Values.Max() : 0)
        : null;

    public static MergePlan Create(PeftModel model, IReadOnlyList<string> adapters, IReadOnlyList<double> weights)
    {
        if (adapters.Count == 0)
        {
            throw new PeftException("no adapters to merge: give one adapter name or more");
        }
        if (weights.Count != adapters.Count)
        {
            throw new PeftException($"{adapters.Count} adapters but {weights.Count} weights; give one weight per adapter");
        }
        for (var i = 0; i < weights.Count; i++)
        {
            if (!double.IsFinite(weights[i]))
            {
                throw new PeftException($"weight {i} (adapter '{adapters[i]}') must be a finite number, got {weights[i]}");
            }
        }
        if (adapters.Distinct().Count() != adapters.Count)
        {
            throw new PeftException($"adapter names must be distinct, got [{string.Join(", ", adapters)}]");
        }
        foreach (var a in adapters)
        {
            if (!model.Configs.ContainsKey(a))
            {
                throw new PeftException($"Adapter {a} does not exist; adapters: {string.Join(", ", model.Configs.Keys)}");
            }
            if (model.Configs[a] is LoraConfig { LoraBias: true })
            {
                throw new PeftException($"add_weighted_adapter does not combine lora_B biases (lora_bias=true in adapter '{a}')");
            }
        }
        var shared = model.SavedModules().Where(w => adapters.Count(w.Wrapper.Has) > 1).ToList();
        if (shared.Count > 0)
        {
            throw new PeftException(
                $"Cannot add weighted adapters if they target the same module with modules_to_save, but found {shared.Count} such instance(s) (e.g. '{shared[0].Name}')");
        }
        var configs = adapters.Select(model.ConfigForSave).ToList();
        var plan = new MergePlan(adapters, weights, configs, MergedTargets(configs, adapters));
        return plan;
    }

    /// <summary>Finds the modules the merged config adapts; each must hold at least one source (PEFT: "No matching LoRAs found").</summary>
    public void ResolveModules(PeftModel model, AdapterConfig mergedConfig)
    {
        var modules = new List<(string, AdapterLayer, IReadOnlyList<int>)>();
        foreach (var name in Injector.FindTargets(model.Model, mergedConfig))
        {
            var layer = ModuleTree.Get(model.Model, name) as AdapterLayer;
            var sources = Enumerable.Range(0, Adapters.Count).Where(i => layer?.AdapterNames.Contains(Adapters[i]) == true).ToList();
            if (layer is null || sources.Count == 0)
            {
                throw new PeftException(
                    $"'{name}' is adapted by the merged config (target_modules {Targets}) but holds none of the adapters [{string.Join(", ", Adapters)}]: No matching LoRAs found");
            }
            modules.Add((name, layer, sources));
        }
        Modules = modules;
    }

    /// <summary>
    /// The merged adapter's config, as PEFT's <c>replace(peft_config[adapters[0]], r=rank, lora_alpha=rank,
    /// target_modules=…, alpha_pattern={}, rank_pattern={})</c>. Differences: init_lora_weights becomes true (the factors
    /// are overwritten anyway; PEFT's copy of "pissa"/"olora" would rewrite the base weight on injection, and of false would
    /// give DoRA a random magnitude), and a module whose merged rank differs from r gets a rank_pattern entry so that the
    /// adapter can be loaded again. Non-LoRA sources give a plain LoRA config with their shared keys.
    /// </summary>
    public LoraConfig MergedConfig(int rank, IReadOnlyDictionary<string, int>? rankPattern = null, bool keepVariantKeys = true)
    {
        var pattern = rankPattern ?? new Dictionary<string, int>();
        if (Configs[0] is LoraConfig lora)
        {
            var c = lora with
            {
                Rank = rank,
                Alpha = rank,
                TargetModules = Targets,
                AlphaPattern = new Dictionary<string, double>(),
                RankPattern = pattern,
                InitLoraWeights = InitLoraWeights.Default,
            };
            return keepVariantKeys ? c : c with { UseDora = false, UseRsLora = false };
        }
        // Configs are as saved (inference_mode true); the merged adapter is created trainable, as PEFT's copy is.
        return LoraConfig.WithSharedKeysOf(Configs[0]) with { Rank = rank, Alpha = rank, TargetModules = Targets, RankPattern = pattern, InferenceMode = false };
    }

    private static TargetModules MergedTargets(IReadOnlyList<AdapterConfig> configs, IReadOnlyList<string> adapters)
    {
        var targets = configs.Select((c, i) => c.TargetModules ?? throw new PeftException($"adapter '{adapters[i]}' has no target_modules")).ToList();
        var lists = targets.Count(t => t.Names is not null);
        if (lists != 0 && lists != targets.Count)
        {
            throw new PeftException(
                "all adapter configs should follow the same target modules type. Combining adapters with `target_modules` type being a mix of list/set and string is not supported.");
        }
        if (lists == 0)
        {
            return TargetModules.Regex(string.Join("|", targets.Select(t => $"({t.Pattern})")));
        }
        var union = new List<string>();
        foreach (var n in targets.SelectMany(t => t.Names!))
        {
            if (!union.Contains(n))
            {
                union.Add(n);
            }
        }
        return TargetModules.Of([.. union]);
    }
}
