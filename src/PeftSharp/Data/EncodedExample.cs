using PeftSharp.Training;

namespace PeftSharp.Data;

/// <summary>One tokenized example, ready for <see cref="Collator"/>.</summary>
/// <param name="InputIds">Token ids, special tokens included.</param>
/// <param name="Labels">Per-token targets for causal-LM loss (same length; <see cref="Losses.IgnoreIndex"/> where no loss is taken), or null for classification.</param>
/// <param name="TokenTypeIds">Segment ids (0 first text, 1 second) for encoders such as BERT, or null.</param>
/// <param name="ClassLabel">The class id for sequence classification, or null.</param>
public sealed record EncodedExample(int[] InputIds, int[]? Labels, int[]? TokenTypeIds, int? ClassLabel)
{
    /// <summary>Number of tokens.</summary>
    public int Length => InputIds.Length;
}

/// <summary>Examples after tokenization, with what was cut or dropped on the way.</summary>
/// <param name="Examples">The encoded examples, in input order (packed blocks in stream order).</param>
/// <param name="Truncated">Examples cut to the maximum length.</param>
/// <param name="Dropped">Examples left out because no target token would remain (prompt alone at or over the maximum length, or nothing to learn).</param>
/// <param name="DroppedTokens">With packing: tokens of the last, incomplete block, which is left out.</param>
public sealed record EncodedDataset(IReadOnlyList<EncodedExample> Examples, int Truncated, int Dropped, int DroppedTokens)
{
    /// <summary>Number of examples.</summary>
    public int Count => Examples.Count;
}
