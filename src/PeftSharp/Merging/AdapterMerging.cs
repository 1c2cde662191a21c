using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Merging;

/// <summary>
/// Merging named adapters of a model into a new LoRA adapter: PEFT's <c>LoraModel.add_weighted_adapter</c>, the same
/// combination kinds, weight split, ranks, config and errors. The sources are only read; the result is new tensors.
/// </summary>
public static class AdapterMerging
{
    /// <summary>
    /// Adds <paramref name="newName"/> to <paramref name="model"/>: the sources <paramref name="adapters"/> (LoRA or DoRA)
    /// combined with <paramref name="weights"/> as <paramref name="options"/> say (PEFT's <c>add_weighted_adapter</c>). The
    /// new adapter is not activated (call <see cref="PeftModel.SetActiveAdapters"/>). Unlike PEFT, an existing
    /// <paramref name="newName"/> is an error rather than a silent no-op.
    /// </summary>
    public static void AddWeightedAdapter(PeftModel model, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string newName, CombinationOptions options)
    {
        if (model.Configs.ContainsKey(newName))
        {
            throw new PeftException($"adapter '{newName}' already exists; choose another name for the merged adapter");
        }
        foreach (var a in adapters)
        {
            if (model.Configs.TryGetValue(a, out var c) && c is not LoraConfig)
            {
                throw new PeftException(
                    $"adapter '{a}' is {c.PeftType}: add_weighted_adapter merges LoRA adapters into a LoRA adapter beside them; for other methods use AdapterMerging.Combine with an svd combination and add the result to a model without the sources");
            }
        }
        using var combined = Combine(model, adapters, weights, options);
        combined.AddTo(model, newName);
    }

    /// <summary>
    /// Computes the merged adapter without adding it. LoRA/DoRA sources take every combination kind; the svd kinds also
    /// take any method whose layers give a closed-form ΔW (<see cref="AdapterLayer.DeltaWeight"/>), each entering as
    /// w·ΔW, and then need <see cref="CombinationOptions.SvdRank"/>.
    /// </summary>
    public static CombinedAdapter Combine(PeftModel model, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, CombinationOptions options)
    {
        options.Validate();
        var plan = MergePlan.Create(model, adapters, weights);
        // PEFT: "if there is only one adapter, we can only use linear merging".
        var type = adapters.Count == 1 ? CombinationType.Linear : options.Type;
        var effective = options with { Type = type };
        if (!plan.AllLora && !type.IsSvd())
        {
            var other = plan.Configs.First(c => c is not LoraConfig);
            throw new PeftException(
                $"combination_type '{type.PeftName()}' combines LoRA factors, but an adapter is {other.PeftType}; use an svd combination (it works on ΔW)");
        }
        var rank = MergedRank(plan, effective);
        plan.ResolveModules(model, plan.MergedConfig(rank));

        using var _ = torch.no_grad();
        var device = plan.Modules[0].Layer.Base.Device;
        using var generator = type.IsRandom() && options.Seed is long seed ? new Generator((ulong)seed, device) : null;
        var factors = new Dictionary<string, LoraFactors>();
        var rankPattern = new Dictionary<string, int>();
        try
        {
            foreach (var (name, layer, sources) in plan.Modules)
            {
                var names = sources.Select(i => plan.Adapters[i]).ToList();
                var w = sources.Select(i => plan.Weights[i]).ToList();
                var f = type switch
                {
                    CombinationType.Cat => FactorCombination.Cat((LoraLayer)layer, names, w, rank),
                    _ when type.IsSvd() => FactorCombination.Svd(name, layer, names, w, rank, effective, generator),
                    _ => FactorCombination.FactorWise(name, (LoraLayer)layer, names, w, type.Operation(), effective, generator),
                };
                f.A.DetachFromDisposeScope();
                f.B.DetachFromDisposeScope();
                factors[name] = f;
                if (f.Rank != rank)
                {
                    rankPattern[name] = (int)f.Rank;
                }
            }
        }
        catch
        {
            new CombinedAdapter(plan.MergedConfig(rank), factors).Dispose();
            throw;
        }
        return new CombinedAdapter(plan.MergedConfig(rank, rankPattern), factors);
    }

    // PEFT's new_rank: the common r (linear kinds), Σr (cat), svd_rank or max r (svd kinds); r counts rank_pattern.
    private static int MergedRank(MergePlan plan, CombinationOptions options)
    {
        var ranks = Enumerable.Range(0, plan.Adapters.Count).Select(plan.MaxRank).ToList();
        if (options.Type.IsSvd())
        {
            if (options.SvdRank is int k)
            {
                return k;
            }
            if (ranks.Any(r => r is null))
            {
                var other = plan.Configs.First(c => c is not LoraConfig);
                throw new PeftException($"svd_rank is required when merging {other.PeftType} adapters (their r does not bound the rank of ΔW)");
            }
            return ranks.Max()!.Value;
        }
        if (options.Type == CombinationType.Cat)
        {
            return ranks.Sum(r => r!.Value);
        }
        if (ranks.Distinct().Count() != 1)
        {
            throw new PeftException(
                $"All adapters must have the same r value when using combination_type linear, ties, dare_ties or dare_linear (got r = {string.Join(", ", ranks)} for {string.Join(", ", plan.Adapters)})");
        }
        return ranks[0]!.Value;
    }
}
