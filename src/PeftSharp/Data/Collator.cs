using PeftSharp.Tokenization;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Data;

/// <summary>
/// A batch padded on the host, row-major [<see cref="BatchSize"/>, <see cref="SequenceLength"/>];
/// <see cref="ToTensors"/> makes the <see cref="Batch"/> in the caller's current dispose scope.
/// </summary>
public sealed class PaddedBatch
{
    internal PaddedBatch(int batchSize, int length, long[] inputIds, long[] attentionMask, long[]? labels, long[]? tokenTypeIds, long[]? classLabels)
    {
        BatchSize = batchSize;
        SequenceLength = length;
        InputIds = inputIds;
        AttentionMask = attentionMask;
        Labels = labels;
        TokenTypeIds = tokenTypeIds;
        ClassLabels = classLabels;
    }

    public int BatchSize { get; }

    public int SequenceLength { get; }

    public long[] InputIds { get; }

    public long[] AttentionMask { get; }

    public long[]? Labels { get; }

    public long[]? TokenTypeIds { get; }

    public long[]? ClassLabels { get; }

    /// <summary>
    /// The batch as int64 tensors on <paramref name="device"/> ([batch, length]; class labels [batch]). They belong to
    /// the dispose scope current when this is called: call it inside the step's <c>torch.NewDisposeScope()</c>.
    /// </summary>
    public Batch ToTensors(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        long[] shape = [BatchSize, SequenceLength];
        Tensor Make(long[] data, long[] dims) => torch.tensor(data, dims, ScalarType.Int64, device);
        return new Batch(
            Make(InputIds, shape),
            Make(AttentionMask, shape),
            Labels == null ? null : Make(Labels, shape),
            TokenTypeIds == null ? null : Make(TokenTypeIds, shape),
            ClassLabels == null ? null : Make(ClassLabels, [BatchSize]));
    }
}

/// <summary>
/// Pads encoded examples to the longest in the batch (dynamic padding): input ids with the pad id, attention mask 0,
/// labels <see cref="Losses.IgnoreIndex"/>, token type ids 0. Right padding (the default) is for training.
/// </summary>
public sealed class Collator
{
    /// <summary>A collator padding with <paramref name="padTokenId"/> on <paramref name="side"/>.</summary>
    public Collator(int padTokenId, PaddingSide side = PaddingSide.Right)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(padTokenId);
        PadTokenId = padTokenId;
        Side = side;
    }

    /// <summary>The id written into padding positions.</summary>
    public int PadTokenId { get; }

    /// <summary>Which end of each row gets the padding.</summary>
    public PaddingSide Side { get; }

    /// <summary>
    /// A collator for <paramref name="tokenizer"/>: its pad token, or its EOS token when it has none (as is usual for
    /// causal LMs; padding is masked and never a target, so the choice does not change the loss).
    /// </summary>
    /// <exception cref="PeftException">The tokenizer has neither a pad nor an EOS token.</exception>
    public static Collator For(HfTokenizer tokenizer, PaddingSide side = PaddingSide.Right)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int pad = tokenizer.PadTokenId ?? tokenizer.EosTokenId
            ?? throw new PeftException("cannot pad batches: the tokenizer defines neither pad_token nor eos_token");
        return new Collator(pad, side);
    }

    /// <summary>Pads <paramref name="rows"/> into one batch.</summary>
    /// <exception cref="PeftException">The rows are empty or disagree on which fields they have.</exception>
    public PaddedBatch Collate(IReadOnlyList<EncodedExample> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new PeftException("cannot collate an empty batch");
        }
        bool labels = Same(rows, r => r.Labels != null, "labels");
        bool types = Same(rows, r => r.TokenTypeIds != null, "token type ids");
        bool classes = Same(rows, r => r.ClassLabel != null, "class labels");
        int width = rows.Max(r => r.Length);
        int n = rows.Count;
        var ids = new long[n * width];
        var mask = new long[n * width];
        var labelData = labels ? new long[n * width] : null;
        var typeData = types ? new long[n * width] : null;
        Array.Fill(ids, PadTokenId);
        if (labelData != null)
        {
            Array.Fill(labelData, Losses.IgnoreIndex);
        }
        for (int r = 0; r < n; r++)
        {
            var row = rows[r];
            int start = r * width + (Side == PaddingSide.Left ? width - row.Length : 0);
            for (int t = 0; t < row.Length; t++)
            {
                ids[start + t] = row.InputIds[t];
                mask[start + t] = 1;
                if (labelData != null)
                {
                    labelData[start + t] = row.Labels![t];
                }
                if (typeData != null)
                {
                    typeData[start + t] = row.TokenTypeIds![t];
                }
            }
        }
        var classData = classes ? rows.Select(r => (long)r.ClassLabel!.Value).ToArray() : null;
        return new PaddedBatch(n, width, ids, mask, labelData, typeData, classData);
    }

    private static bool Same(IReadOnlyList<EncodedExample> rows, Func<EncodedExample, bool> has, string what)
    {
        bool first = has(rows[0]);
        for (int i = 1; i < rows.Count; i++)
        {
            if (has(rows[i]) != first)
            {
                throw new PeftException($"cannot collate: example 0 {(first ? "has" : "has no")} {what} but example {i} {(first ? "has none" : "has")}");
            }
        }
        return first;
    }
}
