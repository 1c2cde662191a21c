using PeftSharp.Tokenization;

namespace PeftSharp.Data;

/// <summary>
/// Sequence-classification examples: a text (or a pair, through the tokenizer's pair template: BERT's
/// [CLS] a [SEP] b [SEP] with token type ids 0/1) and its class id. Texts longer than
/// maxLength are cut on the right; pairs as tokenizers' <c>longest_first</c> does (see <see cref="HfTokenizer.EncodePair"/>).
/// </summary>
public static class ClassificationEncoder
{
    /// <summary>Encodes <see cref="ClassificationExample"/>s; <paramref name="maxLength"/> counts special tokens (default 512).</summary>
    /// <exception cref="PeftException">An example is not a classification example, or pairs meet a tokenizer without a pair template.</exception>
    public static EncodedDataset Encode(IEnumerable<Example> examples, HfTokenizer tokenizer, int maxLength = 512)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLength);
        var encoded = new List<EncodedExample>();
        int truncated = 0;
        foreach (var example in examples)
        {
            if (example is not ClassificationExample c)
            {
                throw new PeftException($"line {example.Line}: sequence classification needs labelled rows, found {example.GetType().Name}");
            }
            var full = Encode(tokenizer, c, null);
            if (full.InputIds.Count > maxLength)
            {
                full = Encode(tokenizer, c, maxLength);
                truncated++;
            }
            encoded.Add(new EncodedExample(full.InputIds.ToArray(), null, full.TokenTypeIds.ToArray(), c.Label));
        }
        return new EncodedDataset(encoded, truncated, 0, 0);
    }

    private static TypedEncoding Encode(HfTokenizer tokenizer, ClassificationExample c, int? maxLength) =>
        c.TextPair == null ? tokenizer.EncodeTyped(c.Text, maxLength) : tokenizer.EncodePair(c.Text, c.TextPair, maxLength);
}
