using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Salt;

/// <summary>
/// SALT on a Linear or GPT-2 Conv1D layer (reference §13; official <c>SALTLinear</c>). With the thin SVD
/// <c>W = U diag(σ) Vh</c> (k = min(d_in, d_out)) and t = <see cref="SaltConfig.TopCount"/>:
/// <c>Σ' = blockdiag(diag(a ⊙ σ[:t] + β), diag(σ[t:]) + X·Y)</c>, the ReLU applied to every entry of Σ' (so negative
/// off-diagonal entries of X·Y are cut, as the official code does), and the adapted weight is <c>W + U (ReLU(Σ') − diag(σ)) Vh</c>.
/// <para>
/// The official layer uses <c>U ReLU(Σ') Vh</c> in place of W; the two differ only by the SVD round-off <c>U diag(σ) Vh − W</c>
/// (≈ 1e-7 relative in fp32). Writing it as a delta on the untouched W makes the init the identity bit for bit, disabling
/// give the original model, and the merge additive and exactly reversible. Saved: <c>salt_scale [t]</c>, <c>salt_shift [t]</c>,
/// <c>salt_X [k−t, r]</c>, <c>salt_Y [r, k−t]</c> (trained) and <c>salt_U [d_out, k]</c>, <c>salt_S [k]</c>, <c>salt_Vh [k, d_in]</c>
/// (frozen): the SVD is saved because X·Y mixes singular directions, whose signs and order another LAPACK build may choose
/// differently.
/// </para>
/// </summary>
public sealed class SaltLayer : AdapterLayer
{
    private readonly AdapterParameterDict _u = new();
    private readonly AdapterParameterDict _s = new();
    private readonly AdapterParameterDict _vh = new();
    private readonly AdapterParameterDict _scale = new();
    private readonly AdapterParameterDict _shift = new();
    private readonly AdapterParameterDict _x = new();
    private readonly AdapterParameterDict _y = new();

    public SaltLayer(BaseLayer baseLayer) : base(nameof(SaltLayer), baseLayer)
    {
        register_module("salt_U", _u);
        register_module("salt_S", _s);
        register_module("salt_Vh", _vh);
        register_module("salt_scale", _scale);
        register_module("salt_shift", _shift);
        register_module("salt_X", _x);
        register_module("salt_Y", _y);
    }

    public override string PeftType => SaltConfig.Type;

    /// <summary>How many singular values get a scale and a shift in this adapter (t).</summary>
    public long TopCount(string adapterName) => _scale[adapterName].shape[0];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (SaltConfig)config;
        var k = Math.Min(Base.InFeatures, Base.OutFeatures);
        var t = c.TopCount(k);
        var rest = k - t;
        var dtype = Base.DType;
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var (u, s, vh) = torch.linalg.svd(WeightFactors.OutInCopy(Base), fullMatrices: false);
        var compute = s.dtype;
        Tensor x, y;
        if (c.InitWeights)
        {
            // kaiming_uniform_(X, a=√20, mode="fan_in", nonlinearity="relu"): with relu the slope a is ignored, so the
            // bound is √2·√(3/fan_in) = √(6/r) (fan_in of X [k−t, r] is r).
            var bound = Math.Sqrt(6.0 / c.Rank);
            x = torch.empty(rest, c.Rank, dtype: compute, device: Base.Device).uniform_(-bound, bound);
            y = torch.zeros(c.Rank, rest, dtype: compute, device: Base.Device);
        }
        else
        {
            x = torch.randn(rest, c.Rank, dtype: compute, device: Base.Device) * 0.01;
            y = torch.randn(c.Rank, rest, dtype: compute, device: Base.Device) * 0.01;
        }
        _u.Set(adapterName, WeightFactors.NewParameter(u, dtype, trainable: false));
        _s.Set(adapterName, WeightFactors.NewParameter(s, dtype, trainable: false));
        _vh.Set(adapterName, WeightFactors.NewParameter(vh, dtype, trainable: false));
        _scale.Set(adapterName, WeightFactors.NewParameter(torch.ones(t, dtype: compute, device: Base.Device), dtype, trainable: true));
        _shift.Set(adapterName, WeightFactors.NewParameter(torch.zeros(t, dtype: compute, device: Base.Device), dtype, trainable: true));
        _x.Set(adapterName, WeightFactors.NewParameter(x, dtype, trainable: true));
        _y.Set(adapterName, WeightFactors.NewParameter(y, dtype, trainable: true));
    }

    protected override void RemoveAdapter(string adapterName)
    {
        foreach (var d in new[] { _u, _s, _vh, _scale, _shift, _x, _y })
        {
            d.Remove(adapterName);
        }
    }

    /// <summary>Σ' <c>[k, k]</c> before the ReLU: the scaled and shifted top block and the residual block with X·Y added.</summary>
    public Tensor SigmaPrime(string adapterName)
    {
        var s = _s[adapterName];
        var t = TopCount(adapterName);
        var diagonal = torch.cat([_scale[adapterName] * s[..(int)t] + _shift[adapterName], s[(int)t..]]);
        var sigma = torch.diag(diagonal);
        if (_x[adapterName].shape[0] == 0)
        {
            return sigma;
        }
        // X·Y sits in the bottom-right (k−t)×(k−t) block: pad t zero rows above and t zero columns on the left.
        return sigma + nn.functional.pad(_x[adapterName].matmul(_y[adapterName]), [t, 0, t, 0]);
    }

    /// <summary><c>ReLU(Σ') − diag(σ)</c> <c>[k, k]</c>: the change of the singular matrix; exactly 0 at the default init.</summary>
    public Tensor SigmaDelta(string adapterName) => nn.functional.relu(SigmaPrime(adapterName)) - torch.diag(_s[adapterName]);

    /// <summary>
    /// The official auxiliary loss, <c>‖diag(a ⊙ σ_top + β) − diag(σ_top)‖_F + ‖X·Y‖_F</c> (before the ReLU). The official
    /// configuration weights it by 0 (<c>reg_multiplier</c>); add it to the training loss yourself if wanted.
    /// </summary>
    public Tensor RegularizationLoss(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var t = (int)TopCount(adapterName);
        var top = _s[adapterName][..t];
        var shifted = (_scale[adapterName] * top + _shift[adapterName] - top).norm();
        var lora = _x[adapterName].matmul(_y[adapterName]).norm();
        return (shifted + lora).MoveToOuterDisposeScope();
    }

    // U (ΔΣ (Vh x)) per row: O(k·(d_in + d_out) + k²) instead of rebuilding the d_out × d_in weight (reference trap 2).
    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        var h = input.matmul(_vh[adapterName].t()).matmul(SigmaDelta(adapterName).t());
        return result + h.matmul(_u[adapterName].t());
    }

    /// <summary><c>U (ReLU(Σ') − diag(σ)) Vh</c> in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        _u[adapterName].matmul(SigmaDelta(adapterName)).matmul(_vh[adapterName]);

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["salt_scale"] = _scale[adapterName],
        ["salt_shift"] = _shift[adapterName],
        ["salt_X"] = _x[adapterName],
        ["salt_Y"] = _y[adapterName],
        ["salt_U"] = _u[adapterName],
        ["salt_S"] = _s[adapterName],
        ["salt_Vh"] = _vh[adapterName],
    };

    public override IEnumerable<Parameter> TrainableParameters(string adapterName) =>
        [_scale[adapterName], _shift[adapterName], _x[adapterName], _y[adapterName]];
}
