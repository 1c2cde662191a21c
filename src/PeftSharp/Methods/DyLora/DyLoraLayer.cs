using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.DyLora;

/// <summary>
/// DyLoRA on a Linear or GPT-2 Conv1D layer, with LoRA's factors and names (<see cref="LoraFactorsLayer"/>:
/// <c>lora_A.&lt;adapter&gt;.weight</c> <c>[r, in]</c>, <c>lora_B.&lt;adapter&gt;.weight</c> <c>[out, r]</c>). Forward at
/// rank b: <c>base(x) + (α/b)·B[:, :b]·A[:b, :]·dropout(x)</c>. In training mode b is the rank the hooks sampled for the
/// step (the full rank if none was set); otherwise it is the evaluation rank (<see cref="IRankTruncatable"/>, default r).
/// A merge uses the evaluation rank and remembers it, so an unmerge removes exactly what was added (trap 3); changing the
/// rank of a merged adapter is refused.
/// </summary>
public sealed class DyLoraLayer : LoraFactorsLayer, IRankTruncatable
{
    private readonly Dictionary<string, DyLoraConfig> _configs = [];
    private readonly Dictionary<string, int> _trainingRank = [];
    private readonly Dictionary<string, int> _evaluationRank = [];
    private readonly Dictionary<string, int> _mergedRank = [];

    public DyLoraLayer(BaseLayer baseLayer) : base(nameof(DyLoraLayer), baseLayer) { }

    public override string PeftType => DyLoraConfig.Type;

    public DyLoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    public int MaxRank(string adapterName) => _configs[adapterName].Rank;

    public int? EvaluationRank(string adapterName) => _evaluationRank.TryGetValue(adapterName, out var b) ? b : null;

    public void SetEvaluationRank(string adapterName, int? rank)
    {
        var max = MaxRank(adapterName);
        if (rank is int b && (b < 1 || b > max))
        {
            throw new PeftException($"DyLoRA adapter '{adapterName}': rank {b} is outside 1..{max}");
        }
        if (MergedAdapters.Contains(adapterName) && (rank ?? max) != _mergedRank[adapterName])
        {
            throw new PeftException($"DyLoRA adapter '{adapterName}' is merged with rank {_mergedRank[adapterName]}; unmerge it before changing the rank");
        }
        if (rank is int r)
        {
            _evaluationRank[adapterName] = r;
        }
        else
        {
            _evaluationRank.Remove(adapterName);
        }
    }

    /// <summary>The rank of the current training step (set by <see cref="DyLoraHooks"/> for every layer at once).</summary>
    public void SetTrainingRank(string adapterName, int rank)
    {
        var max = MaxRank(adapterName);
        if (rank < 1 || rank > max)
        {
            throw new PeftException($"DyLoRA adapter '{adapterName}': training rank {rank} is outside 1..{max}");
        }
        _trainingRank[adapterName] = rank;
    }

    /// <summary>The rank the forward uses now: the step's sampled rank in training mode, the evaluation rank otherwise.</summary>
    public int ActiveRank(string adapterName) =>
        training && _trainingRank.TryGetValue(adapterName, out var t) ? t : EvaluationRank(adapterName) ?? MaxRank(adapterName);

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (DyLoraConfig)config;
        // true: A Kaiming-uniform, B = 0; false: both Kaiming-uniform. The stored scale is the full rank's, α/r.
        AddFactors(adapterName, c.Rank, c.ScalingAt(c.Rank), c.Dropout, InitLoraWeights.FromFlag(c.InitLoraWeights));
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        base.RemoveAdapter(adapterName);
        _configs.Remove(adapterName);
        _trainingRank.Remove(adapterName);
        _evaluationRank.Remove(adapterName);
        _mergedRank.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var c = _configs[adapterName];
        var b = ActiveRank(adapterName);
        var input = AdapterInput(adapterName, x);
        var (a, bw) = Factors(adapterName, b, detachPrefix: training && c.FrozenPrefix);
        var branch = nn.functional.linear(nn.functional.linear(input, a), bw);
        return result + branch * c.ScalingAt(b);
    }

    // A[:b, :] and B[:, :b]; in frozen-prefix training the first b − 1 components are detached, so only component b
    // (row b − 1 of A, column b − 1 of B) receives a gradient, as the official DyLoRA layer in "frozen" mode.
    private (Tensor A, Tensor B) Factors(string adapterName, int b, bool detachPrefix)
    {
        var a = A(adapterName);
        var bw = B(adapterName);
        if (!detachPrefix || b == 1)
        {
            return (a[..b], bw[.., ..b]);
        }
        return (torch.cat([a[..(b - 1)].detach(), a[(b - 1)..b]], 0), torch.cat([bw[.., ..(b - 1)].detach(), bw[.., (b - 1)..b]], 1));
    }

    private Tensor DeltaAt(string adapterName, int b)
    {
        var (a, bw) = Factors(adapterName, b, detachPrefix: false);
        return bw.matmul(a) * _configs[adapterName].ScalingAt(b);
    }

    /// <summary><c>(α/b)·B[:, :b]·A[:b, :]</c> at the evaluation rank b, in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) => DeltaAt(adapterName, EvaluationRank(adapterName) ?? MaxRank(adapterName));

    protected override void MergeInto(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var b = EvaluationRank(adapterName) ?? MaxRank(adapterName);
        Base.AddToWeight(DeltaAt(adapterName, b));
        _mergedRank[adapterName] = b;
    }

    protected override void UnmergeFrom(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        Base.AddToWeight(DeltaAt(adapterName, _mergedRank[adapterName]), -1.0);
        _mergedRank.Remove(adapterName);
    }
}
