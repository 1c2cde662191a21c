using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Federated;

/// <summary>
/// The server's aggregate of one round: per module the global factors (ΔW = s·B·A), the averaged dense weights, and
/// the client weights p_k used. Owns its tensors.
/// </summary>
public sealed class GlobalUpdate : IDisposable
{
    internal GlobalUpdate(AggregationKind kind, IReadOnlyDictionary<string, double> clientWeights, IReadOnlyDictionary<string, ModuleFactors> modules,
        IReadOnlyDictionary<string, Tensor> denseWeights)
    {
        Kind = kind;
        ClientWeights = clientWeights;
        Modules = modules;
        DenseWeights = denseWeights;
    }

    public AggregationKind Kind { get; }

    /// <summary>Client id → p_k = n_k / Σn.</summary>
    public IReadOnlyDictionary<string, double> ClientWeights { get; }

    /// <summary>Module path → global factors (stacking: rank Σr_k and scale 1; averaging: the clients' rank).</summary>
    public IReadOnlyDictionary<string, ModuleFactors> Modules { get; }

    /// <summary>Parameter path → Σ p_k W_k of the clients' dense weights (exact FedAvg for fully trained tensors).</summary>
    public IReadOnlyDictionary<string, Tensor> DenseWeights { get; }

    /// <summary>The global ΔW of one module (<c>[out, in]</c>), a new tensor.</summary>
    public Tensor Delta(string module) => Modules.TryGetValue(module, out var f)
        ? f.Delta()
        : throw new PeftException($"the {Kind.Name()} update has no module '{module}'");

    /// <summary>
    /// Folds the update into <paramref name="model"/> in place, as FLoRA's server does with <c>merge_and_unload</c>: every
    /// module's weight gains its ΔW (transposed for GPT-2 Conv1D) and every dense weight is overwritten with the average.
    /// All modules and shapes are checked before any weight changes.
    /// </summary>
    public void MergeInto(nn.Module model)
    {
        var layers = CheckModules(model);
        var parameters = CheckDense(model);
        foreach (var (layer, f) in layers)
        {
            using var scope = torch.NewDisposeScope();
            layer.AddToWeight(f.Delta());
        }
        CopyDense(parameters);
    }

    /// <summary>
    /// Overwrites only the dense weights (modules_to_save) with their average and leaves every other weight alone:
    /// FedIT keeps the averaged A and B as a global adapter instead of merging them.
    /// </summary>
    public void MergeDenseInto(nn.Module model) => CopyDense(CheckDense(model));

    private List<(BaseLayer Layer, ModuleFactors Factors)> CheckModules(nn.Module model)
    {
        var layers = new List<(BaseLayer, ModuleFactors)>();
        foreach (var (name, f) in Modules)
        {
            nn.Module module;
            try
            {
                module = ModuleTree.Get(model, name);
            }
            catch (PeftException e)
            {
                throw new ModelMismatchException($"global update: module '{name}' is not in the model ({e.Message})");
            }
            var layer = BaseLayer.TryCreate(module);
            if (layer is null || layer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D))
            {
                throw new ModelMismatchException($"global update: '{name}' is a {module.GetType().Name}, not a Linear/Conv1D (is an adapter still injected?)");
            }
            if (layer.OutFeatures != f.B.shape[0] || layer.InFeatures != f.A.shape[1])
            {
                throw new ModelMismatchException($"global update: '{name}' ΔW is [{f.B.shape[0]}, {f.A.shape[1]}]; the layer is [{layer.OutFeatures}, {layer.InFeatures}]");
            }
            layers.Add((layer, f));
        }
        return layers;
    }

    private Dictionary<string, Parameter> CheckDense(nn.Module model)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        foreach (var (name, t) in DenseWeights)
        {
            if (!parameters.TryGetValue(name, out var p))
            {
                throw new ModelMismatchException($"global update: dense weight '{name}' is not a parameter of the model");
            }
            if (!p.shape.SequenceEqual(t.shape))
            {
                throw new ModelMismatchException($"global update: dense weight '{name}' is [{string.Join(", ", t.shape)}]; the model's is [{string.Join(", ", p.shape)}]");
            }
        }
        return parameters;
    }

    private void CopyDense(Dictionary<string, Parameter> parameters)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, t) in DenseWeights)
        {
            parameters[name].copy_(t);
        }
    }

    public void Dispose()
    {
        foreach (var m in Modules.Values)
        {
            m.A.Dispose();
            m.B.Dispose();
        }
        foreach (var t in DenseWeights.Values)
        {
            t.Dispose();
        }
    }
}
