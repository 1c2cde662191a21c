using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Federated;

/// <summary>
/// A global adapter written by <c>peft federated simulate --save-global</c>, in PEFT's LoRA format.
/// </summary>
/// <param name="Seed">The simulation's seed.</param>
/// <param name="Aggregation">stack, avg or zeropad.</param>
/// <param name="Directory">The adapter folder (adapter_config.json + adapter_model.safetensors).</param>
/// <param name="Rank">r of the saved adapter (every module's, unless its rank_pattern says otherwise).</param>
/// <param name="SourceRank">Rank of the uncompressed total (Σr_k·rounds for stacking); equal to <see cref="Rank"/> without compression.</param>
/// <param name="CompressionError">‖ΔW − ΔW_k‖_F over all modules, √Σ (√Σ_{i&gt;k} σᵢ²)² (Eckart–Young); 0 without compression.</param>
public sealed record SavedGlobalAdapter(int Seed, string Aggregation, string Directory, int Rank, int SourceRank, double CompressionError);

/// <summary>
/// The federated global model as one PEFT LoRA adapter on the original base. Every module is written with scale 1:
/// the aggregation's scale s is folded into B (B' = s·B), <c>lora_alpha</c> = r, and modules whose rank differs get
/// <c>rank_pattern</c>/<c>alpha_pattern</c> entries with α = their rank, so PEFT's α/r is 1 everywhere.
/// </summary>
public static class GlobalAdapter
{
    /// <summary>
    /// The sum of several rounds' updates as one factor pair per module (FLoRA's concatenation–summation equivalence):
    /// A = [A₁; …; A_R] (rows), B = [s₁B₁ … s_RB_R] (columns), scale 1, so B·A = Σ_t s_t B_t A_t exactly, with rank
    /// Σ_t r_t. The dense weights are the last round's (each round overwrites them). The inputs are only read; every
    /// round must adapt the same modules with the same [out, in].
    /// </summary>
    public static GlobalUpdate Concatenate(IReadOnlyList<GlobalUpdate> rounds)
    {
        if (rounds.Count == 0)
        {
            throw new PeftException("no global update to concatenate");
        }
        var first = rounds[0];
        foreach (var (t, round) in rounds.Index())
        {
            var missing = first.Modules.Keys.Except(round.Modules.Keys).Concat(round.Modules.Keys.Except(first.Modules.Keys)).FirstOrDefault();
            if (missing is not null)
            {
                throw new ModelMismatchException($"global update of round {t + 1}: module '{missing}' is in only one of rounds 1 and {t + 1}");
            }
            foreach (var (name, f) in round.Modules)
            {
                var g = first.Modules[name];
                if (f.B.shape[0] != g.B.shape[0] || f.A.shape[1] != g.A.shape[1])
                {
                    throw new ModelMismatchException($"global update of round {t + 1}: '{name}' has ΔW [{f.B.shape[0]}, {f.A.shape[1]}] but [{g.B.shape[0]}, {g.A.shape[1]}] in round 1");
                }
            }
        }
        var modules = new Dictionary<string, ModuleFactors>(StringComparer.Ordinal);
        foreach (var name in first.Modules.Keys)
        {
            using var scope = torch.NewDisposeScope();
            var a = torch.cat(rounds.Select(r => r.Modules[name].A).ToList(), 0);
            var b = torch.cat(rounds.Select(r => r.Modules[name].B * r.Modules[name].Scaling).ToList(), 1);
            modules[name] = new ModuleFactors(a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope(), 1.0);
        }
        var last = rounds[^1];
        var dense = last.DenseWeights.ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone(), StringComparer.Ordinal);
        return new GlobalUpdate(first.Kind, last.ClientWeights, modules, dense);
    }

    /// <summary>
    /// Injects <paramref name="update"/> into <paramref name="model"/> as the frozen LoRA adapter <c>default</c> with
    /// scale 1 (see the class summary); <paramref name="template"/> supplies the other keys (targets are the update's
    /// modules; modules_to_save copy the model's current modules). The caller unloads the returned wrapper.
    /// </summary>
    internal static PeftModel Inject(nn.Module model, GlobalUpdate update, LoraConfig template)
    {
        using var folded = Concatenate([update]);
        var ranks = folded.Modules.ToDictionary(kv => kv.Key, kv => (int)kv.Value.Rank, StringComparer.Ordinal);
        var common = ranks.Values.GroupBy(r => r).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).First().Key;
        var rankPattern = ranks.Where(kv => kv.Value != common).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var config = template with
        {
            Rank = common,
            Alpha = common,
            RankPattern = rankPattern,
            AlphaPattern = rankPattern.ToDictionary(kv => kv.Key, kv => (double)kv.Value, StringComparer.Ordinal),
            UseRsLora = false,
            UseDora = false,
            InitLoraWeights = InitLoraWeights.Default,
            TargetModules = TargetModules.Of([.. folded.Modules.Keys]),
        };
        var peft = PeftModel.Create(model, config);
        try
        {
            CopyFactors(peft, PeftAdapterFiles.DefaultAdapterName, folded);
        }
        catch
        {
            peft.Unload();
            throw;
        }
        return peft;
    }

    /// <summary>
    /// Writes <paramref name="update"/> to <paramref name="directory"/> as a PEFT LoRA adapter (atomic writes through
    /// <see cref="PeftAdapterFiles"/>), compressed to rank <paramref name="rank"/> by <see cref="LoraCompression"/> when
    /// given. The modules_to_save tensors are <paramref name="model"/>'s current modules (the global model's head).
    /// </summary>
    internal static (int Rank, int SourceRank, double Error) Save(nn.Module model, GlobalUpdate update, LoraConfig template, string directory, int? rank)
    {
        var peft = Inject(model, update, template);
        try
        {
            var sourceRank = (int)update.Modules.Values.Max(f => f.Rank);
            if (rank is not int k)
            {
                PeftAdapterFiles.Save(peft, directory, PeftAdapterFiles.DefaultAdapterName);
                return (((LoraConfig)peft.Configs[PeftAdapterFiles.DefaultAdapterName]).Rank, sourceRank, 0);
            }
            var name = PeftAdapterFiles.DefaultAdapterName;
            using var compressed = LoraCompression.Compress(peft.ConfigForSave(name), [.. peft.AdapterStateDict(name)], new CompressionOptions { Rank = k }, directory);
            compressed.Save(directory, peft.Registry);
            return (compressed.Config.Rank, sourceRank, Math.Sqrt(compressed.Modules.Sum(m => m.Error * m.Error)));
        }
        finally
        {
            peft.Unload();
        }
    }

    /// <summary>Writes the global factors into an injected LoRA adapter of the same rank and scale (also FedIT's broadcast to the clients).</summary>
    internal static void CopyFactors(PeftModel peft, string adapterName, GlobalUpdate global)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, layer) in peft.AdapterLayers())
        {
            if (layer is not LoraLayer lora || !global.Modules.TryGetValue(name, out var f))
            {
                throw new PeftException($"'{name}': the global adapter has no factors for this module");
            }
            var t = lora.AdapterTensors(adapterName);
            if (!t["lora_A.weight"].shape.SequenceEqual(f.A.shape) || !t["lora_B.weight"].shape.SequenceEqual(f.B.shape) || Math.Abs(lora.ScalingOf(adapterName) - f.Scaling) > 1e-12)
            {
                throw new PeftException($"'{name}': the global adapter (r={f.Rank}, scale {f.Scaling}) does not fit adapter '{adapterName}' (r={lora.RankOf(adapterName)}, scale {lora.ScalingOf(adapterName)})");
            }
            t["lora_A.weight"].copy_(f.A);
            t["lora_B.weight"].copy_(f.B);
        }
    }
}
