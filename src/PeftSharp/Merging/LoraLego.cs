using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Merging;

/// <summary>
/// Options of LoRA-LEGO (<see cref="LoraLego"/>). The two reweighting formulas follow the project's reference
/// (methods_systems.md §2), which reconstructs them: the paper's method section was not available.
/// </summary>
public sealed record LegoOptions
{
    /// <summary>k: clusters per module, the merged rank (1 ≤ k ≤ Σr of the module's sources).</summary>
    public int Clusters { get; init; }

    /// <summary>Rescale every unit so that ‖a‖ = ‖b‖ before clustering ((c·a, b/c) is the same update; default true).</summary>
    public bool BalanceUnits { get; init; } = true;

    /// <summary>Flip units so that the largest-magnitude entry of b is positive ((−a, −b) is the same update; default true).</summary>
    public bool CanonicalSign { get; init; } = true;

    /// <summary>Parameter reweighting against norm decay: each centroid rescaled to the mean norm of its members (default true).</summary>
    public bool ParameterReweighting { get; init; } = true;

    /// <summary>
    /// Output reweighting against variance expansion: a factor on the merged output (folded into B'). Default 1;
    /// <see cref="LoraLego.VarianceMatchingScale"/> gives the reference's √(r/k).
    /// </summary>
    public double OutputScale { get; init; } = 1.0;

    /// <summary>Seed of the k-means++ draws (default 0), so a merge is reproducible.</summary>
    public long Seed { get; init; }

    /// <summary>Lloyd iterations at most (default 100).</summary>
    public int MaxIterations { get; init; } = 100;

    /// <summary>Rejects bad values (clusters below 1, a non-finite output scale, negative iterations).</summary>
    public void Validate()
    {
        if (Clusters < 1)
        {
            throw new PeftException($"LoRA-LEGO needs clusters ≥ 1 (the merged rank), got {Clusters}");
        }
        if (!double.IsFinite(OutputScale))
        {
            throw new PeftException($"LoRA-LEGO output scale must be finite, got {OutputScale}");
        }
        if (MaxIterations < 0)
        {
            throw new PeftException($"LoRA-LEGO max iterations must be ≥ 0, got {MaxIterations}");
        }
    }
}

/// <summary>
/// LoRA-LEGO (Zhao et al., "Merging LoRAs like Playing LEGO", arXiv 2409.16167, ICLR 2025): every rank slot i of a LoRA
/// is a minimal semantic unit (a_i = A[i,:], b_i = B[:,i]) contributing b_i a_iᵀ. The units of N LoRAs of any ranks are
/// pooled per module (each LoRA's weight·scale folded in), made canonical in sign and scale, clustered by k-means into k
/// groups, and each centroid becomes one unit of a rank-k LoRA. With k = Σr every unit is its own cluster and the result
/// is PEFT's <c>cat</c>; with one LoRA and k &lt; r it prunes that LoRA.
/// </summary>
public static class LoraLego
{
    /// <summary>The reference's output-reweighting factor √(r/k): a rank-k sum of units against a rank-r LoRA's variance (unverified against the paper).</summary>
    public static double VarianceMatchingScale(double sourceRank, int clusters) => Math.Sqrt(sourceRank / clusters);

    /// <summary>
    /// Merges the units of one module's LoRAs: <paramref name="sources"/>[j] enters as <paramref name="scales"/>[j]·B·A.
    /// Returns rank-k factors (scale 1) in the sources' layout and dtype.
    /// </summary>
    public static LoraFactors MergeUnits(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> scales, LegoOptions options)
    {
        options.Validate();
        if (sources.Count == 0 || sources.Count != scales.Count)
        {
            throw new PeftException($"LoRA-LEGO needs one scale per source, got {sources.Count} sources and {scales.Count} scales");
        }
        using var scope = torch.NewDisposeScope();
        var aTail = sources[0].A.shape[1..];
        var m = sources[0].B.shape[0];
        var units = new List<Tensor>();
        for (var j = 0; j < sources.Count; j++)
        {
            var r = sources[j].Rank;
            if (!sources[j].A.shape[1..].SequenceEqual(aTail) || sources[j].B.shape[0] != m)
            {
                throw new PeftException($"LoRA-LEGO source {j} has A {Shape(sources[j].A)} and B {Shape(sources[j].B)}, source 0 A {Shape(sources[0].A)} and B {Shape(sources[0].B)}");
            }
            var a = sources[j].A.detach().reshape(r, -1).to(ScalarType.Float64);
            var b = sources[j].B.detach().reshape(m, r).t().to(ScalarType.Float64);
            units.Add(Canonical(a, b, scales[j], options));
        }
        var v = torch.cat(units, 0);
        var n = v.shape[1] - m;
        var k = options.Clusters;
        if (k > v.shape[0])
        {
            throw new PeftException($"LoRA-LEGO clusters k = {k} exceeds the {v.shape[0]} rank-1 units (Σr) of the sources");
        }
        var assignment = KMeans.Cluster(v, k, options.Seed, options.MaxIterations);
        var centroids = new List<Tensor>();
        for (var c = 0; c < k; c++)
        {
            var members = v.index_select(0, torch.tensor(Enumerable.Range(0, assignment.Length).Where(i => assignment[i] == c).Select(i => (long)i).ToArray()));
            var centroid = members.mean([0L]);
            if (options.ParameterReweighting)
            {
                var norm = centroid.norm().item<double>();
                if (norm > 0)
                {
                    centroid = centroid * (members.norm(1).mean().item<double>() / norm);
                }
            }
            centroids.Add(centroid);
        }
        var merged = torch.stack(centroids, 0);
        var dtype = sources[0].A.dtype;
        var aOut = merged.narrow(1, 0, n).reshape([k, .. aTail]).to(dtype);
        var bOut = (merged.narrow(1, n, m).t() * options.OutputScale).to(dtype);
        if (sources[0].B.dim() == 4)
        {
            bOut = bOut.reshape(m, k, 1, 1);
        }
        return new LoraFactors(aOut.contiguous().MoveToOuterDisposeScope(), bOut.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// LoRA-LEGO over named LoRA adapters of <paramref name="model"/>, every adapted module merged to rank k. The config
    /// follows <c>add_weighted_adapter</c>'s (target union, r = lora_alpha = k) with use_rslora off, so the scale is 1.
    /// </summary>
    public static CombinedAdapter Combine(PeftModel model, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, LegoOptions options)
    {
        options.Validate();
        var plan = MergePlan.Create(model, adapters, weights);
        for (var i = 0; i < adapters.Count; i++)
        {
            if (plan.Configs[i] is not LoraConfig c)
            {
                throw new PeftException($"LoRA-LEGO merges LoRA units; adapter '{adapters[i]}' is {plan.Configs[i].PeftType}");
            }
            if (c.UseDora)
            {
                throw new PeftException($"LoRA-LEGO merges plain LoRA units; adapter '{adapters[i]}' is DoRA, whose magnitude vector does not split into rank-1 units");
            }
        }
        var config = plan.MergedConfig(options.Clusters, keepVariantKeys: false);
        plan.ResolveModules(model, config);
        using var _ = torch.no_grad();
        var factors = new Dictionary<string, LoraFactors>();
        try
        {
            foreach (var (name, layer, sources) in plan.Modules)
            {
                var lora = (LoraLayer)layer;
                var f = sources.Select(i => FactorCombination.Factors(lora, plan.Adapters[i])).ToList();
                var scales = sources.Select(i => plan.Weights[i] * lora.ScalingOf(plan.Adapters[i])).ToList();
                LoraFactors merged;
                try
                {
                    merged = MergeUnits(f, scales, options);
                }
                catch (PeftException e)
                {
                    throw new PeftException($"'{name}': {e.Message}", e);
                }
                merged.A.DetachFromDisposeScope();
                merged.B.DetachFromDisposeScope();
                factors[name] = merged;
            }
        }
        catch
        {
            new CombinedAdapter(config, factors).Dispose();
            throw;
        }
        return new CombinedAdapter(config, factors);
    }

    /// <summary><see cref="Combine"/>, then adds the result to <paramref name="model"/> as <paramref name="newName"/> (not activated).</summary>
    public static void AddMergedAdapter(PeftModel model, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string newName, LegoOptions options)
    {
        if (model.Configs.ContainsKey(newName))
        {
            throw new PeftException($"adapter '{newName}' already exists; choose another name for the merged adapter");
        }
        using var combined = Combine(model, adapters, weights, options);
        combined.AddTo(model, newName);
    }

    // Rows [a'; b'] of one LoRA's units with scale c folded in: balanced (‖a'‖ = ‖b'‖ = √(|c|‖a‖‖b‖), sign on a') or
    // c on a alone, then the sign made canonical (largest |b'| entry positive).
    private static Tensor Canonical(Tensor a, Tensor b, double c, LegoOptions options)
    {
        Tensor aOut, bOut;
        if (options.BalanceUnits)
        {
            var alpha = a.norm(1, keepdim: true);
            var beta = b.norm(1, keepdim: true);
            var nonzero = (alpha * beta).gt(0);
            var ratio = torch.where(nonzero, beta / alpha.clamp_min(double.Epsilon), torch.zeros_like(alpha));
            aOut = a * (ratio * Math.Abs(c)).sqrt() * Math.Sign(c);
            bOut = torch.where(nonzero, b * (Math.Abs(c) / ratio.clamp_min(double.Epsilon)).sqrt(), torch.zeros_like(b));
        }
        else
        {
            aOut = a * c;
            bOut = b;
        }
        if (options.CanonicalSign)
        {
            var largest = bOut.gather(1, bOut.abs().argmax(1, keepdim: true));
            var flip = torch.where(largest.lt(0), -1.0, 1.0);
            aOut = aOut * flip;
            bOut = bOut * flip;
        }
        return torch.cat([aOut, bOut], 1);
    }

    private static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
