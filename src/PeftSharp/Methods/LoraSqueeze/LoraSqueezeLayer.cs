using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraSqueeze;

/// <summary>
/// LoRA on a Linear or GPT-2 Conv1D whose rank can shrink in place (<see cref="Squeeze"/>). Same names, forward and
/// ΔW as <see cref="Lora.LoraLayer"/> (<c>lora_A.&lt;adapter&gt;.weight</c>, <c>base(x) + s·B(A(dropout(x)))</c>), so the
/// saved tensors are a PEFT LoRA's.
/// </summary>
public sealed class LoraSqueezeLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, LoraSqueezeConfig> _configs = [];

    public LoraSqueezeLayer(BaseLayer baseLayer) : base(nameof(LoraSqueezeLayer), baseLayer)
    {
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    public override string PeftType => LoraSqueezeConfig.Type;

    /// <summary>The adapter's current rank (rows of A).</summary>
    public int RankOf(string adapterName) => (int)A(adapterName).shape[0];

    /// <summary>The constant scale s.</summary>
    public double ScalingOf(string adapterName) => _configs[adapterName].Scaling;

    /// <summary>lora_A <c>[r, in]</c>.</summary>
    public Parameter A(string adapterName) => ((Linear)_loraA[adapterName]).weight!;

    /// <summary>lora_B <c>[out, r]</c>.</summary>
    public Parameter B(string adapterName) => ((Linear)_loraB[adapterName]).weight!;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LoraSqueezeConfig)config;
        var a = nn.Linear(Base.InFeatures, c.Rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var b = nn.Linear(c.Rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        // LoRA's default init (A Kaiming-uniform, B = 0): the same draws as LoRA at rank r under the same seed.
        Lora.LoraInit.Standard(a.weight!, b.weight!, Lora.InitLoraWeights.Default, c.Rank);
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _dropout.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var s = _configs[adapterName].Scaling;
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        if (_configs[adapterName].Dropout > 0)
        {
            input = _dropout[adapterName].call(input);
        }
        var branch = _loraB[adapterName].call(_loraA[adapterName].call(input));
        // As LoraLayer: multiplying by s = 1 is exact, so it is skipped (and a reloaded LoRA gives the same bits).
        return result + (s == 1.0 ? branch : branch * s);
    }

    public override Tensor? DeltaWeight(string adapterName) => B(adapterName).matmul(A(adapterName)) * _configs[adapterName].Scaling;

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["lora_A.weight"] = A(adapterName),
        ["lora_B.weight"] = B(adapterName),
    };

    /// <summary>
    /// Re-factors the adapter to rank <paramref name="rank"/> (≤ the current rank): the best rank-k approximation of
    /// ΔW = s·B·A (<see cref="FactoredSvd"/>, balanced √σ split, same s), in new Parameters. The returned changes carry
    /// the optimizer-state maps: with B' = B·P and A' = Q·A, a ΔW-gradient maps exactly as ∂B' = ∂B·Qᵀ and ∂A' = Pᵀ·∂A,
    /// so first moments (and any other linear state, e.g. SGD momentum) go through that map, and second moments
    /// (fields ending in <c>_sq</c>) through its element-wise square (exact when the summed gradient entries are
    /// independent with mean zero). The step count is kept. Runs in the caller's dispose scope.
    /// </summary>
    public IReadOnlyList<ParameterChange> Squeeze(string adapterName, int rank)
    {
        var current = RankOf(adapterName);
        if (rank < 1 || rank > current)
        {
            throw new PeftException($"lora_squeeze: cannot squeeze adapter '{adapterName}' from rank {current} to {rank}");
        }
        using var noGrad = torch.no_grad();
        var oldA = A(adapterName);
        var oldB = B(adapterName);
        var s = _configs[adapterName].Scaling;
        using var svd = FactoredSvd.Of(oldB, oldA, s);
        var (b, a) = svd.Truncate(rank, s);
        var (p, q) = svd.RankMaps(rank, s);
        var newA = new Parameter(a.to(oldA.dtype).contiguous(), oldA.requires_grad);
        var newB = new Parameter(b.to(oldB.dtype).contiguous(), oldB.requires_grad);
        var linearA = nn.Linear(Base.InFeatures, rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var linearB = nn.Linear(rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        linearA.weight = newA;
        linearB.weight = newB;
        var training = _loraA[adapterName].training;
        _loraA.Set(adapterName, linearA);
        _loraB.Set(adapterName, linearB);
        linearA.train(training);
        linearB.train(training);

        // ∂A' = Pᵀ ∂A  ([k, r]·[r, in]);  ∂B' = ∂B Qᵀ  ([out, r]·[r, k]).
        var pt = p.t();
        var qt = q.t();
        return
        [
            new ParameterChange(oldA, newA, (field, state) =>
                (field.EndsWith("_sq", StringComparison.Ordinal) ? pt.square() : pt).matmul(state.to(ScalarType.Float64)).to(state.dtype)),
            new ParameterChange(oldB, newB, (field, state) =>
                state.to(ScalarType.Float64).matmul(field.EndsWith("_sq", StringComparison.Ordinal) ? qt.square() : qt).to(state.dtype)),
        ];
    }
}
