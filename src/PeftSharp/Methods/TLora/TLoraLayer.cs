using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.TLora;

/// <summary>
/// Transformed LoRA on a Linear or GPT-2 Conv1D layer: <c>y = W·(T·x) + b + ΔR·x</c>, computed as
/// <c>base(x) + W·(T·x − x) + ΔR·x</c> so other adapters on the layer still see the base output. T (TTM,
/// <c>[d_in, d_in]</c>) is applied core by core and never formed in the forward; ΔR (TRM, <c>[d_out, d_in]</c>) is formed
/// from its cores, as LoHa forms its ΔW. Tensors: <c>tlora_transform.&lt;k&gt;</c> <c>[ρ, n_k, n_k, ρ]</c> and
/// <c>tlora_residual.&lt;k&gt;</c> <c>[q, o_k, i_k, q]</c> (in memory <c>tlora_transform.&lt;adapter&gt;.&lt;k&gt;</c>).
/// Identity init: TT core k is I in its rank-(0, 0) slice, random in its outgoing extra slices <c>[0, :, :, b &gt; 0]</c> and
/// zero in its incoming ones <c>[a &gt; 0, …]</c>, so every path through an extra rank meets a zero (T = I exactly) while all
/// slices still get gradients; the first TR core is zero, the others N(0, 1/q).
/// </summary>
public sealed class TLoraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _transform = new();
    private readonly AdapterModuleDict _residual = new();
    private readonly Dictionary<string, TLoraConfig> _configs = [];

    public TLoraLayer(BaseLayer baseLayer) : base(nameof(TLoraLayer), baseLayer)
    {
        if (baseLayer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D))
        {
            throw new PeftException($"TLoRA wraps Linear and GPT-2 Conv1D layers, not {baseLayer.Kind}");
        }
        register_module("tlora_transform", _transform);
        register_module("tlora_residual", _residual);
    }

    public override string PeftType => TLoraConfig.Type;

    public TLoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    /// <summary>The transform's cores (TTM), most significant factor first.</summary>
    public IReadOnlyList<Parameter> TransformCores(string adapterName) => ((CoreList)_transform[adapterName]).Cores;

    /// <summary>The residual's cores (TRM).</summary>
    public IReadOnlyList<Parameter> ResidualCores(string adapterName) => ((CoreList)_residual[adapterName]).Cores;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        if (config is not TLoraConfig c)
        {
            throw new PeftException($"TLoRA layer got a {config.PeftType} config for adapter '{adapterName}'");
        }
        var inFactors = TensorNetworks.Factorize(Base.InFeatures, c.NumCores);
        var outFactors = TensorNetworks.Factorize(Base.OutFeatures, c.NumCores);
        var transform = new List<Parameter>();
        var residual = new List<Parameter>();
        using (torch.no_grad())
        {
            for (var k = 0; k < c.NumCores; k++)
            {
                var n = inFactors[k];
                var rankIn = k == 0 ? 1 : c.TransformRank;
                var rankOut = k == c.NumCores - 1 ? 1 : c.TransformRank;
                var g = torch.zeros([rankIn, n, n, rankOut], dtype: Base.DType, device: Base.Device);
                g[0, .., .., 0] = torch.eye(n, dtype: Base.DType, device: Base.Device);
                if (rankOut > 1)
                {
                    g[0, .., .., 1..] = torch.empty([n, n, rankOut - 1], dtype: Base.DType, device: Base.Device).uniform_(-1.0 / n, 1.0 / n);
                }
                transform.Add(new Parameter(g));
                var h = torch.empty([c.Rank, outFactors[k], inFactors[k], c.Rank], dtype: Base.DType, device: Base.Device);
                if (k == 0 && c.InitWeights)
                {
                    h.zero_();
                }
                else
                {
                    h.normal_(0, 1 / Math.Sqrt(c.Rank));
                }
                residual.Add(new Parameter(h));
            }
        }
        _transform.Set(adapterName, new CoreList(transform));
        _residual.Set(adapterName, new CoreList(residual));
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _transform.Remove(adapterName);
        _residual.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        var transformed = TensorNetworks.TtApply(TransformCores(adapterName), input) - input;
        var residual = TensorNetworks.TrFull(ResidualCores(adapterName));
        var update = nn.functional.linear(transformed, Base.OutInWeight()) + nn.functional.linear(input, residual);
        return result + (update.dtype == result.dtype ? update : update.to(result.dtype));
    }

    /// <summary><c>W·T − W + ΔR</c> in <c>[out, in]</c> layout (T and ΔR formed in full).</summary>
    public override Tensor? DeltaWeight(string adapterName)
    {
        var w = Base.OutInWeight().detach();
        var t = TensorNetworks.TtFull(TransformCores(adapterName));
        return w.matmul(t) - w + TensorNetworks.TrFull(ResidualCores(adapterName));
    }

    /// <summary><c>W ← W·T + ΔR</c>, computed in float64.</summary>
    protected override void MergeInto(string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var (t, r) = Full(adapterName);
        var w = Base.OutInWeight().detach().to(ScalarType.Float64);
        Base.SetFromOutIn(w.matmul(t) + r);
    }

    /// <summary><c>W = (W' − ΔR)·T⁻¹</c>, solved in float64; throws when T is singular.</summary>
    protected override void UnmergeFrom(string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var (t, r) = Full(adapterName);
        var m = Base.OutInWeight().detach().to(ScalarType.Float64) - r;
        Tensor w;
        try
        {
            // X·T = M  ⇔  Tᵀ·Xᵀ = Mᵀ.
            w = torch.linalg.solve(t.t(), m.t()).t();
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            throw new PeftException($"TLoRA adapter '{adapterName}': cannot unmerge, the transform T is singular ({e.Message.Split('\n')[0]})", e);
        }
        if (!w.isfinite().all().item<bool>())
        {
            throw new PeftException($"TLoRA adapter '{adapterName}': cannot unmerge, the transform T is singular");
        }
        Base.SetFromOutIn(w);
    }

    private (Tensor T, Tensor R) Full(string adapterName)
    {
        var t = TensorNetworks.TtFull([.. TransformCores(adapterName).Select(p => p.detach().to(ScalarType.Float64))]);
        var r = TensorNetworks.TrFull([.. ResidualCores(adapterName).Select(p => p.detach().to(ScalarType.Float64))]);
        return (t, r);
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>();
        var transform = TransformCores(adapterName);
        for (var k = 0; k < transform.Count; k++)
        {
            tensors[$"tlora_transform.{k}"] = transform[k];
        }
        var residual = ResidualCores(adapterName);
        for (var k = 0; k < residual.Count; k++)
        {
            tensors[$"tlora_residual.{k}"] = residual[k];
        }
        return tensors;
    }

    /// <summary>A list of cores registered as parameters <c>0</c>, <c>1</c>, … (PyTorch's ParameterList naming).</summary>
    private sealed class CoreList : nn.Module<Tensor, Tensor>
    {
        private readonly int _count;

        public CoreList(IReadOnlyList<Parameter> cores) : base(nameof(CoreList))
        {
            _count = cores.Count;
            for (var k = 0; k < cores.Count; k++)
            {
                register_parameter(k.ToString(System.Globalization.CultureInfo.InvariantCulture), cores[k]);
            }
        }

        // Looked up by name each time: .to(device/dtype) replaces the Parameter objects.
        public IReadOnlyList<Parameter> Cores =>
            [.. Enumerable.Range(0, _count).Select(k => _internal_params[k.ToString(System.Globalization.CultureInfo.InvariantCulture)])];

        public override Tensor forward(Tensor x) => throw new PeftException("a TLoRA core list holds parameters; it is not a layer");
    }
}
