using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Diffora;

/// <summary>
/// A DiffoRA candidate during the search (Linear or GPT-2 Conv1D): a LoRA with PEFT's in-memory names
/// (<c>lora_A.&lt;adapter&gt;.weight</c>, <c>lora_B.&lt;adapter&gt;.weight</c>) plus one architecture logit
/// <c>diffora_gate.&lt;adapter&gt;</c> (shape [1]). Forward, the continuous relaxation of "adapt or skip":
/// <c>y = γ·(W x + s·B A dropout(x)) + (1 − γ)·W x = W x + γ·s·B A dropout(x)</c>, <c>γ = sigmoid(ω)</c>.
/// Trainable: <c>r·(d_in + d_out) + 1</c>. ΔW = <c>γ·s·B·A</c>, so it merges.
/// </summary>
public sealed class DifforaLayer : AdapterLayer
{
    private readonly DetachableModuleDict _loraA = new();
    private readonly DetachableModuleDict _loraB = new();
    private readonly DetachableModuleDict _dropout = new();
    private readonly DetachableParameterDict _gate = new();
    private readonly Dictionary<string, DifforaConfig> _configs = [];

    public DifforaLayer(BaseLayer baseLayer) : base(nameof(DifforaLayer), baseLayer)
    {
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
        register_module("diffora_gate", _gate);
    }

    public override string PeftType => DifforaConfig.Type;

    /// <summary>The LoRA down factor A <c>[r, d_in]</c> of one adapter.</summary>
    public Parameter LoraA(string adapterName) => ((Linear)_loraA[adapterName]).weight!;

    /// <summary>The LoRA up factor B <c>[d_out, r]</c> of one adapter.</summary>
    public Parameter LoraB(string adapterName) => ((Linear)_loraB[adapterName]).weight!;

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
        var a = nn.Linear(Base.InFeatures, c.Rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var b = nn.Linear(c.Rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        LoraInit.Standard(a.weight!, b.weight!, c.InitLoraWeights, c.Rank);
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _gate.Set(adapterName, new Parameter(torch.full(1, c.GateInit, dtype: Base.DType, device: Base.Device)));
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _dropout.Remove(adapterName);
        _gate.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    /// <summary>
    /// Unregisters the adapter's modules and gate without disposing them and returns them (discretisation keeps the
    /// parameters alive for the optimizer, see <see cref="DetachableModuleDict"/>); the adapter is then empty here.
    /// </summary>
    internal IReadOnlyList<IDisposable> DetachAdapter(string adapterName)
    {
        var kept = new List<IDisposable?> { _loraA.Take(adapterName), _loraB.Take(adapterName), _dropout.Take(adapterName), _gate.Take(adapterName) };
        return [.. kept.OfType<IDisposable>()];
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var c = _configs[adapterName];
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        if (c.Dropout > 0)
        {
            input = _dropout[adapterName].call(input);
        }
        var branch = _loraB[adapterName].call(_loraA[adapterName].call(input));
        // γ·s folded into one [1] factor: the relaxed weighted sum γ·adapted + (1 − γ)·base reduces to base + γ·s·BAx.
        var weight = torch.sigmoid(_gate[adapterName]) * c.Scaling;
        return result + branch * weight.to(branch.dtype);
    }

    public override Tensor? DeltaWeight(string adapterName)
    {
        var weight = torch.sigmoid(_gate[adapterName]) * _configs[adapterName].Scaling;
        return LoraB(adapterName).matmul(LoraA(adapterName)) * weight;
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["lora_A.weight"] = LoraA(adapterName),
        ["lora_B.weight"] = LoraB(adapterName),
        ["diffora_gate"] = _gate[adapterName],
    };
}
