using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Federated;

/// <summary>
/// One adapted module's LoRA factors: ΔW = <see cref="Scaling"/>·B·A with A <c>[r, in]</c> (lora_A) and B
/// <c>[out, r]</c> (lora_B), in <c>[out, in]</c> layout whatever the base layer stores (GPT-2 Conv1D is transposed at merge).
/// </summary>
public sealed record ModuleFactors(Tensor A, Tensor B, double Scaling)
{
    /// <summary>The rank r (rows of A).</summary>
    public long Rank => A.shape[0];

    /// <summary>s·B·A, a new tensor <c>[out, in]</c>.</summary>
    public Tensor Delta()
    {
        using var scope = torch.NewDisposeScope();
        return (B.matmul(A) * Scaling).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What one client sends the server after a round of local training: its LoRA factors per module, the dense weights
/// it trained in full (modules_to_save, e.g. a classification head), its local data size n_k (the aggregation weight
/// p_k = n_k / Σn) and the base model it adapted. Owns its tensors (detached copies).
/// </summary>
public sealed class ClientUpdate : IDisposable
{
    public ClientUpdate(string clientId, long dataSize, string baseModel, IReadOnlyDictionary<string, ModuleFactors> modules,
        IReadOnlyDictionary<string, Tensor>? denseWeights = null)
    {
        ClientId = clientId;
        DataSize = dataSize;
        BaseModel = baseModel;
        Modules = modules;
        DenseWeights = denseWeights ?? new Dictionary<string, Tensor>();
    }

    public string ClientId { get; }

    /// <summary>Local training examples n_k (FLoRA's and FedAvg's weight, L1-normalised over the clients).</summary>
    public long DataSize { get; }

    /// <summary>The base model's identity (path or hub id); every client of an aggregation must share it.</summary>
    public string BaseModel { get; }

    /// <summary>Adapted module path (e.g. <c>bert.encoder.layer.0.attention.self.query</c>) → its factors.</summary>
    public IReadOnlyDictionary<string, ModuleFactors> Modules { get; }

    /// <summary>Model parameter path (e.g. <c>classifier.weight</c>) → a fully trained weight, averaged with the clients' weights.</summary>
    public IReadOnlyDictionary<string, Tensor> DenseWeights { get; }

    /// <summary>
    /// Copies one LoRA adapter out of a model: the factors of every adapted Linear/Conv1D with their scale, and the
    /// adapter's modules_to_save copies under the original module's parameter names.
    /// </summary>
    public static ClientUpdate FromAdapter(PeftModel model, string adapterName, string clientId, long dataSize, string baseModel)
    {
        using var _ = torch.no_grad();
        var modules = new Dictionary<string, ModuleFactors>(StringComparer.Ordinal);
        foreach (var (name, layer) in model.AdapterLayers())
        {
            if (!layer.AdapterNames.Contains(adapterName))
            {
                continue;
            }
            if (layer is not LoraLayer lora || layer.Base.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D))
            {
                throw new PeftException($"'{name}': federated aggregation handles LoRA on Linear/Conv1D layers; this is a {layer.PeftType} adapter on a {layer.Base.Kind}");
            }
            if (lora.ConfigOf(adapterName).UseDora)
            {
                throw new PeftException($"'{name}': adapter '{adapterName}' uses DoRA, whose ΔW is not B·A; federated stacking needs plain LoRA");
            }
            var t = lora.AdapterTensors(adapterName);
            modules[name] = new ModuleFactors(t["lora_A.weight"].detach().clone(), t["lora_B.weight"].detach().clone(), lora.ScalingOf(adapterName));
        }
        var dense = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, wrapper) in model.SavedModules())
        {
            if (wrapper.Has(adapterName))
            {
                foreach (var (pname, p) in wrapper.CopyOf(adapterName).named_parameters())
                {
                    dense[name + "." + pname] = p.detach().clone();
                }
            }
        }
        if (modules.Count == 0)
        {
            throw new PeftException($"client '{clientId}': adapter '{adapterName}' adapts no module");
        }
        return new ClientUpdate(clientId, dataSize, baseModel, modules, dense);
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
