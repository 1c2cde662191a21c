using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>
/// A model with adapters injected: PEFT's <c>PeftModel</c>. Holds named adapters (each with its config), the active set,
/// and the operations on them: disable, merge, unmerge, unload, delete, trainable-parameter accounting. The wrapped model
/// keeps running its own forward; adapted layers are swapped in place.
/// </summary>
public sealed partial class PeftModel : IDisposable
{
    /// <summary>Prefix PEFT puts before module paths in parameter and file names.</summary>
    public const string NamePrefix = "base_model.model.";

    private readonly Dictionary<string, AdapterConfig> _configs = [];
    private readonly List<string> _active = [];
    private bool _inferenceMode;

    private PeftModel(nn.Module model, MethodRegistry registry)
    {
        Model = model;
        Registry = registry;
    }

    /// <summary>The wrapped model (adapted in place).</summary>
    public nn.Module Model { get; }

    public MethodRegistry Registry { get; }

    /// <summary>Adapter name → its config (as given, before per-module patterns).</summary>
    public IReadOnlyDictionary<string, AdapterConfig> Configs => _configs;

    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <summary>Wraps <paramref name="model"/> and injects a first adapter (PEFT's <c>get_peft_model</c>).</summary>
    public static PeftModel Create(nn.Module model, AdapterConfig config, string adapterName = "default", MethodRegistry? registry = null)
    {
        var peft = new PeftModel(model, registry ?? MethodRegistry.Default);
        peft.AddAdapter(adapterName, config);
        return peft;
    }

    /// <summary>Wraps a model that already holds adapter layers, or none yet (adapters are then loaded or added).</summary>
    public static PeftModel Wrap(nn.Module model, MethodRegistry? registry = null) => new(model, registry ?? MethodRegistry.Default);

    /// <summary>The adapter layers, by qualified module name.</summary>
    public IEnumerable<(string Name, AdapterLayer Layer)> AdapterLayers() =>
        Model.named_modules().Where(m => m.module is AdapterLayer).Select(m => (m.name, (AdapterLayer)m.module));

    public IEnumerable<(string Name, ModulesToSaveWrapper Wrapper)> SavedModules() =>
        Model.named_modules().Where(m => m.module is ModulesToSaveWrapper).Select(m => (m.name, (ModulesToSaveWrapper)m.module));

    /// <summary>
    /// Injects a new adapter: every targeted module is wrapped (or, when already wrapped by the same method, gains the
    /// adapter), modules_to_save get a trainable copy, and the adapter becomes active. Everything is validated first; on
    /// failure the model is restored as it was.
    /// </summary>
    public void AddAdapter(string adapterName, AdapterConfig config) => AddAdapter(adapterName, config, afterInject: null);

    /// <summary>As <see cref="AddAdapter(string, AdapterConfig)"/>; <paramref name="afterInject"/> runs inside the same transaction (loading uses it).</summary>
    internal void AddAdapter(string adapterName, AdapterConfig config, Action? afterInject)
    {
        if (string.IsNullOrWhiteSpace(adapterName) || adapterName.Contains('.'))
        {
            throw new PeftException($"adapter name '{adapterName}' must be non-empty and contain no '.'");
        }
        if (_configs.ContainsKey(adapterName))
        {
            throw new PeftException($"adapter '{adapterName}' already exists");
        }
        config.Validate();
        var method = Registry.ForConfig(config);
        var targets = Injector.FindTargets(Model, config);
        var plan = new List<(string Name, BaseLayer? Fresh, AdapterLayer? Existing)>();
        foreach (var name in targets)
        {
            var module = ModuleTree.Get(Model, name);
            if (module is AdapterLayer existing)
            {
                if (existing.PeftType != config.PeftType)
                {
                    throw new PeftException($"'{name}' already holds a {existing.PeftType} adapter; one module holds adapters of one method");
                }
                plan.Add((name, null, existing));
                continue;
            }
            var baseLayer = BaseLayer.TryCreate(module);
            if (baseLayer is null || !method.Supports(baseLayer))
            {
                throw new PeftException($"'{name}' is a {module.GetType().Name}, which {method.Name} cannot adapt (supported: Linear, Embedding, Conv2d, Conv1D)");
            }
            plan.Add((name, baseLayer, null));
        }

        var layerConfig = method.PrepareAdapter(config, plan.Select(p => p.Fresh ?? p.Existing!.Base).ToList());
        using var backup = config.RewritesBaseWeights ? WeightBackup.Of(plan.Select(p => p.Fresh?.Weight ?? p.Existing!.Base.Weight)) : null;
        var replaced = new List<(string Name, AdapterLayer Layer)>();
        var extended = new List<AdapterLayer>();
        var wrapped = new List<(string Name, ModulesToSaveWrapper Wrapper, bool Fresh)>();
        try
        {
            foreach (var (name, fresh, existing) in plan)
            {
                var perModule = layerConfig.ForModule(name);
                if (existing is not null)
                {
                    existing.AddAdapter(adapterName, perModule);
                    extended.Add(existing);
                }
                else
                {
                    var layer = method.CreateLayer(fresh!);
                    layer.AddAdapter(adapterName, perModule);
                    ModuleTree.Replace(Model, name, layer);
                    replaced.Add((name, layer));
                }
            }
            foreach (var name in Injector.FindModulesToSave(Model, config))
            {
                var module = ModuleTree.Get(Model, name);
                if (module is ModulesToSaveWrapper w)
                {
                    w.AddAdapter(adapterName);
                    wrapped.Add((name, w, false));
                }
                else if (module is nn.Module<Tensor, Tensor> m)
                {
                    var wrapper = new ModulesToSaveWrapper(m);
                    wrapper.AddAdapter(adapterName);
                    ModuleTree.Replace(Model, name, wrapper);
                    wrapped.Add((name, wrapper, true));
                }
            }
            if (afterInject is not null)
            {
                _configs[adapterName] = config;
                afterInject();
            }
        }
        catch
        {
            foreach (var layer in extended)
            {
                layer.DeleteAdapter(adapterName);
            }
            foreach (var (name, layer) in replaced)
            {
                ModuleTree.Replace(Model, name, layer.Base.Module);
            }
            foreach (var (name, wrapper, fresh) in wrapped)
            {
                if (fresh)
                {
                    ModuleTree.Replace(Model, name, wrapper.Original);
                }
                else
                {
                    wrapper.DeleteAdapter(adapterName);
                }
            }
            backup?.Restore();
            _configs.Remove(adapterName);
            throw;
        }
        _configs[adapterName] = config;
        if (_active.Count == 0)
        {
            _active.Add(adapterName);
        }
        ApplyActive();
    }

    /// <summary>Makes these adapters the ones that run (and train).</summary>
    public void SetActiveAdapters(params string[] adapterNames)
    {
        foreach (var n in adapterNames)
        {
            if (!_configs.ContainsKey(n))
            {
                throw new PeftException($"no adapter '{n}'; adapters: {string.Join(", ", _configs.Keys)}");
            }
        }
        _active.Clear();
        _active.AddRange(adapterNames);
        ApplyActive();
    }

    /// <summary>When true every parameter is frozen (PEFT's <c>inference_mode</c>).</summary>
    public bool InferenceMode
    {
        get => _inferenceMode;
        set
        {
            _inferenceMode = value;
            ApplyActive();
        }
    }

    /// <summary>Runs the base model alone until disposed (PEFT's <c>disable_adapter()</c> context). Merged adapters are unmerged first.</summary>
    public IDisposable DisableAdapters()
    {
        var layers = AdapterLayers().Select(l => l.Layer).ToList();
        var wrappers = SavedModules().Select(w => w.Wrapper).ToList();
        var previous = layers.Select(l => l.Disabled).ToList();
        var previousW = wrappers.Select(w => w.Disabled).ToList();
        foreach (var l in layers)
        {
            l.UnmergeAll();
            l.Disabled = true;
        }
        foreach (var w in wrappers)
        {
            w.Disabled = true;
        }
        return new Restore(() =>
        {
            for (var i = 0; i < layers.Count; i++)
            {
                layers[i].Disabled = previous[i];
            }
            for (var i = 0; i < wrappers.Count; i++)
            {
                wrappers[i].Disabled = previousW[i];
            }
        });
    }

    /// <summary>Merges the active adapters (or the given ones) into the base weights; the layers stay wrapped.</summary>
    public void Merge(params string[] adapterNames)
    {
        var names = adapterNames.Length > 0 ? adapterNames : [.. _active];
        foreach (var (_, layer) in AdapterLayers())
        {
            foreach (var n in names)
            {
                layer.Merge(n);
            }
        }
    }

    /// <summary>Restores the base weights of every merged layer.</summary>
    public void Unmerge()
    {
        foreach (var (_, layer) in AdapterLayers())
        {
            layer.UnmergeAll();
        }
    }

    /// <summary>Merges the active adapters and returns the plain model (PEFT's <c>merge_and_unload</c>); this wrapper is then empty.</summary>
    public nn.Module MergeAndUnload()
    {
        Merge();
        return UnloadCore(keepMerged: true);
    }

    /// <summary>Returns the plain base model without merging (PEFT's <c>unload</c>).</summary>
    public nn.Module Unload()
    {
        Unmerge();
        return UnloadCore(keepMerged: false);
    }

    private nn.Module UnloadCore(bool keepMerged)
    {
        foreach (var (name, layer) in AdapterLayers().ToList())
        {
            ModuleTree.Replace(Model, name, layer.Base.Module);
        }
        foreach (var (name, wrapper) in SavedModules().ToList())
        {
            var active = _active.FirstOrDefault(wrapper.Has);
            ModuleTree.Replace(Model, name, keepMerged && active is not null ? wrapper.CopyOf(active) : wrapper.Original);
        }
        _configs.Clear();
        _active.Clear();
        foreach (var p in Model.parameters())
        {
            p.requires_grad = true;
        }
        return Model;
    }

    /// <summary>Removes one adapter everywhere; layers left with no adapter are unwrapped.</summary>
    public void DeleteAdapter(string adapterName)
    {
        if (!_configs.Remove(adapterName))
        {
            throw new PeftException($"no adapter '{adapterName}'; adapters: {string.Join(", ", _configs.Keys)}");
        }
        foreach (var (name, layer) in AdapterLayers().ToList())
        {
            layer.DeleteAdapter(adapterName);
            if (layer.AdapterNames.Count == 0)
            {
                ModuleTree.Replace(Model, name, layer.Base.Module);
            }
        }
        foreach (var (_, wrapper) in SavedModules())
        {
            wrapper.DeleteAdapter(adapterName);
        }
        _active.Remove(adapterName);
        if (_active.Count == 0 && _configs.Count > 0)
        {
            _active.Add(_configs.Keys.First());
        }
        ApplyActive();
    }

    // Freezes everything, then unfreezes the active adapters' parameters, their modules_to_save copies and the biases
    // their bias mode trains; pushes the active set into every layer.
    private void ApplyActive()
    {
        foreach (var p in Model.parameters())
        {
            p.requires_grad = false;
        }
        foreach (var (_, layer) in AdapterLayers())
        {
            layer.SetActive(_active);
            if (_inferenceMode)
            {
                continue;
            }
            foreach (var name in _active.Where(layer.AdapterNames.Contains))
            {
                foreach (var p in layer.TrainableParameters(name))
                {
                    p.requires_grad = true;
                }
                if (BiasMode(name) == "lora_only" && layer.Base.Bias is { } bias)
                {
                    bias.requires_grad = true;
                }
            }
        }
        foreach (var (_, wrapper) in SavedModules())
        {
            wrapper.ActiveAdapter = _active.FirstOrDefault(wrapper.Has);
            if (!_inferenceMode && wrapper.ActiveAdapter is { } a)
            {
                foreach (var p in wrapper.CopyOf(a).parameters())
                {
                    p.requires_grad = true;
                }
            }
        }
        if (!_inferenceMode && _active.Any(a => BiasMode(a) == "all"))
        {
            foreach (var (name, p) in Model.named_parameters())
            {
                if (name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal))
                {
                    p.requires_grad = true;
                }
            }
        }
    }

    internal string BiasMode(string adapterName) =>
        _configs.TryGetValue(adapterName, out var c) && c is Methods.Lora.LoraConfig lc ? lc.Bias : "none";

    public void Dispose() => Model.Dispose();

    private sealed class Restore(Action action) : IDisposable
    {
        private Action? _action = action;

        public void Dispose()
        {
            _action?.Invoke();
            _action = null;
        }
    }
}
