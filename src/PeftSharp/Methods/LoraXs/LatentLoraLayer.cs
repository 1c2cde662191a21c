using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraXs;

/// <summary>
/// The structure LoRA-XS and LoRA-SB share: <c>y = base(x) + s · B R A dropout(x)</c> with B <c>[d_out, r]</c> and
/// A <c>[r, d_in]</c> frozen and only R <c>[r, r]</c> trained. The three factors are bias-free Linear modules named
/// <c>&lt;prefix&gt;_A</c>, <c>&lt;prefix&gt;_R</c>, <c>&lt;prefix&gt;_B</c> (in memory <c>lora_xs_R.default.weight</c>; saved
/// <c>lora_xs_R.weight</c>), applied A, then R, then B. B and A are saved too: they come from a decomposition (or from
/// data) that another machine's LAPACK need not reproduce bit for bit, and R means nothing without the exact frames.
/// The base weight is never rewritten.
/// </summary>
public abstract class LatentLoraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _a = new();
    private readonly AdapterModuleDict _r = new();
    private readonly AdapterModuleDict _b = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, double> _scaling = [];
    private readonly string _prefix;

    protected LatentLoraLayer(string name, BaseLayer baseLayer, string prefix) : base(name, baseLayer)
    {
        _prefix = prefix;
        register_module(prefix + "_dropout", _dropout);
        register_module(prefix + "_A", _a);
        register_module(prefix + "_R", _r);
        register_module(prefix + "_B", _b);
    }

    /// <summary>The frozen down-projection A <c>[r, d_in]</c>.</summary>
    public Parameter A(string adapterName) => WeightOf(_a[adapterName]);

    /// <summary>The trained r×r matrix R.</summary>
    public Parameter R(string adapterName) => WeightOf(_r[adapterName]);

    /// <summary>The frozen up-projection B <c>[d_out, r]</c>.</summary>
    public Parameter B(string adapterName) => WeightOf(_b[adapterName]);

    /// <summary>The scale s applied to B·R·A.</summary>
    public double ScalingOf(string adapterName) => _scaling[adapterName];

    /// <summary>Creates the three factors with uninitialised values (the method fills them), B and A frozen.</summary>
    protected void AddFactors(string adapterName, int rank, double scaling, double dropout)
    {
        var device = Base.Device;
        var dtype = Base.DType;
        var a = nn.Linear(Base.InFeatures, rank, hasBias: false, device: device, dtype: dtype);
        var r = nn.Linear(rank, rank, hasBias: false, device: device, dtype: dtype);
        var b = nn.Linear(rank, Base.OutFeatures, hasBias: false, device: device, dtype: dtype);
        a.weight!.requires_grad = false;
        b.weight!.requires_grad = false;
        _a.Set(adapterName, a);
        _r.Set(adapterName, r);
        _b.Set(adapterName, b);
        _dropout.Set(adapterName, dropout > 0 ? nn.Dropout(dropout) : nn.Identity());
        _scaling[adapterName] = scaling;
    }

    /// <summary>Overwrites B, R and A (given in any floating dtype; cast to the layer's).</summary>
    protected void SetFactors(string adapterName, Tensor b, Tensor r, Tensor a)
    {
        using var _ = torch.no_grad();
        B(adapterName).copy_(b);
        R(adapterName).copy_(r);
        A(adapterName).copy_(a);
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _a.Remove(adapterName);
        _r.Remove(adapterName);
        _b.Remove(adapterName);
        _dropout.Remove(adapterName);
        _scaling.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var input = _dropout[adapterName].call(x.dtype == Base.DType ? x : x.to(Base.DType));
        var h = _b[adapterName].call(_r[adapterName].call(_a[adapterName].call(input)));
        return result + h * _scaling[adapterName];
    }

    /// <summary><c>s · B R A</c> in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        B(adapterName).matmul(R(adapterName)).matmul(A(adapterName)) * _scaling[adapterName];

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        [_prefix + "_A.weight"] = A(adapterName),
        [_prefix + "_R.weight"] = R(adapterName),
        [_prefix + "_B.weight"] = B(adapterName),
    };

    /// <summary>Only R trains.</summary>
    public override IEnumerable<Parameter> TrainableParameters(string adapterName) => [R(adapterName)];

    private static Parameter WeightOf(nn.Module<Tensor, Tensor> m) =>
        (m as Linear)?.weight ?? throw new PeftException($"unexpected factor module {m.GetType().Name}");
}
