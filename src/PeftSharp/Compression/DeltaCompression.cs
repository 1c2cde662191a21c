using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Compression;

/// <summary>
/// Compression of an adapter of any method with a closed-form update: the adapter is loaded onto its base model and
/// each layer gives the update its merge would apply, <see cref="AdapterLayer.DeltaWeight"/> (and
/// <see cref="AdapterLayer.DeltaBias"/>), measured against the base weight as loaded from the model (for PiSSA/OLoRA,
/// whose loading rewrites the base into a residual, against the weight before the rewrite). The exact SVD of that dense
/// ΔW (float64, Conv2d kernels flattened to <c>[out, in·kh·kw]</c>) gives the rank-k LoRA factors; with
/// <see cref="SvdAlgorithm.Randomized"/> and k + p &lt; min(m, n), <see cref="RandomizedSvd"/> gives them instead. A bias change
/// (Hydra on a layer with a bias) is carried as PEFT LoRA's <c>bias: lora_only</c>: the merged bias is saved with the
/// adapter and replaces the base bias when it is loaded.
/// </summary>
internal static class DeltaCompression
{
    private const string SourceName = "compression_source";

    public static CompressedAdapter CompressFolder(string directory, AdapterConfig config, CompressionOptions options, nn.Module baseModel)
    {
        if (baseModel.modules().Any(m => m is AdapterLayer or ModulesToSaveWrapper))
        {
            throw new PeftException($"{directory}: the base model given for compression already holds adapters; pass the plain base model");
        }
        // Loading PiSSA/OLoRA rewrites the targeted base weights; their update is measured against the originals.
        using var originals = config.RewritesBaseWeights ? WeightBackup.Of(TargetWeights(baseModel, config)) : null;
        // Loading freezes the base and unloading unfreezes all of it: both are undone.
        var trainable = baseModel.parameters().Select(p => (Parameter: p, p.requires_grad)).ToList();
        var peft = PeftModel.Wrap(baseModel);
        try
        {
            PeftAdapterFiles.Load(peft, directory, SourceName);
            using var file = PeftAdapterFiles.OpenWeights(directory);
            return Compress(peft, config, file, originals, options);
        }
        finally
        {
            // Deleting disposes the adapter's tensors and unwraps its layers; unloading then unwraps modules_to_save.
            if (peft.Configs.ContainsKey(SourceName))
            {
                peft.DeleteAdapter(SourceName);
            }
            peft.Unload();
            originals?.Restore();
            foreach (var (p, requiresGrad) in trainable)
            {
                p.requires_grad = requiresGrad;
            }
        }
    }

    private static IEnumerable<Parameter> TargetWeights(nn.Module model, AdapterConfig config) =>
        Injector.FindTargets(model, config).Select(n => BaseLayer.TryCreate(ModuleTree.Get(model, n))?.Weight).OfType<Parameter>();

    /// <summary>One module's dense update: its SVD kept to the columns compression may use, and its bias change.</summary>
    private sealed record DenseModule(string Name, AdapterLayer Layer, long[] DeltaShape, Tensor U, Tensor Vh, double[] SingularValues, int NumericalRank, Tensor? DeltaBias,
        double? SquaredNorm)
    {
        public long Out => DeltaShape[0];

        public long In => DeltaShape.Skip(1).Aggregate(1L, (a, b) => a * b);
    }

    private static CompressedAdapter Compress(PeftModel peft, AdapterConfig config, SafetensorsFile file, WeightBackup? originals, CompressionOptions options)
    {
        var source = file.Path;
        var layers = peft.AdapterLayers().Where(l => l.Layer.AdapterNames.Contains(SourceName)).ToList();
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var modules = layers.Select(l => Decompose(l.Name, l.Layer, originals, options, source)).ToList();
        var ranks = LoraCompression.TargetRanks(
            modules.Select(m => new RankCandidate(m.Name, m.SingularValues, m.Out + m.In, Math.Max(1, Math.Min(m.NumericalRank, options.Rank ?? int.MaxValue)))).ToList(),
            options, source);
        var biasChanged = modules.Any(m => m.DeltaBias is not null);
        var newConfig = ConfigFor(config, modules, ranks, biasChanged);

        var result = new List<KeyValuePair<string, Tensor>>();
        var report = new List<ModuleCompression>();
        for (var i = 0; i < modules.Count; i++)
        {
            var m = modules[i];
            var k = ranks[i];
            var scale = ((LoraConfig)newConfig.ForModule(m.Name)).Scaling;
            var (b, a) = FactoredSvd.BalancedFactors(m.U.narrow(1, 0, k), torch.tensor(m.SingularValues[..k], ScalarType.Float64, m.U.device), m.Vh.narrow(0, 0, k), scale);
            var dtype = m.Layer.Base.DType;
            var (keyA, keyB) = LoraLayer.FactorKeys(m.Layer.Base.Kind);
            // Conv2d: A is a kernel [k, in, kh, kw] and B a 1×1 convolution [out, k, 1, 1], as PEFT's LoRA Conv2d.
            long[] shapeA = [k, .. m.DeltaShape.Skip(1)];
            long[] shapeB = m.DeltaShape.Length > 2 ? [m.Out, k, 1, 1] : [m.Out, k];
            result.Add(new(PeftModel.SavedKey(m.Name, keyA), a.reshape(shapeA).to(dtype).contiguous()));
            result.Add(new(PeftModel.SavedKey(m.Name, keyB), b.reshape(shapeB).to(dtype).contiguous()));
            if (biasChanged && m.Layer.Base.Bias is { } bias)
            {
                var merged = m.DeltaBias is null ? bias.detach().clone() : bias.detach() + m.DeltaBias.to(bias.dtype);
                result.Add(new(PeftModel.SavedKey(m.Name, PeftModel.BaseBiasKey), merged.contiguous()));
            }
            report.Add(new ModuleCompression(m.Name, m.Out, m.In, m.NumericalRank, k, m.SingularValues, m.SquaredNorm));
        }
        // The rest of the file (modules_to_save heads, trained biases) is copied; the source method's own tensors are not.
        var owned = layers.SelectMany(l => l.Layer.AdapterTensors(SourceName).Keys.Select(key => PeftModel.SavedKey(l.Name, key))).ToHashSet(StringComparer.Ordinal);
        var written = result.Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var entry in file.Entries.Where(e => !owned.Contains(e.Name) && !written.Contains(e.Name)))
        {
            result.Add(new(entry.Name, file.Read(entry.Name)));
        }
        foreach (var (_, t) in result)
        {
            t.MoveToOuterDisposeScope();
        }
        var sourceParameters = layers.SelectMany(l => l.Layer.TrainableParameters(SourceName)).Distinct().Sum(p => p.numel());
        return new CompressedAdapter(newConfig, result, report, sourceParameters);
    }

    private static DenseModule Decompose(string name, AdapterLayer layer, WeightBackup? originals, CompressionOptions options, string source)
    {
        using var scope = torch.NewDisposeScope();
        var delta = layer.DeltaWeight(SourceName) ?? throw new PeftException(
            $"{source}: the {layer.PeftType} adapter on '{name}' has no closed-form ΔW (its update is not a fixed change of the weight, e.g. it depends on the input), so it cannot be written as a LoRA");
        var full = delta.detach().to(ScalarType.Float64);
        if (originals?.CopyOf(layer.Base.Weight) is { } original)
        {
            // ΔW against the original base: (residual − original) + the adapter's own update.
            full = full + (layer.Base.OutInWeight().detach() - layer.Base.ToOutIn(original)).to(ScalarType.Float64).reshape(full.shape);
        }
        var matrix = full.dim() > 2 ? full.flatten(1) : full;
        var randomized = options.Svd == SvdAlgorithm.Randomized
            && (long)options.Rank!.Value + options.Oversampling < Math.Min(matrix.shape[0], matrix.shape[1]);
        var (u, s, vh) = randomized
            ? RandomizedSvd.Of(matrix, options.Rank!.Value, options.Oversampling, options.PowerIterations, options.Seed)
            : torch.linalg.svd(matrix, fullMatrices: false);
        double? squaredNorm = randomized ? matrix.square().sum().item<double>() : null;
        var singular = s.cpu().data<double>().ToArray();
        var count = singular.Length;
        // matrix_rank's default tolerance, with the ε of the dtype ΔW was computed in.
        var tolerance = count == 0 ? 0 : singular[0] * Math.Max(matrix.shape[0], matrix.shape[1]) * torch.finfo(delta.dtype).eps;
        var numericalRank = singular.Count(x => x > tolerance);
        // Keep only the columns compression can use (--rank, or with a budget the numerical rank), as copies: a view would
        // keep the whole factor alive.
        var keep = (int)Math.Min(count, options.Budget is null ? options.Rank!.Value : Math.Max(1, Math.Min(numericalRank, options.Rank ?? int.MaxValue)));
        var bias = layer.DeltaBias(SourceName)?.detach();
        if (bias is not null && layer.Base.Bias is null)
        {
            throw new PeftException(
                $"{source}: merging the {layer.PeftType} adapter changes the bias of '{name}', which has no bias; a PEFT LoRA cannot add one (lora_bias is not supported)");
        }
        return new DenseModule(name, layer, full.shape, u.narrow(1, 0, keep).clone().MoveToOuterDisposeScope(), vh.narrow(0, 0, keep).clone().MoveToOuterDisposeScope(),
            singular, numericalRank, bias?.MoveToOuterDisposeScope(), squaredNorm);
    }

    // A LoRA source (DoRA, PiSSA, OLoRA) keeps its keys and per-module scales as a plain LoRA; any other method keeps the
    // keys every method shares, at scale 1 (lora_alpha = r, as PEFT's add_weighted_adapter writes merged adapters).
    private static LoraConfig ConfigFor(AdapterConfig config, IReadOnlyList<DenseModule> modules, int[] ranks, bool biasChanged)
    {
        var start = config is LoraConfig lora
            ? lora with { UseDora = false, InitLoraWeights = InitLoraWeights.Default }
            : LoraConfig.WithSharedKeysOf(config) with { Rank = 1, Alpha = 1 };
        var result = LoraCompression.ConfigFor(start, [.. modules.Select(m => m.Name)], ranks);
        return result with
        {
            FanInFanOut = modules.Any(m => m.Layer.Base.FanInFanOut),
            Bias = biasChanged ? "lora_only" : result.Bias,
        };
    }
}
