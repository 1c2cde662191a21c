namespace PeftSharp.Tokenization;

/// <summary>Which end of a row receives the padding (transformers' <c>padding_side</c>).</summary>
public enum PaddingSide
{
    /// <summary>Tokens first, padding after them (the default, for encoders and training).</summary>
    Right,

    /// <summary>Padding first, tokens after it (for batched generation with decoder-only models).</summary>
    Left,
}

/// <summary>
/// A padded batch: <see cref="InputIds"/> and <see cref="AttentionMask"/> are both [batch][length], with the mask 1
/// on real tokens and 0 on padding (transformers' <c>input_ids</c> / <c>attention_mask</c>).
/// </summary>
public sealed record BatchEncoding(int[][] InputIds, int[][] AttentionMask)
{
    /// <summary>Number of rows.</summary>
    public int BatchSize => InputIds.Length;

    /// <summary>Length of every row after padding (0 for an empty batch).</summary>
    public int SequenceLength => InputIds.Length == 0 ? 0 : InputIds[0].Length;
}
