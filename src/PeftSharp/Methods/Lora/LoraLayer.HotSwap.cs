using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

// Hot-swap support (PEFT utils/hotswap.py): the rank axis of each factor, zero-padding to a larger allocation, and the
// swapped-in config. The config keeps the adapter's own rank, so s = α / r (α / √r) stays right while the factors are
// padded: the zero rows of A and zero columns of B add nothing to B·A.
public sealed partial class LoraLayer
{
    private static readonly string[] s_swappableKeys = ["r", "lora_alpha", "rank_pattern", "alpha_pattern", "init_lora_weights"];

    public override IReadOnlyCollection<string> HotSwappableConfigKeys => s_swappableKeys;

    /// <summary>The rank the factors are allocated with (larger than <see cref="RankOf"/> after <see cref="PadRank"/>).</summary>
    public long AllocatedRankOf(string adapterName) =>
        Base.Kind == BaseLayerKind.Embedding ? _embeddingA[adapterName].shape[0] : WeightOf(_loraA[adapterName]).shape[0];

    public override bool IsRankPadded(string adapterName) => AllocatedRankOf(adapterName) > RankOf(adapterName);

    protected internal override int? RankAxis(string adapterName, string key) => key switch
    {
        "lora_A.weight" or "lora_embedding_A" => 0,
        "lora_B.weight" or "lora_embedding_B" => 1,
        _ => null,
    };

    protected internal override void SwapConfig(string adapterName, AdapterConfig moduleConfig)
    {
        var c = (LoraConfig)moduleConfig;
        if (c.Rank > AllocatedRankOf(adapterName))
        {
            throw new PeftException($"hot-swap: rank {c.Rank} is larger than the allocated {AllocatedRankOf(adapterName)}");
        }
        _configs[adapterName] = c;
    }

    protected internal override void PadRank(string adapterName, int targetRank)
    {
        var allocated = AllocatedRankOf(adapterName);
        if (targetRank < allocated)
        {
            throw new PeftException($"PrepareForHotSwap: target rank {targetRank} is smaller than adapter '{adapterName}''s allocated rank {allocated}");
        }
        if (targetRank == allocated)
        {
            return;
        }
        using var _ = torch.no_grad();
        if (Base.Kind == BaseLayerKind.Embedding)
        {
            _embeddingA.Set(adapterName, Padded(_embeddingA[adapterName], 0, targetRank));
            _embeddingB.Set(adapterName, Padded(_embeddingB[adapterName], 1, targetRank));
            return;
        }
        var oldA = _loraA[adapterName];
        var oldB = _loraB[adapterName];
        nn.Module<Tensor, Tensor> newA, newB;
        if (oldA is Conv2d convA)
        {
            var wa = convA.weight!;
            newA = nn.Conv2d(wa.shape[1], targetRank, (wa.shape[2], wa.shape[3]), stride: (convA.stride[0], convA.stride[1]),
                padding: (convA.padding![0], convA.padding[1]), dilation: (convA.dilation[0], convA.dilation[1]), padding_mode: convA.padding_mode,
                bias: false, device: wa.device, dtype: wa.dtype);
            var wb = WeightOf(oldB);
            newB = nn.Conv2d(targetRank, wb.shape[0], 1, bias: false, device: wb.device, dtype: wb.dtype);
        }
        else
        {
            var wa = WeightOf(oldA);
            var wb = WeightOf(oldB);
            newA = nn.Linear(wa.shape[1], targetRank, hasBias: false, device: wa.device, dtype: wa.dtype);
            newB = nn.Linear(targetRank, wb.shape[0], hasBias: false, device: wb.device, dtype: wb.dtype);
        }
        CopyPadded(WeightOf(oldA), WeightOf(newA), 0);
        CopyPadded(WeightOf(oldB), WeightOf(newB), 1);
        newA.train(oldA.training);
        newB.train(oldB.training);
        _loraA.Set(adapterName, newA);
        _loraB.Set(adapterName, newB);
    }

    private static Parameter Padded(Parameter old, int axis, long rank)
    {
        var shape = old.shape.ToArray();
        shape[axis] = rank;
        var p = new Parameter(torch.zeros(shape, dtype: old.dtype, device: old.device), old.requires_grad);
        p.narrow(axis, 0, old.shape[axis]).copy_(old);
        return p;
    }

    private static void CopyPadded(Parameter from, Parameter to, int axis)
    {
        to.requires_grad = from.requires_grad;
        to.zero_();
        to.narrow(axis, 0, from.shape[axis]).copy_(from);
    }
}
