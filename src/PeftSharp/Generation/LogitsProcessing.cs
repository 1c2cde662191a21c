using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Generation;

/// <summary>
/// The logits processors and warpers of <see cref="Generator"/>, as pure functions over <c>[B, vocab]</c> float
/// scores, following transformers' <c>RepetitionPenaltyLogitsProcessor</c>, <c>TemperatureLogitsWarper</c>,
/// <c>TopKLogitsWarper</c>, <c>TopPLogitsWarper</c> and <c>MinPLogitsWarper</c>. Removed tokens get -inf; at least
/// one token always survives.
/// </summary>
public static class LogitsProcessing
{
    /// <summary>Where <paramref name="seen"/> (bool <c>[B, vocab]</c>) is set: positive scores / penalty, negative × penalty.</summary>
    public static Tensor RepetitionPenalty(Tensor scores, Tensor seen, double penalty)
    {
        using var scope = torch.NewDisposeScope();
        var penalised = torch.where(scores.lt(0), scores * penalty, scores / penalty);
        return torch.where(seen, penalised, scores).MoveToOuterDisposeScope();
    }

    /// <summary>Keeps the <paramref name="k"/> highest scores of each row (ties at the k-th value kept).</summary>
    public static Tensor TopK(Tensor scores, int k)
    {
        using var scope = torch.NewDisposeScope();
        k = (int)Math.Min(k, scores.shape[^1]);
        var kth = scores.topk(k, -1).values.narrow(-1, k - 1, 1);
        return scores.masked_fill(scores.lt(kth), double.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nucleus filtering: sorted ascending, tokens whose cumulative probability is at most <c>1 − p</c> are removed,
    /// so the kept set is the smallest whose mass reaches <paramref name="p"/>; the most likely token is always kept.
    /// </summary>
    public static Tensor TopP(Tensor scores, double p)
    {
        using var scope = torch.NewDisposeScope();
        var (sorted, indices) = scores.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var removeSorted = cumulative.le(1 - p);
        removeSorted.select(-1, scores.shape[^1] - 1).fill_(false);
        var remove = removeSorted.scatter(-1, indices, removeSorted);
        return scores.masked_fill(remove, double.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>Removes tokens whose probability is below <c>minP × max probability</c> of the row.</summary>
    public static Tensor MinP(Tensor scores, double minP)
    {
        using var scope = torch.NewDisposeScope();
        var probs = scores.softmax(-1);
        var threshold = probs.amax([-1], keepdim: true) * minP;
        var remove = probs.lt(threshold);
        return scores.masked_fill(remove, double.NegativeInfinity).MoveToOuterDisposeScope();
    }
}
