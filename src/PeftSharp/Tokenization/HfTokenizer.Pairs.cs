namespace PeftSharp.Tokenization;

/// <summary>
/// The ids of one text or a text pair with the special tokens added, and their token type ids (transformers'
/// <c>input_ids</c> / <c>token_type_ids</c>: 0 on the first segment, 1 on the second for BERT).
/// </summary>
public sealed record TypedEncoding(IReadOnlyList<int> InputIds, IReadOnlyList<int> TokenTypeIds);

public sealed partial class HfTokenizer
{
    /// <summary>
    /// <paramref name="text"/> with the post-processor's special tokens and the template's type ids. With
    /// <paramref name="maxLength"/>, the text is cut from the right so that the result, special tokens included, fits.
    /// </summary>
    /// <exception cref="PeftException">maxLength is shorter than the special tokens alone.</exception>
    public TypedEncoding EncodeTyped(string text, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        return EncodeTypedCore(EncodeContent(text), null, maxLength);
    }

    /// <summary>
    /// A sentence pair as the post-processor's "pair" template lays it out (BERT: [CLS] first [SEP] second [SEP], type
    /// ids 0 up to the first [SEP] and 1 after it). With <paramref name="maxLength"/>, tokens are removed as tokenizers'
    /// <c>longest_first</c> strategy does: from the longer text first, so that both keep about half when both are long.
    /// </summary>
    /// <exception cref="PeftException">The post-processor has no pair template, or maxLength is shorter than its special tokens.</exception>
    public TypedEncoding EncodePair(string first, string second, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        return EncodeTypedCore(EncodeContent(first), EncodeContent(second), maxLength);
    }

    private TypedEncoding EncodeTypedCore(List<int> first, List<int>? second, int? maxLength)
    {
        if (maxLength is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "maxLength must be positive");
        }
        int added = _postProcessor == null ? 0
            : second == null ? _postProcessor.AddedTokens
            : _postProcessor.AddedTokensPair ?? throw new PeftException("this tokenizer's post_processor has no pair template, so it cannot encode sentence pairs");
        if (maxLength is int max)
        {
            int room = max - added;
            if (room < 0)
            {
                throw new PeftException($"maxLength {max} is shorter than the {added} special tokens the post-processor adds");
            }
            if (second == null)
            {
                Cut(first, room);
            }
            else
            {
                var (keepFirst, keepSecond) = LongestFirst(first.Count, second.Count, room);
                Cut(first, keepFirst);
                Cut(second, keepSecond);
            }
        }
        if (_postProcessor != null)
        {
            var (ids, types) = _postProcessor.ProcessTyped(first, second);
            return new TypedEncoding(ids, types);
        }
        // tokenizers without a post-processor: the second sequence keeps its own type id 1.
        var plainIds = second == null ? first : [.. first, .. second];
        var plainTypes = Enumerable.Repeat(0, first.Count).Concat(Enumerable.Repeat(1, second?.Count ?? 0)).ToList();
        return new TypedEncoding(plainIds, plainTypes);
    }

    /// <summary>
    /// How many tokens of each text survive tokenizers' LongestFirst truncation to <paramref name="room"/> tokens
    /// (tokenizers <c>utils/truncation.rs</c>): the shorter text is kept whole when the longer can take the rest; when
    /// both are longer than half, each keeps half, the odd token going to the longer (to the second on a tie).
    /// </summary>
    internal static (int First, int Second) LongestFirst(int firstLength, int secondLength, int room)
    {
        if (firstLength + secondLength <= room)
        {
            return (firstLength, secondLength);
        }
        bool swap = firstLength > secondLength;
        int shorter = swap ? secondLength : firstLength;
        int longer = shorter > room ? shorter : Math.Max(shorter, room - shorter);
        if (shorter + longer > room)
        {
            shorter = room / 2;
            longer = shorter + room % 2;
        }
        int keepFirst = swap ? longer : shorter;
        int keepSecond = swap ? shorter : longer;
        return (Math.Min(keepFirst, firstLength), Math.Min(keepSecond, secondLength));
    }

    private static void Cut(List<int> ids, int keep)
    {
        if (ids.Count > keep)
        {
            ids.RemoveRange(keep, ids.Count - keep);
        }
    }
}
