using PeftSharp.Tokenization;
using PeftSharp.Training;

namespace PeftSharp.Data;

/// <summary>Settings for supervised fine-tuning examples.</summary>
public sealed record SftOptions
{
    /// <summary>Longest example in tokens (default 512); longer ones are cut, see <see cref="SftEncoder"/>.</summary>
    public int MaxLength { get; init; } = 512;

    /// <summary>How examples become text; null picks <see cref="PromptFormats.For"/> of the tokenizer.</summary>
    public IPromptFormat? Format { get; init; }
}

/// <summary>
/// Causal-LM supervised fine-tuning with prompt masking: input ids are the tokenized prompt + response (+ EOS), labels
/// equal the ids on response tokens and EOS and are <see cref="Losses.IgnoreIndex"/> on prompt tokens, so the loss is
/// taken on the response only (TRL's completion-only loss; the model shifts labels itself).
/// </summary>
/// <remarks>
/// The whole text is tokenized once, so ids equal those of the full text. The prompt's token count is the longest
/// common prefix of that and the prompt's own encoding (as TRL's tokenize step compares prompt and prompt+completion);
/// a token that merges across the boundary therefore counts as response. Truncation keeps the prompt and cuts the
/// response from the right (EOS is then lost, as the response did not end); an example whose prompt alone fills
/// <see cref="SftOptions.MaxLength"/> has nothing left to learn and is dropped, as is one with no response token.
/// A tokenizer without eos_token gets no EOS (BERT's post-processor already ends the text with [SEP]).
/// </remarks>
public static class SftEncoder
{
    private const int Ignore = (int)Losses.IgnoreIndex;

    /// <summary>Encodes every example; see the class remarks for masking and truncation.</summary>
    /// <exception cref="PeftException">An example is not instruction or chat data.</exception>
    public static EncodedDataset Encode(IEnumerable<Example> examples, HfTokenizer tokenizer, SftOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new SftOptions();
        if (options.MaxLength <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxLength, "MaxLength must be positive");
        }
        var format = options.Format ?? PromptFormats.For(tokenizer);
        var encoded = new List<EncodedExample>();
        int truncated = 0, dropped = 0;
        foreach (var example in examples)
        {
            var (ids, labels) = Tokenize(format.Render(example), tokenizer);
            int firstTarget = Array.FindIndex(labels, l => l != Ignore);
            if (firstTarget < 0 || firstTarget >= options.MaxLength)
            {
                dropped++;
                continue;
            }
            if (ids.Length > options.MaxLength)
            {
                ids = ids[..options.MaxLength];
                labels = labels[..options.MaxLength];
                truncated++;
            }
            encoded.Add(new EncodedExample(ids, labels, null, null));
        }
        return new EncodedDataset(encoded, truncated, dropped, 0);
    }

    /// <summary>Ids and labels of one rendered example, before truncation.</summary>
    public static (int[] InputIds, int[] Labels) Tokenize(RenderedExample rendered, HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(rendered);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var segments = Merge(rendered.Segments);
        var text = string.Concat(segments.Select(s => s.Text));
        var ids = tokenizer.Encode(text, rendered.AddSpecialTokens).ToList();
        var labels = new List<int>(ids.Count + 1);
        int chars = 0, start = 0;
        for (int k = 0; k < segments.Count; k++)
        {
            chars += segments[k].Text.Length;
            int end = k == segments.Count - 1
                ? ids.Count
                : Math.Max(start, CommonPrefix(tokenizer.Encode(text[..chars], rendered.AddSpecialTokens), ids));
            for (int t = start; t < end; t++)
            {
                labels.Add(segments[k].Train ? ids[t] : Ignore);
            }
            start = end;
        }
        if (rendered.AppendEos && tokenizer.EosTokenId is int eos)
        {
            if (ids.Count == 0 || ids[^1] != eos)
            {
                ids.Add(eos);
                // EOS belongs to the response that ends the text (trained even when that response is empty).
                labels.Add(rendered.Segments.Count > 0 && rendered.Segments[^1].Train ? eos : Ignore);
            }
        }
        return (ids.ToArray(), labels.ToArray());
    }

    // Neighbouring pieces with the same role are tokenized together: fewer boundaries, fewer encodes.
    private static List<PromptSegment> Merge(IReadOnlyList<PromptSegment> segments)
    {
        var merged = new List<PromptSegment>();
        foreach (var s in segments)
        {
            if (s.Text.Length == 0)
            {
                continue;
            }
            if (merged.Count > 0 && merged[^1].Train == s.Train)
            {
                merged[^1] = merged[^1] with { Text = merged[^1].Text + s.Text };
            }
            else
            {
                merged.Add(s);
            }
        }
        return merged;
    }

    private static int CommonPrefix(IReadOnlyList<int> a, List<int> b)
    {
        int n = Math.Min(a.Count, b.Count), i = 0;
        while (i < n && a[i] == b[i])
        {
            i++;
        }
        return i;
    }
}
