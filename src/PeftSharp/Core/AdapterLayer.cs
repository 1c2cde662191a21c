using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>
/// A module that wraps a frozen base layer (registered as <c>base_layer</c>, as PEFT names it) and holds any number of
/// named adapters of one method. The active adapters add their output to the base output; each can be merged into the
/// base weight and unmerged again. Methods derive from this class and supply the per-adapter maths.
/// </summary>
public abstract partial class AdapterLayer : nn.Module<Tensor, Tensor>
{
    private readonly List<string> _adapters = [];
    private readonly List<string> _active = [];
    private readonly List<string> _merged = [];

    protected AdapterLayer(string name, BaseLayer baseLayer) : base(name)
    {
        Base = baseLayer;
        register_module("base_layer", baseLayer.Module);
    }

    /// <summary>The wrapped layer.</summary>
    public BaseLayer Base { get; }

    /// <summary>The method's PEFT type, e.g. <c>LORA</c>.</summary>
    public abstract string PeftType { get; }

    public IReadOnlyList<string> AdapterNames => _adapters;

    /// <summary>The adapters that run, in order; inside a per-row (mixed batch) forward, only the adapter of the rows being computed.</summary>
    public IReadOnlyList<string> ActiveAdapters => _routedAdapter ?? (IReadOnlyList<string>)_active;

    public IReadOnlyList<string> MergedAdapters => _merged;

    public bool IsMerged => _merged.Count > 0;

    /// <summary>While true the layer returns exactly the base output.</summary>
    public bool Disabled { get; set; }

    /// <summary>Creates the parameters of a new adapter (initialised as the method says) and activates it.</summary>
    public void AddAdapter(string adapterName, AdapterConfig config)
    {
        if (_adapters.Contains(adapterName))
        {
            throw new PeftException($"adapter '{adapterName}' already exists on this layer");
        }
        CreateAdapter(adapterName, config);
        // New submodules start in training mode; follow the wrapped layer so dropout is off in an eval-mode model.
        train(Base.Module.training);
        _adapters.Add(adapterName);
        if (!_active.Contains(adapterName))
        {
            _active.Add(adapterName);
        }
    }

    /// <summary>Sets which adapters run; unknown names are ignored here (the model checks them).</summary>
    public void SetActive(IEnumerable<string> names)
    {
        _active.Clear();
        _active.AddRange(names.Where(_adapters.Contains));
    }

    /// <summary>Removes an adapter's parameters (unmerging it first if merged).</summary>
    public void DeleteAdapter(string adapterName)
    {
        if (!_adapters.Contains(adapterName))
        {
            return;
        }
        if (_merged.Contains(adapterName))
        {
            Unmerge(adapterName);
        }
        RemoveAdapter(adapterName);
        _adapters.Remove(adapterName);
        _active.Remove(adapterName);
    }

    /// <summary>Folds an adapter into the base weight (its forward contribution then stops).</summary>
    public void Merge(string adapterName)
    {
        if (_merged.Contains(adapterName) || !_adapters.Contains(adapterName))
        {
            return;
        }
        MergeInto(adapterName);
        _merged.Add(adapterName);
    }

    /// <summary>Takes merged adapters out of the base weight again, last merged first.</summary>
    public void UnmergeAll()
    {
        for (var i = _merged.Count - 1; i >= 0; i--)
        {
            Unmerge(_merged[i]);
        }
    }

    private void Unmerge(string adapterName)
    {
        UnmergeFrom(adapterName);
        _merged.Remove(adapterName);
    }

    public override Tensor forward(Tensor x)
    {
        if (RowAdapters is { } rows && !Disabled)
        {
            return MixedBatchForward(x, rows);
        }
        if (Disabled || _active.TrueForAll(_merged.Contains))
        {
            // Nothing to add (disabled, or every active adapter merged): the base output as is, with no dispose scope of
            // our own, so that a merged layer costs one module call more than the base layer and nothing else.
            return Base.Module.call(x);
        }
        using var scope = torch.NewDisposeScope();
        var result = Base.Module.call(x);
        if (!Disabled)
        {
            foreach (var name in _active)
            {
                if (!_merged.Contains(name))
                {
                    result = ApplyAdapter(name, x, result);
                }
            }
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The adapter's tensors under the names PEFT saves them with. A key is relative to this module
    /// (<c>lora_A.weight</c>, <c>lora_embedding_B</c>: the adapter name is not part of it) unless it starts with
    /// <c>base_model.</c>, which marks a tensor shared by every layer of the model (VeRA's <c>base_model.vera_A</c>); a shared
    /// tensor is the same object in every layer that returns it and is saved once.
    /// </summary>
    public abstract IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName);

    /// <summary>Trainable parameters of one adapter (by default the Parameters among <see cref="AdapterTensors"/>).</summary>
    public virtual IEnumerable<Parameter> TrainableParameters(string adapterName) => AdapterTensors(adapterName).Values.OfType<Parameter>();

    /// <summary>Closed-form ΔW of one adapter in <c>[out, in]</c> layout (Embedding: <c>[dim, vocab]</c>), or null if the method has none.</summary>
    public abstract Tensor? DeltaWeight(string adapterName);

    /// <summary>
    /// The change merging makes to the base bias <c>[out]</c>, or null when the merge leaves the bias alone (every method
    /// but Hydra). Together with <see cref="DeltaWeight"/> it describes the whole merge of an additive method.
    /// </summary>
    public virtual Tensor? DeltaBias(string adapterName) => null;

    protected abstract void CreateAdapter(string adapterName, AdapterConfig config);

    protected abstract void RemoveAdapter(string adapterName);

    /// <summary>Returns <c>result + adapter(x)</c> for one unmerged active adapter.</summary>
    protected abstract Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result);

    /// <summary>Default additive merge: <c>W ← W + ΔW</c>. Non-additive methods override both merge and unmerge.</summary>
    protected virtual void MergeInto(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var delta = DeltaWeight(adapterName) ?? throw new PeftException($"{PeftType} adapter '{adapterName}' cannot be merged");
        Base.AddToWeight(delta);
    }

    protected virtual void UnmergeFrom(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var delta = DeltaWeight(adapterName) ?? throw new PeftException($"{PeftType} adapter '{adapterName}' cannot be unmerged");
        Base.AddToWeight(delta, -1.0);
    }
}

/// <summary>
/// A registered name → module map whose entries can be added and removed after the parent is built (TorchSharp's
/// ModuleDict does not register entries added later with its parent). PEFT's in-memory names follow:
/// <c>lora_A.default.weight</c>.
/// </summary>
public sealed class AdapterModuleDict : nn.Module
{
    public AdapterModuleDict() : base(nameof(AdapterModuleDict)) { }

    public nn.Module<Tensor, Tensor> this[string name] =>
        (nn.Module<Tensor, Tensor>)(_internal_submodules.TryGetValue(name, out var m) ? m : throw new PeftException($"no adapter '{name}'"));

    public bool Contains(string name) => _internal_submodules.ContainsKey(name);

    public void Set(string name, nn.Module<Tensor, Tensor> module)
    {
        Remove(name);
        register_module(name, module);
    }

    /// <summary>Unregisters and disposes the entry (a deleted adapter).</summary>
    public void Remove(string name) => Take(name)?.Dispose();

    /// <summary>
    /// Unregisters the entry and returns it alive; the caller owns it. DiffoRA's discretisation needs this: the optimizer
    /// may still hold the parameters of a dropped candidate (a resumed run cannot remove them from it).
    /// </summary>
    public nn.Module? Take(string name)
    {
        if (!_internal_submodules.TryGetValue(name, out var m))
        {
            return null;
        }
        _internal_submodules.Remove(name);
        return m;
    }
}

/// <summary>A registered name → parameter map (PEFT's ParameterDict, e.g. <c>lora_embedding_A.default</c>).</summary>
public sealed class AdapterParameterDict : nn.Module
{
    public AdapterParameterDict() : base(nameof(AdapterParameterDict)) { }

    public Parameter this[string name] =>
        _internal_params.TryGetValue(name, out var p) ? p : throw new PeftException($"no adapter '{name}'");

    public bool Contains(string name) => _internal_params.ContainsKey(name);

    public void Set(string name, Parameter parameter)
    {
        Remove(name);
        register_parameter(name, parameter);
    }

    public void Remove(string name) => Take(name)?.Dispose();

    /// <summary>Unregisters the entry and returns it alive (see <see cref="AdapterModuleDict.Take"/>).</summary>
    public Parameter? Take(string name)
    {
        if (!_internal_params.TryGetValue(name, out var p))
        {
            return null;
        }
        _internal_params.Remove(name);
        return p;
    }
}
