using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Compression;

/// <summary>
/// Post-hoc LoRA-Squeeze (Vulić et al., arXiv 2602.10993): a trained adapter becomes a PEFT LoRA adapter at a lower rank
/// k per module, the best rank-k approximation of each module's update ΔW (Eckart–Young). The result is always a plain
/// LoRA, whatever the source method.
/// <list type="bullet">
/// <item>A plain LoRA (no DoRA, no PiSSA/OLoRA init) is read from its saved factors alone, without the base model:
/// <see cref="FactoredSvd"/> finds the SVD of <c>ΔW = s·B·A</c> without forming ΔW. Each module keeps its scale
/// s = lora_alpha / r (so <c>lora_alpha</c> becomes s·k, as in-tuning squeezing does; <c>use_rslora</c> is kept).</item>
/// <item>Any other registered method whose layers give a closed-form update (LoHa, LoKr, VeRA, RandLoRA, MiSS/Bone, Hydra,
/// LoRA-XS/SB, LoLDU, SALT, TLoRA, GaLore, DoRA's merged update, …) is loaded onto its base model and compressed from the
/// dense ΔW its merge would add (<see cref="DeltaCompression"/>).</item>
/// </list>
/// Linear, GPT-2 Conv1D, Embedding and Conv2d layers; the new factors split √σ evenly.
/// </summary>
public static class LoraCompression
{
    private static readonly (string Suffix, bool IsA)[] s_factorKeys =
    [
        ("." + LoraLayer.FactorKeys(BaseLayerKind.Linear).A, true),
        ("." + LoraLayer.FactorKeys(BaseLayerKind.Linear).B, false),
        ("." + LoraLayer.FactorKeys(BaseLayerKind.Embedding).A, true),
        ("." + LoraLayer.FactorKeys(BaseLayerKind.Embedding).B, false),
    ];

    /// <summary>
    /// True when compressing an adapter with this config needs its base model: every method but plain LoRA (DoRA's
    /// update and PiSSA/OLoRA's residual depend on the base weight; other methods are read through their layers).
    /// </summary>
    public static bool NeedsBaseModel(AdapterConfig config) => config is not LoraConfig { UseDora: false, RewritesBaseWeights: false };

    /// <summary>
    /// Compresses the adapter folder <paramref name="directory"/> (PEFT format). A plain LoRA needs no
    /// <paramref name="baseModel"/>; any other method needs the plain base model it was trained on (no adapters in it),
    /// which is left as it was (the adapter is loaded into it, read, and unloaded; a rewritten base weight is restored).
    /// </summary>
    public static CompressedAdapter CompressFolder(string directory, CompressionOptions options, nn.Module? baseModel = null)
    {
        options.Validate();
        var config = PeftAdapterFiles.ReadConfig(directory);
        if (NeedsBaseModel(config))
        {
            return baseModel is null
                ? throw new PeftException(
                    $"{directory}: {Describe(config)} is compressed from the ΔW of its loaded layers, which needs its base model (CLI: --model DIR, default the adapter's base_model_name_or_path)")
                : DeltaCompression.CompressFolder(directory, config, options, baseModel);
        }
        using var file = PeftAdapterFiles.OpenWeights(directory);
        var tensors = file.Entries.Select(e => new KeyValuePair<string, Tensor>(e.Name, file.Read(e.Name))).ToList();
        try
        {
            return Compress(config, tensors, options, file.Path);
        }
        finally
        {
            foreach (var (_, t) in tensors)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>
    /// Compresses a plain LoRA adapter given as its config and saved tensors (<c>base_model.model.&lt;module&gt;.lora_A.weight</c>,
    /// …; read only), without the base model. <paramref name="source"/> names the adapter in errors. Errors: another
    /// method, DoRA or a PiSSA/OLoRA init (use <see cref="CompressFolder"/> with the base model), a target rank above a
    /// module's rank, a budget below rank 1 everywhere.
    /// </summary>
    public static CompressedAdapter Compress(AdapterConfig config, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, CompressionOptions options, string source = "adapter")
    {
        options.Validate();
        if (NeedsBaseModel(config))
        {
            throw new PeftException(
                $"{source}: {Describe(config)} has no LoRA factors B·A that alone give its update; compress it from its folder with the base model (LoraCompression.CompressFolder)");
        }
        var lora = (LoraConfig)config;
        var modules = FindModules(tensors, source);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();

        var svds = new List<FactoredSvd>();
        try
        {
            foreach (var m in modules)
            {
                var declared = (LoraConfig)lora.ForModule(m.Name);
                if (declared.Rank != m.Rank)
                {
                    throw new ModelMismatchException($"{source}: '{m.Name}' has rank {m.Rank} in its tensors but r = {declared.Rank} in the config");
                }
                svds.Add(FactoredSvd.Of(m.B2, m.A2, declared.Scaling));
            }
            var singular = svds.Select(s => s.SingularValues()).ToList();
            if (options.Rank is int k && options.Budget is null && modules.FirstOrDefault(m => k > m.Rank) is { } low)
            {
                throw new PeftException(
                    $"{source}: --rank {k} exceeds the rank {low.Rank} of '{low.Name}'; compression only lowers the rank (a higher rank would add only zero singular values)");
            }
            var ranks = TargetRanks(
                modules.Select((m, i) => new RankCandidate(m.Name, singular[i], m.B2.shape[0] + m.A2.shape[1], Math.Min(singular[i].Length, options.Rank ?? int.MaxValue))).ToList(),
                options, source);
            var newConfig = ConfigFor(lora, [.. modules.Select(m => m.Name)], ranks);

            var replaced = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var report = new List<ModuleCompression>();
            for (var i = 0; i < modules.Count; i++)
            {
                var m = modules[i];
                var scale = ((LoraConfig)newConfig.ForModule(m.Name)).Scaling;
                var (b, a) = svds[i].Truncate(ranks[i], scale);
                replaced[m.KeyA] = WithRank(a, m.A, 0, ranks[i]);
                replaced[m.KeyB] = WithRank(b, m.B, 1, ranks[i]);
                report.Add(new ModuleCompression(m.Name, m.B2.shape[0], m.A2.shape[1], (int)m.Rank, ranks[i], singular[i]));
            }
            var result = tensors
                .Select(kv => new KeyValuePair<string, Tensor>(kv.Key, replaced.TryGetValue(kv.Key, out var t) ? t : kv.Value.detach().clone()))
                .ToList();
            foreach (var (_, t) in result)
            {
                t.MoveToOuterDisposeScope();
            }
            return new CompressedAdapter(newConfig, result, report, modules.Sum(m => m.Rank * (m.B2.shape[0] + m.A2.shape[1])));
        }
        finally
        {
            foreach (var s in svds)
            {
                s.Dispose();
            }
        }
    }

    // A 2-D factor reshaped like the source factor (Conv2d: A [k, in, kh, kw], B [out, k, 1, 1]) with rank k on axis.
    private static Tensor WithRank(Tensor factor, Tensor like, int axis, int k)
    {
        var shape = like.shape.ToArray();
        shape[axis] = k;
        return factor.reshape(shape).to(like.dtype).contiguous();
    }

    private static string Describe(AdapterConfig config) => config switch
    {
        LoraConfig { UseDora: true } => "a LORA adapter with use_dora (DoRA rescales each output row of W + s·B·A)",
        LoraConfig lora when lora.RewritesBaseWeights => $"a LORA adapter with init_lora_weights \"{lora.InitLoraWeights.Method}\" (its base weight is a residual)",
        _ => $"a {config.PeftType} adapter",
    };

    /// <summary>A module's factors: A <c>[r, …]</c>, B <c>[out, r, …]</c>, and their 2-D views <c>[r, n]</c>, <c>[m, r]</c>.</summary>
    private sealed record Factors(string Name, string KeyA, string KeyB, Tensor A, Tensor B)
    {
        public long Rank => A.shape[0];

        public Tensor A2 => A.reshape(Rank, -1);

        public Tensor B2 => B.reshape(B.shape[0], Rank);
    }

    private static List<Factors> FindModules(IReadOnlyList<KeyValuePair<string, Tensor>> tensors, string source)
    {
        var found = new Dictionary<string, (string? KeyA, Tensor? A, string? KeyB, Tensor? B)>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var (key, t) in tensors)
        {
            foreach (var (suffix, isA) in s_factorKeys)
            {
                if (!key.EndsWith(suffix, StringComparison.Ordinal))
                {
                    continue;
                }
                var module = key[..^suffix.Length];
                if (module.StartsWith(PeftModel.NamePrefix, StringComparison.Ordinal))
                {
                    module = module[PeftModel.NamePrefix.Length..];
                }
                if (!found.TryGetValue(module, out var entry))
                {
                    order.Add(module);
                }
                found[module] = isA ? (key, t, entry.KeyB, entry.B) : (entry.KeyA, entry.A, key, t);
                break;
            }
        }
        if (order.Count == 0)
        {
            throw new ModelMismatchException($"{source}: no LoRA factors (…lora_A.weight / …lora_B.weight) found");
        }
        var result = new List<Factors>();
        foreach (var name in order)
        {
            var (keyA, a, keyB, b) = found[name];
            if (a is null || b is null)
            {
                throw new ModelMismatchException($"{source}: module '{name}' has {(a is null ? "lora_B but no lora_A" : "lora_A but no lora_B")}");
            }
            var r = a.shape[0];
            if (b.dim() < 2 || b.shape[1] != r || b.shape.Skip(2).Any(d => d != 1))
            {
                throw new ModelMismatchException(
                    $"{source}: '{keyB}' is [{string.Join(", ", b.shape)}]; with '{keyA}' [{string.Join(", ", a.shape)}] it should be [out, {r}] (or [out, {r}, 1, 1])");
            }
            result.Add(new Factors(name, keyA!, keyB!, a, b));
        }
        return result;
    }

    /// <summary>
    /// Each module's new rank: <see cref="CompressionOptions.Rank"/> everywhere, or the budget allocation over the candidates
    /// (each capped at its <see cref="RankCandidate.MaxRank"/>). A rank above a module's number of singular values
    /// (min(out, in), and r for LoRA factors) is an error naming the module.
    /// </summary>
    internal static int[] TargetRanks(IReadOnlyList<RankCandidate> candidates, CompressionOptions options, string source)
    {
        if (options.Budget is long budget)
        {
            return RankAllocation.Allocate(candidates, budget);
        }
        var k = options.Rank!.Value;
        if (candidates.FirstOrDefault(c => k > c.SingularValues.Count) is { } small)
        {
            throw new PeftException($"{source}: --rank {k} exceeds min(out, in) = {small.SingularValues.Count} of '{small.Module}'");
        }
        return [.. candidates.Select(_ => k)];
    }

    /// <summary>
    /// The compressed adapter's config: r = the most common new rank (ties: the larger), the others in rank_pattern by full
    /// module name. Each module keeps its scale s in <paramref name="source"/>: α' = s·k (s·√k with rsLoRA), in alpha_pattern
    /// where it differs from the top-level α'.
    /// </summary>
    internal static LoraConfig ConfigFor(LoraConfig source, IReadOnlyList<string> modules, int[] ranks)
    {
        var common = ranks.GroupBy(r => r).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).First().Key;
        var alpha = AlphaAt(source, common);
        var rankPattern = new Dictionary<string, int>(StringComparer.Ordinal);
        var alphaPattern = new Dictionary<string, double>(StringComparer.Ordinal);
        for (var i = 0; i < modules.Count; i++)
        {
            if (ranks[i] != common)
            {
                rankPattern[modules[i]] = ranks[i];
            }
            var moduleAlpha = AlphaAt((LoraConfig)source.ForModule(modules[i]), ranks[i]);
            if (moduleAlpha != alpha)
            {
                alphaPattern[modules[i]] = moduleAlpha;
            }
        }
        return source with { Rank = common, Alpha = alpha, RankPattern = rankPattern, AlphaPattern = alphaPattern };
    }

    // The α that gives config's scale at rank k (its own α at its own rank, so nothing drifts when k = r).
    private static double AlphaAt(LoraConfig config, int k) =>
        k == config.Rank ? config.Alpha : config.UseRsLora ? config.Scaling * Math.Sqrt(k) : config.Scaling * k;
}
