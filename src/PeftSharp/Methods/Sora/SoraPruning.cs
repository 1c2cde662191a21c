using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Sora;

/// <summary>
/// A SoRA adapter pruned to a standard PEFT LoRA: its config, its tensors under PEFT's saved names (owned by the caller),
/// and the surviving rank |K| of every adapted module (0 when every gate of the module is zero).
/// </summary>
public sealed record SoraPruned(LoraConfig Config, IReadOnlyDictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, int> Ranks) : IDisposable
{
    /// <summary>Share of gate entries that are exactly zero, over all modules.</summary>
    public double ZeroShare { get; init; }

    public void Dispose()
    {
        foreach (var t in Tensors.Values)
        {
            t.Dispose();
        }
    }
}

/// <summary>
/// Prunes SoRA to LoRA (paper §3, reference §7): with K = {i : g_i ≠ 0} (exact zeros, trap 3),
/// <c>A' = A[K, :]</c> and <c>B' = s·B[:, K]·diag(g_K)</c>, so <c>B'·A' = s·B·diag(g)·A</c> and the outputs are unchanged.
/// The scale is folded into B', and each module's <c>lora_alpha</c> equals its rank (PEFT scale exactly 1). Ranks differ per
/// module, so the config uses PEFT's <c>rank_pattern</c>/<c>alpha_pattern</c> for modules below the largest |K|. A module
/// with no surviving gate keeps rank 1 with zero factors (PEFT's LoRA needs r ≥ 1). Other saved tensors (modules_to_save,
/// e.g. a classification head) are copied unchanged.
/// </summary>
public static class SoraPruning
{
    private const string GateSuffix = ".lora_gate";

    /// <summary>Prunes the tensors of a saved SoRA adapter (<paramref name="state"/> keyed as in adapter_model.safetensors).</summary>
    public static SoraPruned Prune(SoraConfig config, IReadOnlyDictionary<string, Tensor> state)
    {
        using var noGrad = torch.no_grad();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        long zeros = 0, total = 0;
        foreach (var gateKey in state.Keys.Where(k => k.EndsWith(GateSuffix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var module = gateKey[..^GateSuffix.Length];
            var aKey = module + ".lora_A.weight";
            var bKey = module + ".lora_B.weight";
            var gate = state[gateKey];
            var a = state.TryGetValue(aKey, out var av) ? av : throw new ModelMismatchException($"SoRA pruning: '{aKey}' is missing (gate '{gateKey}' has no A)");
            var b = state.TryGetValue(bKey, out var bv) ? bv : throw new ModelMismatchException($"SoRA pruning: '{bKey}' is missing (gate '{gateKey}' has no B)");
            var r = gate.numel();
            if (a.shape[0] != r || b.shape[1] != r)
            {
                throw new ModelMismatchException($"SoRA pruning: '{module}' has gate of {r} entries but A [{string.Join(", ", a.shape)}] and B [{string.Join(", ", b.shape)}]");
            }
            using var scope = torch.NewDisposeScope();
            var g = gate.reshape(-1);
            var keep = torch.nonzero(g != 0).reshape(-1);
            var k = (int)keep.numel();
            total += r;
            zeros += r - k;
            Tensor newA, newB;
            if (k == 0)
            {
                newA = torch.zeros(1, a.shape[1], dtype: a.dtype, device: a.device);
                newB = torch.zeros(b.shape[0], 1, dtype: b.dtype, device: b.device);
            }
            else
            {
                newA = a.index_select(0, keep).contiguous();
                newB = (b.index_select(1, keep) * g.index_select(0, keep).unsqueeze(0) * config.Scaling).contiguous();
            }
            tensors[aKey] = newA.MoveToOuterDisposeScope();
            tensors[bKey] = newB.MoveToOuterDisposeScope();
            ranks[module.StartsWith(PeftModel.NamePrefix, StringComparison.Ordinal) ? module[PeftModel.NamePrefix.Length..] : module] = k;
            consumed.UnionWith([gateKey, aKey, bKey]);
        }
        if (ranks.Count == 0)
        {
            throw new ModelMismatchException("SoRA pruning: the adapter holds no 'lora_gate' tensor");
        }
        foreach (var (key, t) in state.Where(kv => !consumed.Contains(kv.Key)))
        {
            tensors[key] = t.detach().clone();
        }
        var maxRank = Math.Max(1, ranks.Values.Max());
        var pattern = ranks.Where(kv => Math.Max(1, kv.Value) != maxRank).ToDictionary(kv => kv.Key, kv => Math.Max(1, kv.Value));
        var lora = LoraConfig.WithSharedKeysOf(config) with
        {
            Rank = maxRank,
            Alpha = maxRank,
            RankPattern = pattern,
            AlphaPattern = pattern.ToDictionary(kv => kv.Key, kv => (double)kv.Value),
            Dropout = config.Dropout,
            InferenceMode = true,
        };
        return new SoraPruned(lora, tensors, ranks) { ZeroShare = total == 0 ? 0 : (double)zeros / total };
    }

    /// <summary>Prunes adapter <paramref name="adapterName"/> of a live model (its current gates).</summary>
    public static SoraPruned Prune(PeftModel model, string adapterName = PeftAdapterFiles.DefaultAdapterName)
    {
        var config = model.ConfigForSave(adapterName) as SoraConfig
            ?? throw new PeftException($"adapter '{adapterName}' is {model.Configs[adapterName].PeftType}, not SORA");
        return Prune(config, model.AdapterStateDict(adapterName));
    }

    /// <summary>Reads a SoRA adapter folder and writes the pruned LoRA adapter folder (PEFT format) to <paramref name="outputDirectory"/>.</summary>
    public static SoraPruned PruneFolder(string soraDirectory, string outputDirectory)
    {
        var config = PeftAdapterFiles.ReadConfig(soraDirectory) as SoraConfig
            ?? throw new PeftException($"{soraDirectory}: not a SORA adapter (peft_type {PeftAdapterFiles.ReadConfigJson(soraDirectory).PeftType})");
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using (var file = PeftAdapterFiles.OpenWeights(soraDirectory))
            {
                foreach (var e in file.Entries)
                {
                    state[e.Name] = file.Read(e.Name);
                }
            }
            var pruned = Prune(config, state);
            Save(pruned, outputDirectory);
            return pruned;
        }
        finally
        {
            foreach (var t in state.Values)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>Writes a pruned adapter as a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors).</summary>
    public static void Save(SoraPruned pruned, string directory)
    {
        Directory.CreateDirectory(directory);
        SafetensorsWriter.Save(Path.Combine(directory, PeftAdapterFiles.WeightsFileName), pruned.Tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, PeftAdapterFiles.ConfigFileName), MethodRegistry.Default.SerializeConfig(pruned.Config));
    }
}
