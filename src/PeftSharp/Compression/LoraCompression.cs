using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Compression;

/// <summary>A compressed adapter: a PEFT LoRA config and its tensors under PEFT's saved names. Owns its tensors.</summary>
public sealed class CompressedAdapter : IDisposable
{
    private readonly List<KeyValuePair<string, Tensor>> _tensors;

    internal CompressedAdapter(LoraConfig config, List<KeyValuePair<string, Tensor>> tensors, IReadOnlyList<ModuleCompression> modules)
    {
        Config = config;
        _tensors = tensors;
        Modules = modules;
    }

    /// <summary>The LoRA config of the result: the source's, with <c>r</c>, <c>lora_alpha</c> and the patterns set for the new ranks at the same scales.</summary>
    public LoraConfig Config { get; }

    /// <summary>Every tensor of the adapter file, in the source's order (factors replaced, the rest copied: heads, biases).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> Tensors => _tensors;

    /// <summary>Per module: ranks, singular values, the error left.</summary>
    public IReadOnlyList<ModuleCompression> Modules { get; }

    /// <summary>Σ kᵢ·(d_in + d_out): the LoRA parameters of the result (heads and biases not counted).</summary>
    public long Parameters => Modules.Sum(m => m.Parameters);

    /// <summary>Writes the adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors, atomically).</summary>
    public void Save(string directory, MethodRegistry? registry = null) => PeftAdapterFiles.Save(directory, Config, _tensors, registry);

    public void Dispose()
    {
        foreach (var (_, t) in _tensors)
        {
            t.Dispose();
        }
        _tensors.Clear();
    }
}

/// <summary>
/// Post-hoc LoRA-Squeeze (Vulić et al., arXiv 2602.10993): a trained LoRA adapter at rank r becomes a LoRA adapter at a
/// lower rank k per module, the best rank-k approximation of each <c>ΔW = s·B·A</c> (Eckart–Young), found by
/// <see cref="FactoredSvd"/> without forming ΔW. Works on the saved tensors alone (no base model): LoRA on Linear,
/// GPT-2 Conv1D, Embedding and Conv2d. Each module keeps its scale s = lora_alpha / r (so <c>lora_alpha</c> becomes s·k,
/// as in-tuning squeezing does; <c>use_rslora</c> is kept), and the new factors split √σ evenly.
/// </summary>
public static class LoraCompression
{
    private static readonly (string Suffix, bool IsA, bool Embedding)[] s_factorKeys =
    [
        (".lora_A.weight", true, false),
        (".lora_B.weight", false, false),
        (".lora_embedding_A", true, true),
        (".lora_embedding_B", false, true),
    ];

    /// <summary>Compresses the adapter folder <paramref name="directory"/> (PEFT format).</summary>
    public static CompressedAdapter CompressFolder(string directory, CompressionOptions options)
    {
        options.Validate();
        var config = PeftAdapterFiles.ReadConfig(directory);
        CheckMethod(config, directory);
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
    /// Compresses an adapter given as its config and saved tensors (<c>base_model.model.&lt;module&gt;.lora_A.weight</c>, …;
    /// read only). <paramref name="source"/> names the adapter in errors. Errors: a method without LoRA factors (named),
    /// DoRA, PiSSA/OLoRA inits, a target rank above a module's rank, a budget below rank 1 everywhere.
    /// </summary>
    public static CompressedAdapter Compress(AdapterConfig config, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, CompressionOptions options, string source = "adapter")
    {
        options.Validate();
        var lora = CheckMethod(config, source);
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
            var ranks = TargetRanks(modules, singular, options, source);
            var newConfig = ConfigFor(lora, modules, ranks);

            var replaced = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var report = new List<ModuleCompression>();
            for (var i = 0; i < modules.Count; i++)
            {
                var m = modules[i];
                var scale = ((LoraConfig)newConfig.ForModule(m.Name)).Scaling;
                var (b, a) = svds[i].Truncate(ranks[i], scale);
                var aShape = m.A.shape.ToArray();
                aShape[0] = ranks[i];
                var bShape = m.B.shape.ToArray();
                bShape[1] = ranks[i];
                replaced[m.KeyA] = a.reshape(aShape).to(m.A.dtype).contiguous();
                replaced[m.KeyB] = b.reshape(bShape).to(m.B.dtype).contiguous();
                report.Add(new ModuleCompression(m.Name, m.B2.shape[0], m.A2.shape[1], (int)m.Rank, ranks[i], singular[i]));
            }
            var result = tensors
                .Select(kv => new KeyValuePair<string, Tensor>(kv.Key, replaced.TryGetValue(kv.Key, out var t) ? t : kv.Value.detach().clone()))
                .ToList();
            foreach (var (_, t) in result)
            {
                t.MoveToOuterDisposeScope();
            }
            return new CompressedAdapter(newConfig, result, report);
        }
        finally
        {
            foreach (var s in svds)
            {
                s.Dispose();
            }
        }
    }

    private static LoraConfig CheckMethod(AdapterConfig config, string source)
    {
        if (config is not LoraConfig lora)
        {
            throw new PeftException(
                $"{source}: a {config.PeftType} adapter has no LoRA factors B·A, so it cannot be squeezed (compression reads lora_A/lora_B; it takes LoRA adapters without DoRA)");
        }
        if (lora.UseDora)
        {
            throw new PeftException(
                $"{source}: use_dora is set; DoRA rescales each output row of W + s·B·A by its magnitude, so the update is not the low-rank s·B·A and truncating B·A would change it unpredictably. Compress a plain LoRA adapter.");
        }
        if (lora.RewritesBaseWeights)
        {
            throw new PeftException(
                $"{source}: init_lora_weights \"{lora.InitLoraWeights.Method}\" rewrites the base weight from the top-r SVD when the adapter is loaded; a rank-k copy would subtract a different residual. Convert it to a plain LoRA first.");
        }
        return lora;
    }

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
            foreach (var (suffix, isA, _) in s_factorKeys)
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

    private static int[] TargetRanks(List<Factors> modules, List<double[]> singular, CompressionOptions options, string source)
    {
        if (options.Budget is long budget)
        {
            var candidates = modules.Select((m, i) => new RankCandidate(
                m.Name, singular[i], m.B2.shape[0] + m.A2.shape[1], Math.Min(singular[i].Length, options.Rank ?? int.MaxValue))).ToList();
            return RankAllocation.Allocate(candidates, budget);
        }
        var k = options.Rank!.Value;
        for (var i = 0; i < modules.Count; i++)
        {
            if (k > modules[i].Rank)
            {
                throw new PeftException(
                    $"{source}: --rank {k} exceeds the rank {modules[i].Rank} of '{modules[i].Name}'; compression only lowers the rank (a higher rank would add only zero singular values)");
            }
            if (k > singular[i].Length)
            {
                throw new PeftException($"{source}: --rank {k} exceeds min(out, in) = {singular[i].Length} of '{modules[i].Name}'");
            }
        }
        return [.. modules.Select(_ => k)];
    }

    // r = the most common new rank (ties: the larger), the others in rank_pattern by full module name. Each module keeps
    // its scale s: α' = s·k (s·√k with rsLoRA), in alpha_pattern where it differs from the top-level α'.
    private static LoraConfig ConfigFor(LoraConfig source, List<Factors> modules, int[] ranks)
    {
        var common = ranks.GroupBy(r => r).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).First().Key;
        var alpha = AlphaAt(source, common);
        var rankPattern = new Dictionary<string, int>(StringComparer.Ordinal);
        var alphaPattern = new Dictionary<string, double>(StringComparer.Ordinal);
        for (var i = 0; i < modules.Count; i++)
        {
            if (ranks[i] != common)
            {
                rankPattern[modules[i].Name] = ranks[i];
            }
            var moduleAlpha = AlphaAt((LoraConfig)source.ForModule(modules[i].Name), ranks[i]);
            if (moduleAlpha != alpha)
            {
                alphaPattern[modules[i].Name] = moduleAlpha;
            }
        }
        return source with { Rank = common, Alpha = alpha, RankPattern = rankPattern, AlphaPattern = alphaPattern };
    }

    // The α that gives config's scale at rank k (its own α at its own rank, so nothing drifts when k = r).
    private static double AlphaAt(LoraConfig config, int k) =>
        k == config.Rank ? config.Alpha : config.UseRsLora ? config.Scaling * Math.Sqrt(k) : config.Scaling * k;
}
