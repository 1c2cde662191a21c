using PeftSharp.Tokenization;

namespace PeftSharp.Data;

/// <summary>Settings for plain-text language modelling.</summary>
public sealed record TextLmOptions
{
    /// <summary>Longest example in tokens, and the block size when packing (default 512).</summary>
    public int MaxLength { get; init; } = 512;

    /// <summary>
    /// Concatenate all texts (each followed by EOS) and cut the stream into blocks of exactly <see cref="MaxLength"/>
    /// tokens, dropping the incomplete last block (transformers' run_clm.py <c>group_texts</c>). Off by default.
    /// </summary>
    public bool Packing { get; init; }
}

/// <summary>
/// Plain-text causal-LM examples: each text tokenized with the tokenizer's special tokens (BOS) and EOS appended
/// (when the tokenizer has one);
/// labels equal the ids (the model shifts them), so every token is a target. Without packing a long text is cut on
/// the right to <see cref="TextLmOptions.MaxLength"/>.
/// </summary>
public static class TextLmEncoder
{
    /// <summary>Encodes <see cref="TextExample"/>s.</summary>
    /// <exception cref="PeftException">An example is not a text example.</exception>
    public static EncodedDataset Encode(IEnumerable<Example> examples, HfTokenizer tokenizer, TextLmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new TextLmOptions();
        if (options.MaxLength <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxLength, "MaxLength must be positive");
        }
        int? eos = tokenizer.EosTokenId;
        int block = options.MaxLength;
        var encoded = new List<EncodedExample>();
        var stream = new List<int>();
        int truncated = 0;
        foreach (var example in examples)
        {
            if (example is not TextExample text)
            {
                throw new PeftException($"line {example.Line}: language modelling needs text rows, found {example.GetType().Name}");
            }
            var ids = tokenizer.Encode(text.Text).ToList();
            if (eos is int e && (ids.Count == 0 || ids[^1] != e))
            {
                ids.Add(e);
            }
            if (options.Packing)
            {
                stream.AddRange(ids);
                int full = stream.Count / block * block;
                for (int offset = 0; offset < full; offset += block)
                {
                    encoded.Add(Block(stream.GetRange(offset, block).ToArray()));
                }
                stream.RemoveRange(0, full);
                continue;
            }
            if (ids.Count > block)
            {
                ids.RemoveRange(block, ids.Count - block);
                truncated++;
            }
            encoded.Add(Block(ids.ToArray()));
        }
        return new EncodedDataset(encoded, truncated, 0, stream.Count);
    }

    private static EncodedExample Block(int[] ids) => new(ids, (int[])ids.Clone(), null, null);
}
