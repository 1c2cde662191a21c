using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Training;

/// <summary>
/// One micro-batch as the model and the loss see it: token ids <c>[B, T]</c> (int64), attention mask <c>[B, T]</c>
/// (1 = token, 0 = padding), causal-LM labels <c>[B, T]</c> (unshifted, <see cref="Losses.IgnoreIndex"/> where no loss is
/// taken; the loss shifts them, as transformers does), BERT/GPT-2 token type ids <c>[B, T]</c>, and class labels <c>[B]</c>
/// (int64) for sequence classification. The trainer never disposes a batch's tensors: the data source owns them.
/// </summary>
public sealed record Batch(
    Tensor InputIds,
    Tensor? AttentionMask = null,
    Tensor? Labels = null,
    Tensor? TokenTypeIds = null,
    Tensor? ClassLabels = null)
{
    /// <summary>Number of rows (sequences) in the batch.</summary>
    public long Rows => InputIds.shape[0];

    /// <summary>Tokens the model reads: the attention mask's sum, or every position when there is no mask.</summary>
    public long TokenCount()
    {
        if (AttentionMask is null)
        {
            return InputIds.numel();
        }
        using var scope = torch.NewDisposeScope();
        return AttentionMask.sum().item<long>();
    }
}

/// <summary>
/// A training or evaluation data set of ready-made batches that can be read in any order, so the trainer can shuffle
/// with its own seed and resume at an exact position. The data pipeline (tokenisation, padding, packing) builds these.
/// </summary>
public interface IBatchDataset
{
    /// <summary>Number of batches in one epoch.</summary>
    int Count { get; }

    /// <summary>
    /// The batch at <paramref name="index"/> (0 ≤ index &lt; <see cref="Count"/>). Tensors created by this call are owned by
    /// the caller's dispose scope; tensors the dataset keeps are owned by the dataset.
    /// </summary>
    Batch Get(int index);
}

/// <summary>An <see cref="IBatchDataset"/> over batches held in memory.</summary>
public sealed class InMemoryBatchDataset(IReadOnlyList<Batch> batches) : IBatchDataset
{
    public int Count => batches.Count;

    public Batch Get(int index) => batches[index];
}
