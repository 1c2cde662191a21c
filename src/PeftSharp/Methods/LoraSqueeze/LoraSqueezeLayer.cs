using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraSqueeze;

/// <summary>
/// LoRA on a Linear or GPT-2 Conv1D whose rank can shrink in place (<see cref="Squeeze"/>). Same names, forward and
/// ΔW as LoRA (<see cref="LoraFactorsLayer"/>: <c>lora_A.&lt;adapter&gt;.weight</c>, <c>base(x) + s·B(A(dropout(x)))</c>),
/// so the saved tensors are a PEFT LoRA's. The scale s stays constant through every squeeze.
/// </summary>
public sealed class LoraSqueezeLayer(BaseLayer baseLayer) : LoraFactorsLayer(nameof(LoraSqueezeLayer), baseLayer)
{
    public override string PeftType => LoraSqueezeConfig.Type;

    /// <summary>The adapter's current rank (rows of A).</summary>
    public int RankOf(string adapterName) => (int)A(adapterName).shape[0];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LoraSqueezeConfig)config;
        // LoRA's default init (A Kaiming-uniform, B = 0): the same draws as LoRA at rank r under the same seed.
        AddFactors(adapterName, c.Rank, c.Scaling, c.Dropout, InitLoraWeights.Default);
    }

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
        var s = ScalingOf(adapterName);
        using var svd = FactoredSvd.Of(oldB, oldA, s);
        var (b, a) = svd.Truncate(rank, s);
        var (p, q) = svd.RankMaps(rank, s);
        var newA = new Parameter(a.to(oldA.dtype).contiguous(), oldA.requires_grad);
        var newB = new Parameter(b.to(oldB.dtype).contiguous(), oldB.requires_grad);
        var linearA = nn.Linear(Base.InFeatures, rank, hasBias: false, device: Base.Device, dtype: Base.DType);
        var linearB = nn.Linear(rank, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
        linearA.weight = newA;
        linearB.weight = newB;
        ReplaceFactors(adapterName, linearA, linearB);

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
