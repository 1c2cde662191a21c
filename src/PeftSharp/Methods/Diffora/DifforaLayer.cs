using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Diffora;

/// <summary>
/// A DiffoRA candidate during the search (Linear or GPT-2 Conv1D): a LoRA with PEFT's in-memory names
/// (<see cref="LoraFactorsLayer"/>) plus one architecture logit <c>diffora_gate.&lt;adapter&gt;</c> (shape [1]). Forward, the
/// continuous relaxation of "adapt or skip": <c>y = γ·(W x + s·B A dropout(x)) + (1 − γ)·W x = W x + γ·s·B A dropout(x)</c>,
/// <c>γ = sigmoid(ω)</c>. Trainable: <c>r·(d_in + d_out) + 1</c>. ΔW = <c>γ·s·B·A</c>, so it merges.
/// </summary>
public sealed class DifforaLayer : LoraFactorsLayer
{
    private readonly AdapterParameterDict _gate = new();
    private readonly Dictionary<string, DifforaConfig> _configs = [];

    public DifforaLayer(BaseLayer baseLayer) : base(nameof(DifforaLayer), baseLayer)
    {
        register_module("diffora_gate", _gate);
    }

    public override string PeftType => DifforaConfig.Type;

    /// <summary>The architecture logit ω <c>[1]</c> of one adapter (the entry of the differential adaptation matrix).</summary>
    public Parameter Gate(string adapterName) => _gate[adapterName];

    /// <summary>γ = sigmoid(ω), the relaxed "adapt" weight of this module.</summary>
    public double GateValue(string adapterName)
    {
        using var _ = torch.no_grad();
        return torch.sigmoid(_gate[adapterName]).to_type(ScalarType.Float64).item<double>();
    }

    /// <summary>LoRA parameters this module keeps if selected: r·(d_in + d_out).</summary>
    public long LoraParameterCount(string adapterName) => _configs[adapterName].Rank * (Base.InFeatures + Base.OutFeatures);

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (DifforaConfig)config;
        AddFactors(adapterName, c.Rank, c.Scaling, c.Dropout, c.InitLoraWeights);
        _gate.Set(adapterName, new Parameter(torch.full(1, c.GateInit, dtype: Base.DType, device: Base.Device)));
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        base.RemoveAdapter(adapterName);
        _gate.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    /// <summary>
    /// Unregisters the adapter's modules and gate without disposing them and returns them (discretisation keeps the
    /// parameters alive for the optimizer, see <see cref="AdapterModuleDict.Take"/>); the adapter is then empty here.
    /// </summary>
    internal IReadOnlyList<IDisposable> DetachAdapter(string adapterName)
    {
        var kept = TakeFactors(adapterName).ToList();
        if (_gate.Take(adapterName) is { } gate)
        {
            kept.Add(gate);
        }
        return kept;
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var branch = Branch(adapterName, AdapterInput(adapterName, x));
        // γ·s folded into one [1] factor: the relaxed weighted sum γ·adapted + (1 − γ)·base reduces to base + γ·s·BAx.
        var weight = torch.sigmoid(_gate[adapterName]) * ScalingOf(adapterName);
        return result + branch * weight.to(branch.dtype);
    }

    public override Tensor? DeltaWeight(string adapterName)
    {
        var weight = torch.sigmoid(_gate[adapterName]) * ScalingOf(adapterName);
        return B(adapterName).matmul(A(adapterName)) * weight;
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>(base.AdapterTensors(adapterName))
    {
        ["diffora_gate"] = _gate[adapterName],
    };
}
