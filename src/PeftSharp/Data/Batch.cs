using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Data;

/// <summary>
/// A padded training batch as int64 tensors of shape [batch, length] (<see cref="ClassLabels"/>: [batch]), named as
/// transformers' model inputs: <c>input_ids</c>, <c>attention_mask</c> (1 on tokens, 0 on padding), <c>labels</c>,
/// <c>token_type_ids</c>. Disposing it disposes its tensors; inside a dispose scope that is not needed.
/// </summary>
/// <param name="InputIds">Token ids, padded with the tokenizer's pad id.</param>
/// <param name="AttentionMask">1 on real tokens, 0 on padding.</param>
/// <param name="Labels">Causal-LM targets, <see cref="IgnoreIndex"/> on prompt and padding; null for classification.</param>
/// <param name="TokenTypeIds">Segment ids (0 on padding) when the examples have them; else null.</param>
/// <param name="ClassLabels">Class ids for sequence classification; else null.</param>
public sealed record Batch(Tensor InputIds, Tensor AttentionMask, Tensor? Labels, Tensor? TokenTypeIds, Tensor? ClassLabels) : IDisposable
{
    /// <summary>The label that takes no loss (PyTorch cross_entropy's default <c>ignore_index</c>, and transformers' -100).</summary>
    public const int IgnoreIndex = -100;

    /// <summary>Rows in the batch.</summary>
    public long BatchSize => InputIds.shape[0];

    /// <summary>Padded length of every row.</summary>
    public long SequenceLength => InputIds.shape[1];

    /// <inheritdoc/>
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        Labels?.Dispose();
        TokenTypeIds?.Dispose();
        ClassLabels?.Dispose();
    }
}
