using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Merging;

/// <summary>How TIES elects the sign of each entry: PEFT's <c>majority_sign_method</c>.</summary>
public enum MajoritySignMethod
{
    /// <summary><c>total</c>: the sign of the (unweighted) sum of the task tensors.</summary>
    Total,

    /// <summary><c>frequency</c>: the sign held by more task tensors (a tie counts as +).</summary>
    Frequency,
}

/// <summary>How <see cref="TaskVectorMerging.Prune"/> chooses the entries it keeps.</summary>
public enum PruneMethod
{
    /// <summary>The ⌊density·numel⌋ entries of largest |value|.</summary>
    Magnitude,

    /// <summary>Each entry kept with probability density (Bernoulli), as DARE.</summary>
    Random,
}

internal enum TaskVectorOperation
{
    TaskArithmetic,
    Ties,
    DareLinear,
    DareTies,
    MagnitudePrune,
}

/// <summary>
/// Merging of task tensors (same-shaped tensors, one per adapter) into one, as PEFT's <c>utils/merge_utils.py</c>:
/// task arithmetic, magnitude pruning, TIES (Yadav et al., arXiv 2306.01708) and DARE (Yu et al., arXiv 2311.03099).
/// Weights are applied after pruning and sign election; the weights tensor is float32, as PEFT builds it with
/// <c>torch.tensor(list)</c>. Inputs are never modified; every result is a new tensor.
/// </summary>
public static class TaskVectorMerging
{
    /// <summary>Σ wᵢ·tᵢ (PEFT's <c>task_arithmetic</c>).</summary>
    public static Tensor TaskArithmetic(IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights)
    {
        using var scope = torch.NewDisposeScope();
        var stacked = Stack(tensors, weights);
        return (stacked * Weights(weights, stacked)).sum(0L).MoveToOuterDisposeScope();
    }

    /// <summary>Σ wᵢ·prune(tᵢ) keeping the top-<paramref name="density"/> fraction of each by |value| (PEFT's <c>magnitude_prune</c>).</summary>
    public static Tensor MagnitudePrune(IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights, double density)
    {
        using var scope = torch.NewDisposeScope();
        var stacked = Stack(tensors.Select(t => Prune(t, density, PruneMethod.Magnitude)).ToList(), weights);
        return (stacked * Weights(weights, stacked)).sum(0L).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// TIES (PEFT's <c>ties</c>): prune each tensor by magnitude to <paramref name="density"/>, elect a sign per entry from
    /// the unweighted pruned tensors, then average the weighted entries that agree with it (divided by how many agree,
    /// not by the weight sum).
    /// </summary>
    public static Tensor Ties(IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights, double density, MajoritySignMethod method = MajoritySignMethod.Total)
    {
        using var scope = torch.NewDisposeScope();
        var stacked = Stack(tensors.Select(t => Prune(t, density, PruneMethod.Magnitude)).ToList(), weights);
        var mask = MajoritySignMask(stacked, method);
        return DisjointMerge(stacked * Weights(weights, stacked), mask).MoveToOuterDisposeScope();
    }

    /// <summary>DARE then a weighted sum (PEFT's <c>dare_linear</c>): entries dropped with probability 1 − density, the rest divided by density.</summary>
    public static Tensor DareLinear(IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights, double density, Generator? generator = null)
    {
        using var scope = torch.NewDisposeScope();
        var stacked = Stack(tensors.Select(t => Prune(t, density, PruneMethod.Random, rescale: true, generator)).ToList(), weights);
        return (stacked * Weights(weights, stacked)).sum(0L).MoveToOuterDisposeScope();
    }

    /// <summary>DARE then TIES' sign election and disjoint mean (PEFT's <c>dare_ties</c>).</summary>
    public static Tensor DareTies(IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights, double density, MajoritySignMethod method = MajoritySignMethod.Total, Generator? generator = null)
    {
        using var scope = torch.NewDisposeScope();
        var stacked = Stack(tensors.Select(t => Prune(t, density, PruneMethod.Random, rescale: true, generator)).ToList(), weights);
        var mask = MajoritySignMask(stacked, method);
        return DisjointMerge(stacked * Weights(weights, stacked), mask).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Zeroes entries of <paramref name="tensor"/> (PEFT's <c>prune</c>). A density ≥ 1 keeps everything (returned as a
    /// copy); a negative density is an error. Random pruning draws from <paramref name="generator"/> (torch's global
    /// generator when null) and, with <paramref name="rescale"/>, divides the kept entries by the density.
    /// </summary>
    public static Tensor Prune(Tensor tensor, double density, PruneMethod method, bool rescale = false, Generator? generator = null)
    {
        CheckDensity(density);
        if (density >= 1)
        {
            return tensor.clone();
        }
        using var scope = torch.NewDisposeScope();
        Tensor result;
        if (method == PruneMethod.Magnitude)
        {
            // PEFT's magnitude_based_pruning: k = int(density · numel) largest |value|, by torch.topk.
            var k = (long)(density * tensor.numel());
            var mask = torch.zeros_like(tensor).reshape(-1);
            if (k > 0)
            {
                var (_, indices) = tensor.abs().reshape(-1).topk((int)k, largest: true);
                mask.index_fill_(0, indices, 1);
            }
            result = tensor * mask.reshape(tensor.shape);
        }
        else
        {
            if (rescale && density <= 0)
            {
                throw new PeftException($"density must be > 0 for DARE (kept entries are divided by it), got {density}");
            }
            var keep = torch.bernoulli(torch.full_like(tensor, density), generator);
            result = tensor * keep;
            if (rescale)
            {
                result = result / density;
            }
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// For task tensors stacked on dimension 0: true where an entry's sign equals the elected sign (PEFT's
    /// <c>calculate_majority_sign_mask</c>). The elected sign is + where the total (or the sign count) is ≥ 0; zero
    /// entries never agree.
    /// </summary>
    public static Tensor MajoritySignMask(Tensor stacked, MajoritySignMethod method = MajoritySignMethod.Total)
    {
        using var scope = torch.NewDisposeScope();
        var sign = stacked.sign();
        var magnitude = method == MajoritySignMethod.Total ? stacked.sum(0L) : sign.sum(0L);
        var majority = torch.where(magnitude >= 0, 1, -1).to(sign.dtype);
        return sign.eq(majority).MoveToOuterDisposeScope();
    }

    /// <summary>Σ over agreeing entries divided by their count (at least 1): PEFT's <c>disjoint_merge</c>.</summary>
    public static Tensor DisjointMerge(Tensor stackedWeighted, Tensor majoritySignMask)
    {
        using var scope = torch.NewDisposeScope();
        var mixed = (stackedWeighted * majoritySignMask).sum(0L);
        var count = majoritySignMask.sum(0L).to(mixed.dtype).clamp_min(1.0);
        return (mixed / count).MoveToOuterDisposeScope();
    }

    /// <summary>Applies the operation <paramref name="operation"/> names, as <c>add_weighted_adapter</c> dispatches.</summary>
    internal static Tensor Apply(TaskVectorOperation operation, IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights,
        double? density, MajoritySignMethod method, Generator? generator) => operation switch
    {
        TaskVectorOperation.TaskArithmetic => TaskArithmetic(tensors, weights),
        TaskVectorOperation.Ties => Ties(tensors, weights, Require(density), method),
        TaskVectorOperation.DareLinear => DareLinear(tensors, weights, Require(density), generator),
        TaskVectorOperation.DareTies => DareTies(tensors, weights, Require(density), method, generator),
        TaskVectorOperation.MagnitudePrune => MagnitudePrune(tensors, weights, Require(density)),
        _ => throw new PeftException($"unknown task-vector operation {operation}"),
    };

    private static double Require(double? density) =>
        density ?? throw new PeftException("density is required by this combination type (a value in [0, 1]: the fraction of entries kept)");

    private static void CheckDensity(double density)
    {
        if (double.IsNaN(density) || density < 0)
        {
            throw new PeftException($"Density should be >= 0, got {density}");
        }
    }

    private static Tensor Stack(IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights)
    {
        if (tensors.Count == 0)
        {
            throw new PeftException("no task tensors to merge");
        }
        if (tensors.Count != weights.Count)
        {
            throw new PeftException($"{tensors.Count} task tensors but {weights.Count} weights");
        }
        var shape = tensors[0].shape;
        for (var i = 1; i < tensors.Count; i++)
        {
            if (!tensors[i].shape.SequenceEqual(shape))
            {
                throw new PeftException($"task tensor {i} is [{string.Join(", ", tensors[i].shape)}] but tensor 0 is [{string.Join(", ", shape)}]");
            }
        }
        return torch.stack(tensors, 0);
    }

    // PEFT builds the weights with torch.tensor(list of floats): float32, shaped [N, 1, 1, …] to broadcast.
    private static Tensor Weights(IReadOnlyList<double> weights, Tensor stacked)
    {
        var shape = new long[stacked.dim()];
        Array.Fill(shape, 1L);
        shape[0] = weights.Count;
        return torch.tensor(weights.Select(w => (float)w).ToArray(), device: stacked.device).reshape(shape);
    }
}
