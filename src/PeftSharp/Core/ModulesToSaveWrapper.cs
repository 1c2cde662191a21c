using PeftSharp.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>
/// PEFT's <c>ModulesToSaveWrapper</c>: keeps the original module (<c>original_module</c>) and one fully trainable copy
/// per adapter (<c>modules_to_save.&lt;adapter&gt;</c>); the copy of the active adapter runs, the original when adapters
/// are disabled. Used for heads such as <c>score</c> or <c>classifier</c>.
/// </summary>
public sealed class ModulesToSaveWrapper : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _original;
    private readonly AdapterModuleDict _copies = new();

    public ModulesToSaveWrapper(nn.Module<Tensor, Tensor> original) : base(nameof(ModulesToSaveWrapper))
    {
        _original = original;
        register_module("original_module", original);
        register_module("modules_to_save", _copies);
    }

    public nn.Module<Tensor, Tensor> Original => _original;

    /// <summary>The adapter whose copy runs; null runs the original.</summary>
    public string? ActiveAdapter { get; set; }

    public bool Disabled { get; set; }

    public bool Has(string adapterName) => _copies.Contains(adapterName);

    public nn.Module<Tensor, Tensor> CopyOf(string adapterName) => _copies[adapterName];

    public void AddAdapter(string adapterName)
    {
        _copies.Set(adapterName, ModuleCloner.Clone(_original));
        train(_original.training);
        ActiveAdapter ??= adapterName;
    }

    public void DeleteAdapter(string adapterName)
    {
        _copies.Remove(adapterName);
        if (ActiveAdapter == adapterName)
        {
            ActiveAdapter = null;
        }
    }

    /// <summary>The copy's parameters under PEFT's saved names (the module's own names: <c>weight</c>, <c>bias</c>).</summary>
    public IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) =>
        _copies[adapterName].named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    /// <summary>While set, each batch row runs its adapter's copy (the original for <c>__base__</c> or an adapter without one), as PEFT's mixed batch.</summary>
    public AdapterRouting? RowAdapters { get; internal set; }

    public override Tensor forward(Tensor x)
    {
        if (!Disabled && RowAdapters is { } routing)
        {
            using var scope = torch.NewDisposeScope();
            var result = _original.call(x);
            return routing.Scatter(x, result, skip: name => !_copies.Contains(name), apply: (name, rows, _) => _copies[name].call(rows), where: "a modules_to_save copy")
                .MoveToOuterDisposeScope();
        }
        return !Disabled && ActiveAdapter is { } a && _copies.Contains(a) ? _copies[a].call(x) : _original.call(x);
    }
}

/// <summary>Deep copies of the leaf modules heads are made of (TorchSharp modules have no generic clone).</summary>
public static class ModuleCloner
{
    public static nn.Module<Tensor, Tensor> Clone(nn.Module<Tensor, Tensor> module)
    {
        using var _ = torch.no_grad();
        nn.Module<Tensor, Tensor> copy = module switch
        {
            Linear l => nn.Linear(l.in_features, l.out_features, hasBias: l.bias is not null, device: l.weight!.device, dtype: l.weight.dtype),
            Embedding e => nn.Embedding(e.weight!.shape[0], e.weight.shape[1], device: e.weight.device, dtype: e.weight.dtype),
            Conv1D c => new Conv1D(c.InFeatures, c.OutFeatures, c.weight.device, c.weight.dtype),
            LayerNorm n => nn.LayerNorm(n.normalized_shape, n.eps, n.weight is not null, n.bias is not null, device: n.weight?.device, dtype: n.weight?.dtype),
            _ => throw new PeftException($"modules_to_save: cannot copy a {module.GetType().Name}; supported: Linear, Embedding, Conv1D, LayerNorm"),
        };
        var source = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in copy.named_parameters())
        {
            p.copy_(source[name]);
        }
        return copy;
    }
}
