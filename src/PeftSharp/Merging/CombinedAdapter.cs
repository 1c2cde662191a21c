using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Merging;

/// <summary>
/// A LoRA factor pair in PEFT's layouts: A <c>[r, in]</c> (Conv2d <c>[r, in, kh, kw]</c>, Embedding <c>[r, vocab]</c> as
/// <c>lora_embedding_A</c>) and B <c>[out, r]</c> (Conv2d <c>[out, r, 1, 1]</c>, Embedding <c>[dim, r]</c>).
/// </summary>
public sealed record LoraFactors(Tensor A, Tensor B)
{
    /// <summary>The rank r (rows of A).</summary>
    public long Rank => A.shape[0];

    /// <summary>B·A in <c>[out, in]</c> layout (Conv2d: flattened to <c>[out, in·kh·kw]</c>), without any scale.</summary>
    public Tensor Product()
    {
        using var scope = torch.NewDisposeScope();
        return B.reshape(B.shape[0], Rank).matmul(A.reshape(Rank, -1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The result of merging adapters: a LoRA config and, per adapted module (qualified name), the new factors. It is
/// independent of the model it came from until <see cref="AddTo"/> puts it into a model (the same one, or another with
/// the same modules). Owns its tensors: dispose it when done.
/// </summary>
public sealed class CombinedAdapter : IDisposable
{
    private readonly Dictionary<string, LoraFactors> _factors;

    internal CombinedAdapter(LoraConfig config, Dictionary<string, LoraFactors> factors)
    {
        Config = config;
        _factors = factors;
    }

    /// <summary>The merged adapter's config (PEFT: r = lora_alpha = the merged rank, so its scale is 1 unless use_rslora).</summary>
    public LoraConfig Config { get; }

    /// <summary>Module name → factors, in model order.</summary>
    public IReadOnlyDictionary<string, LoraFactors> Factors => _factors;

    /// <summary>The merged ΔW of one module: scale·B·A in <c>[out, in]</c> layout (Conv2d flattened to <c>[out, in·kh·kw]</c>).</summary>
    public Tensor DeltaWeight(string module)
    {
        var f = _factors.TryGetValue(module, out var x) ? x : throw new PeftException($"the merged adapter has no module '{module}'");
        var c = (LoraConfig)Config.ForModule(module);
        using var scope = torch.NewDisposeScope();
        return (f.Product() * c.Scaling).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Adds the merged adapter to <paramref name="model"/> as <paramref name="adapterName"/> (not activated unless it is
    /// the model's first). The modules its config adapts in that model must be exactly the modules it has factors for;
    /// names and shapes are checked, and on any error the model is left as it was. A DoRA config gets the magnitude
    /// PEFT gives it: the row norms of the base weight (its factors are created with B = 0, then overwritten).
    /// </summary>
    public void AddTo(PeftModel model, string adapterName)
    {
        model.AddAdapter(adapterName, Config, afterInject: () => CopyInto(model, adapterName));
    }

    private void CopyInto(PeftModel model, string adapterName)
    {
        var layers = model.AdapterLayers().Where(l => l.Layer.AdapterNames.Contains(adapterName)).ToList();
        var extra = layers.Select(l => l.Name).Except(_factors.Keys).ToList();
        if (extra.Count > 0)
        {
            throw new ModelMismatchException($"the merged config (target_modules {Config.TargetModules}) adapts '{extra[0]}', for which the merged adapter has no factors");
        }
        var missing = _factors.Keys.Except(layers.Select(l => l.Name)).ToList();
        if (missing.Count > 0)
        {
            throw new ModelMismatchException($"the merged adapter has factors for '{missing[0]}', which its config (target_modules {Config.TargetModules}) does not adapt in this model");
        }
        var copies = new List<(Tensor Target, Tensor Value)>();
        foreach (var (name, layer) in layers)
        {
            var tensors = layer.AdapterTensors(adapterName);
            var (keyA, keyB) = LoraLayer.FactorKeys(layer.Base.Kind);
            var f = _factors[name];
            foreach (var (key, value) in new[] { (keyA, f.A), (keyB, f.B) })
            {
                var target = tensors.TryGetValue(key, out var t) ? t : throw new ModelMismatchException($"'{name}' has no tensor '{key}' for adapter '{adapterName}'");
                if (!target.shape.SequenceEqual(value.shape))
                {
                    throw new ModelMismatchException(
                        $"merged '{name}.{key}' is [{string.Join(", ", value.shape)}] but the model's tensor is [{string.Join(", ", target.shape)}]");
                }
                copies.Add((target, value));
            }
        }
        using var _ = torch.no_grad();
        foreach (var (target, value) in copies)
        {
            target.copy_(value);
        }
    }

    /// <summary>Disposes the factor tensors (a model the adapter was added to keeps its own copies).</summary>
    public void Dispose()
    {
        foreach (var f in _factors.Values)
        {
            f.A.Dispose();
            f.B.Dispose();
        }
        _factors.Clear();
    }
}
