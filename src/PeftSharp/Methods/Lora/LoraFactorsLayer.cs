using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// LoRA's two factors on a Linear or GPT-2 Conv1D layer and its forward, <c>y = base(x) + s · B A dropout(x)</c>, for
/// methods built on plain LoRA factors: LoRA-Pro and ALLoRA (which change only how they train), LoRA-Squeeze (which
/// re-factors them), SoRA and DiffoRA (a gate; see <see cref="BetweenFactors"/>) and DyLoRA (prefix ranks). Factors and
/// names are PEFT LoRA's: in memory <c>lora_A.&lt;adapter&gt;.weight [r, d_in]</c>, <c>lora_B.&lt;adapter&gt;.weight
/// [d_out, r]</c> and <c>lora_dropout.&lt;adapter&gt;</c>, saved <c>lora_A.weight</c> / <c>lora_B.weight</c>; the init is
/// PEFT's <c>init_lora_weights</c> (<see cref="LoraInit.Standard"/>). Merges as LoRA.
/// </summary>
public abstract class LoraFactorsLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, (double Scaling, double Dropout)> _settings = [];

    /// <summary>Registers <c>lora_dropout</c>, <c>lora_A</c>, <c>lora_B</c> in that order; a subclass registers its own maps after them.</summary>
    protected LoraFactorsLayer(string name, BaseLayer baseLayer) : base(name, baseLayer)
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

    /// <summary>Creates A and B for <paramref name="rank"/> with LoRA's <paramref name="init"/>, scale <paramref name="scaling"/> and input dropout.</summary>
    protected void AddFactors(string adapterName, int rank, double scaling, double dropout, InitLoraWeights init)
    {
        var a = nn.Linear(Base.InFeatures, rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var b = nn.Linear(rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        LoraInit.Standard(a.weight!, b.weight!, init, rank);
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
        _dropout.Set(adapterName, dropout > 0 ? nn.Dropout(dropout) : nn.Identity());
        _settings[adapterName] = (scaling, dropout);
    }

    /// <summary>Puts new factor modules in place of A and B (disposing the old ones), in the old ones' training mode.</summary>
    protected void ReplaceFactors(string adapterName, Linear a, Linear b)
    {
        var training = _loraA[adapterName].training;
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
        a.train(training);
        b.train(training);
    }

    /// <summary>Unregisters A, B and the dropout of one adapter without disposing them and returns them; the caller owns them.</summary>
    protected IReadOnlyList<IDisposable> TakeFactors(string adapterName) =>
        [.. new IDisposable?[] { _loraA.Take(adapterName), _loraB.Take(adapterName), _dropout.Take(adapterName) }.OfType<IDisposable>()];

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _dropout.Remove(adapterName);
        _settings.Remove(adapterName);
    }

    /// <summary>The adapter's input: <paramref name="x"/> in the base layer's dtype, through the adapter's dropout.</summary>
    protected Tensor AdapterInput(string adapterName, Tensor x)
    {
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        return _settings[adapterName].Dropout > 0 ? _dropout[adapterName].call(input) : input;
    }

    /// <summary>Applied to <c>A·x</c> (last dimension r) before B: the identity here, SoRA's gate <c>g ⊙ A·x</c>.</summary>
    protected virtual Tensor BetweenFactors(string adapterName, Tensor ax) => ax;

    /// <summary><c>B·BetweenFactors(A·input)</c>, unscaled.</summary>
    protected Tensor Branch(string adapterName, Tensor input) =>
        _loraB[adapterName].call(BetweenFactors(adapterName, _loraA[adapterName].call(input)));

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var s = ScalingOf(adapterName);
        var branch = Branch(adapterName, AdapterInput(adapterName, x));
        // As LoraLayer: multiplying by s = 1 (ALLoRA always; the others when alpha = r) is exact, so it is skipped
        // (and a reloaded LoRA gives the same bits).
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
