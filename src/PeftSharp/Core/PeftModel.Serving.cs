using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

// Serving many adapters from one model: a mixed batch (each row its adapter) and hot-swapping an adapter's weights in place.
public sealed partial class PeftModel
{
    /// <summary>Config keys that never affect the output of an already injected adapter (targets are checked by tensor names).</summary>
    private static readonly HashSet<string> s_swapIgnoredKeys = ["base_model_name_or_path", "revision", "inference_mode", "target_modules"];

    /// <summary>
    /// Until disposed, row <c>i</c> of every batch runs adapter <c>adapterNames[i]</c> alone, or the base model for
    /// <see cref="AdapterRouting.BaseName"/> (<c>"__base__"</c>): PEFT's <c>model(..., adapter_names=[...])</c>. The active set
    /// is ignored meanwhile. Inference only: refused in training mode and while adapters are merged. Each forward must have
    /// exactly <c>adapterNames.Count</c> rows (a generation batch keeps its rows, so prompts and decode steps both route).
    /// </summary>
    public IDisposable UseAdapterPerRow(IReadOnlyList<string> adapterNames)
    {
        if (adapterNames.Count == 0)
        {
            throw new PeftException("per-row adapters: the list of adapter names is empty");
        }
        var unknown = adapterNames.Where(n => n != AdapterRouting.BaseName && !_configs.ContainsKey(n)).Distinct().ToList();
        if (unknown.Count > 0)
        {
            throw new PeftException(
                $"per-row adapters: no adapter {string.Join(", ", unknown.Select(n => $"'{n}'"))}; adapters: {string.Join(", ", _configs.Keys)} (or {AdapterRouting.BaseName} for the base model)");
        }
        if (Model.training)
        {
            throw new PeftException("per-row adapters are for inference: call eval() on the model first (PEFT refuses adapter_names in training mode too)");
        }
        var layers = AdapterLayers().ToList();
        var merged = layers.SelectMany(l => l.Layer.MergedAdapters).Distinct().ToList();
        if (merged.Count > 0)
        {
            throw new PeftException($"per-row adapters cannot run while adapter(s) {string.Join(", ", merged)} are merged; call Unmerge() first");
        }
        var wrappers = SavedModules().Select(w => w.Wrapper).ToList();
        var previous = layers.Select(l => l.Layer.RowAdapters).ToList();
        var previousW = wrappers.Select(w => w.RowAdapters).ToList();
        var routing = new AdapterRouting(adapterNames);
        foreach (var (_, layer) in layers)
        {
            layer.RowAdapters = routing;
        }
        foreach (var w in wrappers)
        {
            w.RowAdapters = routing;
        }
        return new Restore(() =>
        {
            for (var i = 0; i < layers.Count; i++)
            {
                layers[i].Layer.RowAdapters = previous[i];
            }
            for (var i = 0; i < wrappers.Count; i++)
            {
                wrappers[i].RowAdapters = previousW[i];
            }
            routing.Dispose();
        });
    }

    /// <summary>
    /// Reallocates every adapter's rank-sized tensors (or the named adapters') to <paramref name="targetRank"/>, zero-padded
    /// so the output is unchanged, so that adapters of any rank up to it can later be hot-swapped in without allocating:
    /// PEFT's <c>prepare_model_for_compiled_hotswap(target_rank=…)</c>. Call it once after loading the first adapter.
    /// </summary>
    public void PrepareForHotSwap(int targetRank, params string[] adapterNames)
    {
        var names = adapterNames.Length > 0 ? adapterNames : [.. _configs.Keys];
        foreach (var n in names.Where(n => !_configs.ContainsKey(n)))
        {
            throw new PeftException($"no adapter '{n}'; adapters: {string.Join(", ", _configs.Keys)}");
        }
        var layers = AdapterLayers().ToList();
        foreach (var (name, layer) in layers)
        {
            if (layer.IsMerged)
            {
                throw new PeftException($"'{name}' has merged adapters; call Unmerge() before PrepareForHotSwap");
            }
        }
        foreach (var (_, layer) in layers)
        {
            foreach (var n in names.Where(layer.AdapterNames.Contains))
            {
                layer.PadRank(n, targetRank);
            }
        }
        ApplyActive();
    }

    /// <summary>
    /// Replaces the weights of adapter <paramref name="adapterName"/> in place with those of another adapter of the same
    /// method and targets (PEFT's <c>hotswap_adapter</c>): nothing is re-injected and, where shapes match, nothing is
    /// allocated (the tensors keep their storage). A smaller rank is zero-padded into the allocation (see
    /// <see cref="PrepareForHotSwap"/>); the layers take the new config's scaling. <paramref name="tensors"/> are keyed as
    /// PEFT saves them (<c>base_model.model.&lt;module&gt;.lora_A.weight</c>). Everything is checked before anything is
    /// copied: a different method, target set, a config key the layers cannot take, or a rank larger than allocated throws.
    /// <paramref name="source"/> (e.g. the adapter folder) starts every error message when given.
    /// </summary>
    public void HotSwapAdapter(string adapterName, AdapterConfig config, IReadOnlyDictionary<string, Tensor> tensors, string? source = null)
    {
        var old = _configs.TryGetValue(adapterName, out var c) ? c : throw new PeftException($"no adapter '{adapterName}'; adapters: {string.Join(", ", _configs.Keys)}");
        var context = (source is null ? "" : source + ": ") + $"hot-swap into '{adapterName}'";
        config.Validate();
        if (config.PeftType != old.PeftType)
        {
            throw new PeftException($"{context}: the loaded adapter is {old.PeftType}, the new adapter is {config.PeftType}");
        }
        if (config.RewritesBaseWeights || old.RewritesBaseWeights)
        {
            throw new PeftException($"{context}: an adapter whose init rewrites the base weights (PiSSA, OLoRA) cannot be swapped; load it as a new adapter");
        }
        if (BiasMode(adapterName) != "none" || (config is Methods.Lora.LoraConfig { Bias: not "none" }))
        {
            throw new PeftException($"{context}: adapters that train biases (bias \"all\"/\"lora_only\") cannot be swapped; load it as a new adapter");
        }
        var layers = AdapterLayers().Where(l => l.Layer.AdapterNames.Contains(adapterName)).ToList();
        if (layers.FirstOrDefault(l => l.Layer.IsMerged) is { Layer: not null } merged)
        {
            throw new PeftException($"{context}: '{merged.Name}' is merged; call Unmerge() first");
        }
        CheckSwappableConfig(context, old, config, layers.SelectMany(l => l.Layer.HotSwappableConfigKeys).ToHashSet());
        var plan = PlanSwap(context, adapterName, layers, tensors);

        using (torch.no_grad())
        {
            foreach (var (target, incoming, axis) in plan)
            {
                if (axis is int a)
                {
                    target.zero_();
                    target.narrow(a, 0, incoming.shape[a]).copy_(incoming);
                }
                else
                {
                    target.copy_(incoming);
                }
            }
        }
        foreach (var (name, layer) in layers)
        {
            layer.SwapConfig(adapterName, config.ForModule(name));
        }
        _configs[adapterName] = config;
    }

    // Every key that differs between the two configs must be one the layers take, or one that cannot change the output.
    private void CheckSwappableConfig(string context, AdapterConfig old, AdapterConfig config, HashSet<string> swappable)
    {
        var a = JsonNode.Parse(Registry.SerializeConfig(old))!.AsObject();
        var b = JsonNode.Parse(Registry.SerializeConfig(config))!.AsObject();
        foreach (var key in a.Select(p => p.Key).Union(b.Select(p => p.Key)).Order(StringComparer.Ordinal))
        {
            if (s_swapIgnoredKeys.Contains(key) || swappable.Contains(key))
            {
                continue;
            }
            var va = a[key]?.ToJsonString() ?? "absent";
            var vb = b[key]?.ToJsonString() ?? "absent";
            if (va != vb)
            {
                var allowed = swappable.Count > 0 ? $"; only {string.Join(", ", swappable.Order(StringComparer.Ordinal))} may differ" : "";
                throw new PeftException($"{context}: config key '{key}' differs (current {va}, new {vb}){allowed}");
            }
        }
    }

    // Matches every incoming tensor with the tensor it overwrites and checks the shapes; mutates nothing.
    private List<(Tensor Target, Tensor Source, int? PadAxis)> PlanSwap(string context, string adapterName, List<(string Name, AdapterLayer Layer)> layers, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var expected = new Dictionary<string, (Tensor Target, int? Axis)>(StringComparer.Ordinal);
        foreach (var (name, layer) in layers)
        {
            foreach (var (key, t) in layer.AdapterTensors(adapterName))
            {
                var full = key.StartsWith(SharedKeyPrefix, StringComparison.Ordinal) ? key : NamePrefix + name + "." + key;
                expected[full] = (t, layer.RankAxis(adapterName, key));
            }
        }
        foreach (var (name, wrapper) in SavedModules().Where(w => w.Wrapper.Has(adapterName)))
        {
            foreach (var (key, t) in wrapper.AdapterTensors(adapterName))
            {
                expected[NamePrefix + name + "." + key] = (t, null);
            }
        }
        var unexpected = tensors.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        if (unexpected.Count > 0)
        {
            throw new ModelMismatchException(
                $"{context}: {unexpected.Count} tensor(s) match no tensor of the adapter, e.g. '{unexpected[0]}' " +
                "(the new adapter must target the same modules; load it as a new adapter instead)");
        }
        var missing = expected.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
        if (missing.Count > 0)
        {
            throw new ModelMismatchException(
                $"{context}: the new adapter has no '{missing[0]}'" + (missing.Count > 1 ? $" (and {missing.Count - 1} more)" : "") +
                " (it must target the same modules)");
        }
        var plan = new List<(Tensor, Tensor, int?)>();
        foreach (var (key, (target, axis)) in expected)
        {
            var source = tensors[key];
            var have = target.shape;
            var got = source.shape;
            if (have.SequenceEqual(got))
            {
                plan.Add((target, source, null));
                continue;
            }
            var smallerOnRankAxisOnly = axis is int a && got.Length == have.Length
                && Enumerable.Range(0, have.Length).All(i => i == a ? got[i] < have[i] : got[i] == have[i]);
            if (smallerOnRankAxisOnly)
            {
                plan.Add((target, source, axis));
                continue;
            }
            var rankAxis = axis ?? -1;
            var larger = rankAxis >= 0 && got.Length == have.Length && got[rankAxis] > have[rankAxis];
            throw new ModelMismatchException(
                $"{context}: '{key}' is [{string.Join(", ", got)}] but the allocated tensor is [{string.Join(", ", have)}]" +
                (larger ? $"; its rank {got[rankAxis]} is larger than the allocated {have[rankAxis]}: call PrepareForHotSwap(targetRank) with the largest rank first, or load the largest-rank adapter first" : ""));
        }
        return plan;
    }
}
