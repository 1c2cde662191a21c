using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Diffora;

/// <summary>
/// A registered name → module map (PEFT's ModuleDict names: <c>lora_A.default.weight</c>) that can also hand an entry
/// over without disposing it: discretisation unregisters the dropped candidates while the optimizer may still hold
/// their parameters (a resumed run cannot remove them from it), so they must stay valid tensors.
/// </summary>
internal sealed class DetachableModuleDict : nn.Module
{
    public DetachableModuleDict() : base(nameof(DetachableModuleDict)) { }

    public nn.Module<Tensor, Tensor> this[string name] =>
        (nn.Module<Tensor, Tensor>)(_internal_submodules.TryGetValue(name, out var m) ? m : throw new PeftException($"DiffoRA: no adapter '{name}'"));

    public bool Contains(string name) => _internal_submodules.ContainsKey(name);

    public void Set(string name, nn.Module<Tensor, Tensor> module)
    {
        Remove(name);
        register_module(name, module);
    }

    /// <summary>Unregisters and disposes the entry (a deleted adapter).</summary>
    public void Remove(string name) => Take(name)?.Dispose();

    /// <summary>Unregisters the entry and returns it alive; the caller owns it.</summary>
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

/// <summary>The parameter counterpart of <see cref="DetachableModuleDict"/> (PEFT's ParameterDict names: <c>diffora_gate.default</c>).</summary>
internal sealed class DetachableParameterDict : nn.Module
{
    public DetachableParameterDict() : base(nameof(DetachableParameterDict)) { }

    public Parameter this[string name] =>
        _internal_params.TryGetValue(name, out var p) ? p : throw new PeftException($"DiffoRA: no adapter '{name}'");

    public bool Contains(string name) => _internal_params.ContainsKey(name);

    public void Set(string name, Parameter parameter)
    {
        Remove(name);
        register_parameter(name, parameter);
    }

    public void Remove(string name) => Take(name)?.Dispose();

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
