using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Hydra;

/// <summary>
/// Hydra on a Linear or GPT-2 Conv1D layer (reference §11; official code extremebird/Hydra <c>vtab1k/hydra.py</c>). In
/// memory: <c>hydra_par_A.&lt;adapter&gt;.weight</c> <c>[r_p, d_in]</c>, <c>hydra_par_B…</c> <c>[d_out, r_p]</c>,
/// <c>hydra_seq_A…</c> <c>[r_s, d_out]</c>, <c>hydra_seq_B…</c> <c>[d_out, r_s]</c> (and <c>.bias</c> with <c>hydra_bias</c>).
/// Forward: <c>y = h + s·B_p(drop(A_p x + d_p)) + s·u_p + s·B_s(drop(A_s h + d_s)) + s·u_s</c>, where h is the layer output
/// so far (base output, plus any adapter applied before this one), so stacked adapters compose like their merges.
/// </summary>
public sealed class HydraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _parA = new();
    private readonly AdapterModuleDict _parB = new();
    private readonly AdapterModuleDict _seqA = new();
    private readonly AdapterModuleDict _seqB = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, HydraConfig> _configs = [];

    public HydraLayer(BaseLayer baseLayer) : base(nameof(HydraLayer), baseLayer)
    {
        if (baseLayer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D))
        {
            throw new PeftException($"Hydra wraps Linear and GPT-2 Conv1D layers, not {baseLayer.Kind}");
        }
        register_module("hydra_dropout", _dropout);
        register_module("hydra_par_A", _parA);
        register_module("hydra_par_B", _parB);
        register_module("hydra_seq_A", _seqA);
        register_module("hydra_seq_B", _seqB);
    }

    public override string PeftType => HydraConfig.Type;

    /// <summary>The config of one adapter.</summary>
    public HydraConfig ConfigOf(string adapterName) => _configs[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        if (config is not HydraConfig c)
        {
            throw new PeftException($"Hydra layer got a {config.PeftType} config for adapter '{adapterName}'");
        }
        var (din, dout) = (Base.InFeatures, Base.OutFeatures);
        var parA = Projection(din, c.Rank, c.BranchBias);
        var parB = Projection(c.Rank, dout, c.BranchBias);
        var seqA = Projection(dout, c.SequentialRank, c.BranchBias);
        var seqB = Projection(c.SequentialRank, dout, c.BranchBias);
        if (c.InitWeights != HydraInit.Random)
        {
            using var _ = torch.no_grad();
            foreach (var down in new[] { parA, seqA })
            {
                if (c.InitWeights == HydraInit.Xavier)
                {
                    nn.init.xavier_uniform_(down.weight!);
                }
                down.bias?.zero_();
            }
            foreach (var up in new[] { parB, seqB })
            {
                up.weight!.zero_();
                up.bias?.zero_();
            }
        }
        _parA.Set(adapterName, parA);
        _parB.Set(adapterName, parB);
        _seqA.Set(adapterName, seqA);
        _seqB.Set(adapterName, seqB);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
    }

    // TorchSharp's Linear init is PyTorch's: weight Kaiming-uniform (a = √5), bias U(±1/√fan_in).
    private Linear Projection(long inFeatures, long outFeatures, bool bias) =>
        nn.Linear(inFeatures, outFeatures, hasBias: bias, device: Base.Device, dtype: Base.DType);

    protected override void RemoveAdapter(string adapterName)
    {
        _parA.Remove(adapterName);
        _parB.Remove(adapterName);
        _seqA.Remove(adapterName);
        _seqB.Remove(adapterName);
        _dropout.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var s = _configs[adapterName].Scale;
        var drop = _dropout[adapterName];
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        var h = result.dtype == Base.DType ? result : result.to(Base.DType);
        var parallel = _parB[adapterName].call(drop.call(_parA[adapterName].call(input)));
        var sequential = _seqB[adapterName].call(drop.call(_seqA[adapterName].call(h)));
        var update = (parallel + sequential) * s;
        return result + (update.dtype == result.dtype ? update : update.to(result.dtype));
    }

    /// <summary>
    /// The weight part of the merge at the current base weight, <c>s·(B_p·A_p + B_s·A_s·W)</c> in <c>[out, in]</c> layout.
    /// The merge also changes the bias (see <see cref="MergeInto"/>), so this alone does not reproduce the adapter.
    /// </summary>
    public override Tensor? DeltaWeight(string adapterName)
    {
        var f = Factors(adapterName, Base.DType);
        var w = Base.OutInWeight().detach();
        return (f.Bp.matmul(f.Ap) + f.Bs.matmul(f.As.matmul(w))) * _configs[adapterName].Scale;
    }

    /// <summary>
    /// The bias part of the merge, <c>s·(B_s·A_s·b + B_p·d_p + u_p + B_s·d_s + u_s)</c> <c>[out]</c> (b the base bias, 0 when
    /// there is none); null when the merge leaves the bias alone (no base bias and no branch biases).
    /// </summary>
    public override Tensor? DeltaBias(string adapterName)
    {
        var bias = Base.Bias;
        if (bias is null && !_configs[adapterName].BranchBias)
        {
            return null;
        }
        return BiasChange(adapterName, Factors(adapterName, Base.DType), bias?.detach());
    }

    /// <summary>
    /// <c>W' = W + s·(B_p·A_p + B_s·A_s·W)</c> and <c>b' = b + s·(B_s·A_s·b + B_p·d_p + u_p + B_s·d_s + u_s)</c>, as the
    /// official <c>reparameterize</c> (with the layer's own W: trap 1 of the reference). Computed in float64.
    /// </summary>
    protected override void MergeInto(string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var c = _configs[adapterName];
        var bias = Base.Bias;
        if (bias is null && c.BranchBias)
        {
            throw new PeftException($"Hydra adapter '{adapterName}' has branch biases (hydra_bias) but the base layer has no bias to merge them into");
        }
        var f = Factors(adapterName, ScalarType.Float64);
        var w = Base.OutInWeight().detach().to(ScalarType.Float64);
        var seq = f.Bs.matmul(f.As) * c.Scale;
        Base.SetFromOutIn(w + seq.matmul(w) + f.Bp.matmul(f.Ap) * c.Scale);
        if (bias is not null)
        {
            var b = bias.detach().to(ScalarType.Float64);
            bias.copy_((b + BiasChange(adapterName, f, b)).to(bias.dtype));
        }
    }

    // s·(B_s·A_s·b + branch bias term), in the factors' dtype; b null reads as 0.
    private Tensor BiasChange(string adapterName, (Tensor Ap, Tensor Bp, Tensor As, Tensor Bs) f, Tensor? b)
    {
        var term = BranchBiasTerm(adapterName, f);
        if (b is not null)
        {
            term = term + f.Bs.matmul(f.As.matmul(b.to(f.Bs.dtype)));
        }
        return term * _configs[adapterName].Scale;
    }

    /// <summary>
    /// The inverse the reference gives: <c>W = (I + s·B_s·A_s)⁻¹ (W' − s·B_p·A_p)</c>, likewise for the bias, via Woodbury
    /// with the small <c>I_r + s·A_s·B_s</c> (invertible exactly when the big one is). Throws when it is singular.
    /// </summary>
    protected override void UnmergeFrom(string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var c = _configs[adapterName];
        var f = Factors(adapterName, ScalarType.Float64);
        var w = Base.OutInWeight().detach().to(ScalarType.Float64) - f.Bp.matmul(f.Ap) * c.Scale;
        var bias = Base.Bias;
        var b = bias is null ? null : bias.detach().to(ScalarType.Float64) - BranchBiasTerm(adapterName, f) * c.Scale;
        var small = torch.eye(f.As.shape[0], dtype: ScalarType.Float64, device: w.device) + f.As.matmul(f.Bs) * c.Scale;
        Tensor solveW, solveB;
        try
        {
            solveW = torch.linalg.solve(small, f.As.matmul(w));
            solveB = b is null ? solveW : torch.linalg.solve(small, f.As.matmul(b.unsqueeze(1)));
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            throw new PeftException($"Hydra adapter '{adapterName}': cannot unmerge, I + s·B_s·A_s is singular ({e.Message.Split('\n')[0]})", e);
        }
        if (!solveW.isfinite().all().item<bool>() || !solveB.isfinite().all().item<bool>())
        {
            throw new PeftException($"Hydra adapter '{adapterName}': cannot unmerge, I + s·B_s·A_s is singular");
        }
        Base.SetFromOutIn(w - f.Bs.matmul(solveW) * c.Scale);
        if (bias is not null)
        {
            bias.copy_((b! - f.Bs.matmul(solveB).squeeze(1) * c.Scale).to(bias.dtype));
        }
    }

    // B_p·d_p + u_p + B_s·d_s + u_s (zero without branch biases).
    private Tensor BranchBiasTerm(string adapterName, (Tensor Ap, Tensor Bp, Tensor As, Tensor Bs) f)
    {
        var term = torch.zeros(f.Bp.shape[0], dtype: f.Bp.dtype, device: f.Bp.device);
        if (!_configs[adapterName].BranchBias)
        {
            return term;
        }
        Tensor B(AdapterModuleDict d) => ((Linear)d[adapterName]).bias!.detach().to(f.Bp.dtype);
        return term + f.Bp.matmul(B(_parA)) + B(_parB) + f.Bs.matmul(B(_seqA)) + B(_seqB);
    }

    private (Tensor Ap, Tensor Bp, Tensor As, Tensor Bs) Factors(string adapterName, ScalarType dtype)
    {
        Tensor W(AdapterModuleDict d) => ((Linear)d[adapterName]).weight!.detach().to(dtype);
        return (W(_parA), W(_parB), W(_seqA), W(_seqB));
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (key, dict) in new[] { ("hydra_par_A", _parA), ("hydra_par_B", _parB), ("hydra_seq_A", _seqA), ("hydra_seq_B", _seqB) })
        {
            var linear = (Linear)dict[adapterName];
            tensors[key + ".weight"] = linear.weight!;
            if (linear.bias is { } bias)
            {
                tensors[key + ".bias"] = bias;
            }
        }
        return tensors;
    }
}
