using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Sora;

/// <summary>
/// SoRA on a Linear or GPT-2 Conv1D layer: <c>base(x) + s·B(g ⊙ A(dropout(x)))</c> with the gate g of shape <c>[1, r]</c>
/// (the official <c>LowRankLinear.gate</c>). In-memory names <c>lora_A.&lt;adapter&gt;.weight</c>,
/// <c>lora_B.&lt;adapter&gt;.weight</c>, <c>lora_gate.&lt;adapter&gt;</c>; saved as <c>lora_A.weight</c>, <c>lora_B.weight</c>,
/// <c>lora_gate</c>.
/// </summary>
public sealed class SoraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterParameterDict _gate = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, SoraConfig> _configs = [];

    public SoraLayer(BaseLayer baseLayer) : base(nameof(SoraLayer), baseLayer)
    {
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
        register_module("lora_gate", _gate);
    }

    public override string PeftType => SoraConfig.Type;

    public SoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    /// <summary>A: <c>[r, in]</c>.</summary>
    public Parameter A(string adapterName) => ((Linear)_loraA[adapterName]).weight!;

    /// <summary>B: <c>[out, r]</c>.</summary>
    public Parameter B(string adapterName) => ((Linear)_loraB[adapterName]).weight!;

    /// <summary>The gate g: <c>[1, r]</c>.</summary>
    public Parameter Gate(string adapterName) => _gate[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (SoraConfig)config;
        var a = nn.Linear(Base.InFeatures, c.Rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var b = nn.Linear(c.Rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        using (torch.no_grad())
        {
            nn.init.kaiming_uniform_(a.weight!, Math.Sqrt(5));
            if (c.InitLoraWeights)
            {
                nn.init.zeros_(b.weight!);
            }
            else
            {
                nn.init.kaiming_uniform_(b.weight!, Math.Sqrt(5));
            }
        }
        // The official gate is torch.randn(1, r): mixed signs, so thresholding has something to zero from the start.
        var gate = new Parameter(torch.randn(1, c.Rank, dtype: Base.DType, device: Base.Device));
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
        _gate.Set(adapterName, gate);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _gate.Remove(adapterName);
        _dropout.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var c = _configs[adapterName];
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        if (c.Dropout > 0)
        {
            input = _dropout[adapterName].call(input);
        }
        var gated = _loraA[adapterName].call(input) * _gate[adapterName];
        return result + _loraB[adapterName].call(gated) * c.Scaling;
    }

    /// <summary><c>ΔW = s·B·diag(g)·A</c> in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        (B(adapterName) * _gate[adapterName]).matmul(A(adapterName)) * _configs[adapterName].Scaling;

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["lora_A.weight"] = A(adapterName),
        ["lora_B.weight"] = B(adapterName),
        ["lora_gate"] = _gate[adapterName],
    };
}
