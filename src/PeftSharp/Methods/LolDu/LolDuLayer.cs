using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LolDu;

/// <summary>
/// LoLDU on a Linear or GPT-2 Conv1D layer. From <c>W = P L U_lu</c> (torch.linalg.lu, partial pivoting, in fp32/fp64):
/// <c>D = diag(U_lu)</c>, <c>U = U_lu / D</c> (row-wise), and the layer keeps <c>loldu_L = P·L[:, :r]</c> <c>[d_out, r]</c>
/// (the permutation is folded into L's rows, so P is never stored), <c>loldu_U = U[:r]</c> <c>[r, d_in]</c>, the trained
/// <c>loldu_z [r]</c> and its initial value <c>loldu_z0 = D[:r]</c> (frozen).
/// <para>
/// The official code rewrites W into the residual <c>W − σ P L_r diag(D_r) U_r</c> and adds <c>σ P L_r diag(z) U_r</c>
/// back. We add <c>σ P L_r diag(z − z₀) U_r</c> to the untouched W instead: the same weight in exact arithmetic, but the
/// output at init is the base's bit for bit, disabling gives the original model, and loading needs no LU at all (all four
/// tensors are saved, so another machine's LU rounding cannot shift the trained z).
/// </para>
/// </summary>
public sealed class LolDuLayer : AdapterLayer
{
    private readonly AdapterParameterDict _l = new();
    private readonly AdapterParameterDict _u = new();
    private readonly AdapterParameterDict _z = new();
    private readonly AdapterParameterDict _z0 = new();
    private readonly Dictionary<string, double> _scaling = [];

    public LolDuLayer(BaseLayer baseLayer) : base(nameof(LolDuLayer), baseLayer)
    {
        register_module("loldu_L", _l);
        register_module("loldu_U", _u);
        register_module("loldu_z", _z);
        register_module("loldu_z0", _z0);
    }

    public override string PeftType => LolDuConfig.Type;

    /// <summary>P·L_r <c>[d_out, r]</c> (frozen).</summary>
    public Parameter L(string adapterName) => _l[adapterName];

    /// <summary>U_r <c>[r, d_in]</c>, unit diagonal (frozen).</summary>
    public Parameter U(string adapterName) => _u[adapterName];

    /// <summary>The trained diagonal z <c>[r]</c>.</summary>
    public Parameter Z(string adapterName) => _z[adapterName];

    /// <summary>z at init, the LU pivots D[:r] (frozen).</summary>
    public Parameter Z0(string adapterName) => _z0[adapterName];

    public double ScalingOf(string adapterName) => _scaling[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LolDuConfig)config;
        var r = c.Rank;
        WeightFactors.CheckRank("LoLDU", "r", r, Base);
        var dtype = Base.DType;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var w = WeightFactors.OutInCopy(Base);
            var (p, l, ulu) = torch.linalg.lu(w);
            var pivots = ulu.diagonal()[..r];
            CheckPivots(pivots, w, r);
            _l.Set(adapterName, WeightFactors.NewParameter(p.matmul(l[.., ..r]), dtype, trainable: false));
            _u.Set(adapterName, WeightFactors.NewParameter(ulu[..r] / pivots.unsqueeze(1), dtype, trainable: false));
            _z.Set(adapterName, WeightFactors.NewParameter(pivots, dtype, trainable: true));
            _z0.Set(adapterName, WeightFactors.NewParameter(pivots, dtype, trainable: false));
        }
        _scaling[adapterName] = c.Scaling;
    }

    // U = U_lu / D explodes on a (near-)zero pivot, i.e. when W's rank is below r (reference §6, trap 2).
    private void CheckPivots(Tensor pivots, Tensor w, int r)
    {
        var magnitude = pivots.abs().to_type(ScalarType.Float64);
        var eps = w.dtype == ScalarType.Float64 ? 2.2e-16 : 1.2e-7;
        var tolerance = eps * Math.Max(w.shape[0], w.shape[1]) * Math.Max(w.abs().max().to_type(ScalarType.Float64).item<double>(), double.Epsilon);
        var smallest = magnitude.min().item<double>();
        if (!(smallest > tolerance))
        {
            var i = magnitude.argmin().item<long>();
            throw new PeftException(
                $"LoLDU: LU pivot {i} of the {Base.InFeatures} → {Base.OutFeatures} weight has magnitude {magnitude[i].item<double>():G4} (≈ 0): " +
                $"the weight's rank is below r = {r}; lower r or exclude the module");
        }
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _l.Remove(adapterName);
        _u.Remove(adapterName);
        _z.Remove(adapterName);
        _z0.Remove(adapterName);
        _scaling.Remove(adapterName);
    }

    // σ · P L_r ((z − z₀) ⊙ (U_r x)): O(r·(d_in + d_out)) per row instead of rebuilding the d_out × d_in weight (trap 5).
    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        var h = input.matmul(_u[adapterName].t()) * (_z[adapterName] - _z0[adapterName]);
        return result + h.matmul(_l[adapterName].t()) * _scaling[adapterName];
    }

    /// <summary><c>σ · P L_r diag(z − z₀) U_r</c> in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        (_l[adapterName] * (_z[adapterName] - _z0[adapterName])).matmul(_u[adapterName]) * _scaling[adapterName];

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["loldu_L"] = _l[adapterName],
        ["loldu_U"] = _u[adapterName],
        ["loldu_z"] = _z[adapterName],
        ["loldu_z0"] = _z0[adapterName],
    };

    /// <summary>Only z trains (as the official code, whose parameter collector returns <c>vector_z</c> alone).</summary>
    public override IEnumerable<Parameter> TrainableParameters(string adapterName) => [_z[adapterName]];
}
