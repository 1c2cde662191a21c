using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// LoRA's forward on a Linear or GPT-2 Conv1D layer, <c>y = base(x) + s · B A dropout(x)</c>, for methods that keep
/// LoRA's structure and change only how it trains (LoRA-Pro's equivalent-gradient optimizer, ALLoRA's gradient factor).
/// Factors and names are PEFT LoRA's: in memory <c>lora_A.&lt;adapter&gt;.weight [r, d_in]</c> and
/// <c>lora_B.&lt;adapter&gt;.weight [d_out, r]</c>, saved <c>lora_A.weight</c> / <c>lora_B.weight</c>; A is Kaiming-uniform
/// (a = √5), B = 0 (PEFT's <c>init_lora_weights=True</c>), or A ~ N(0, 1/r²) with <c>gaussian</c>. Merges as LoRA.
/// </summary>
public abstract class TrainingRuleLoraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, (double Scaling, double Dropout)> _settings = [];

    protected TrainingRuleLoraLayer(string name, BaseLayer baseLayer) : base(name, baseLayer)
    {
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    /// <summary>The down-projection A <c>[r, d_in]</c> of one adapter.</summary>
    public Parameter A(string adapterName) => WeightOf(_loraA[adapterName]);

    /// <summary>The up-projection B <c>[d_out, r]</c> of one adapter.</summary>
    public Parameter B(string adapterName) => WeightOf(_loraB[adapterName]);

    /// <summary>The scale s applied to B·A.</summary>
    public double ScalingOf(string adapterName) => _settings[adapterName].Scaling;

    /// <summary>Creates A and B for <paramref name="rank"/> (LoRA's init) with scale <paramref name="scaling"/> and input dropout.</summary>
    protected void AddFactors(string adapterName, int rank, double scaling, double dropout, bool gaussian)
    {
        var a = nn.Linear(Base.InFeatures, rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var b = nn.Linear(rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        LoraInit.Standard(a.weight!, b.weight!, gaussian ? InitLoraWeights.Gaussian : InitLoraWeights.Default, rank);
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
        _dropout.Set(adapterName, dropout > 0 ? nn.Dropout(dropout) : nn.Identity());
        _settings[adapterName] = (scaling, dropout);
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _dropout.Remove(adapterName);
        _settings.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var (s, p) = _settings[adapterName];
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        if (p > 0)
        {
            input = _dropout[adapterName].call(input);
        }
        var branch = _loraB[adapterName].call(_loraA[adapterName].call(input));
        // s = 1 (ALLoRA always; LoRA-Pro when alpha = r): multiplying by 1 is exact, so it is skipped.
        return result + (s == 1.0 ? branch : branch * s);
    }

    /// <summary><c>s · B A</c> in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) => B(adapterName).matmul(A(adapterName)) * ScalingOf(adapterName);

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["lora_A.weight"] = A(adapterName),
        ["lora_B.weight"] = B(adapterName),
    };

    private static Parameter WeightOf(nn.Module<Tensor, Tensor> m) =>
        (m as Linear)?.weight ?? throw new PeftException($"unexpected LoRA factor module {m.GetType().Name}");
}
