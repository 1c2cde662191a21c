using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Sora;

/// <summary>
/// SoRA on a Linear or GPT-2 Conv1D layer: <c>base(x) + s·B(g ⊙ A(dropout(x)))</c> with the gate g of shape <c>[1, r]</c>
/// (the official <c>LowRankLinear.gate</c>). LoRA's factors and names (<see cref="LoraFactorsLayer"/>) plus
/// <c>lora_gate.&lt;adapter&gt;</c>; saved as <c>lora_A.weight</c>, <c>lora_B.weight</c>, <c>lora_gate</c>.
/// </summary>
public sealed class SoraLayer : LoraFactorsLayer
{
    private readonly AdapterParameterDict _gate = new();
    private readonly Dictionary<string, SoraConfig> _configs = [];

    public SoraLayer(BaseLayer baseLayer) : base(nameof(SoraLayer), baseLayer)
    {
        register_module("lora_gate", _gate);
    }

    public override string PeftType => SoraConfig.Type;

    public SoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    /// <summary>The gate g: <c>[1, r]</c>.</summary>
    public Parameter Gate(string adapterName) => _gate[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (SoraConfig)config;
        // true: A Kaiming-uniform, B = 0; false: B Kaiming-uniform too (PEFT's init_lora_weights=False).
        AddFactors(adapterName, c.Rank, c.Scaling, c.Dropout, InitLoraWeights.FromFlag(c.InitLoraWeights));
        // The official gate is torch.randn(1, r): mixed signs, so thresholding has something to zero from the start.
        _gate.Set(adapterName, new Parameter(torch.randn(1, c.Rank, dtype: Base.DType, device: Base.Device)));
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        base.RemoveAdapter(adapterName);
        _gate.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor BetweenFactors(string adapterName, Tensor ax) => ax * _gate[adapterName];

    /// <summary><c>ΔW = s·B·diag(g)·A</c> in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        (B(adapterName) * _gate[adapterName]).matmul(A(adapterName)) * ScalingOf(adapterName);

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>(base.AdapterTensors(adapterName))
    {
        ["lora_gate"] = _gate[adapterName],
    };
}
