using System.Text;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>What happens to the delimiter when a piece is split (tokenizers' <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>A piece of text on its way through the pre-tokenizers.</summary>
/// <param name="Text">The (normalized) text of the piece.</param>
/// <param name="AtOriginalStart">Whether the piece starts at offset 0 of the encoded text (Metaspace "first").</param>
internal readonly record struct PreToken(string Text, bool AtOriginalStart);

/// <summary>tokenizers' <c>NormalizedString::split</c> over the matches of a pattern.</summary>
internal static class Splitting
{
    /// <summary>Covers <paramref name="text"/> with alternating (range, isMatch) segments from regex matches.</summary>
    public static List<(int Start, int End, bool IsMatch)> FromMatches(string text, List<(int Start, int End)> matches)
    {
        var segments = new List<(int, int, bool)>(matches.Count * 2 + 1);
        int prev = 0;
        foreach (var (start, end) in matches)
        {
            if (prev != start)
            {
                segments.Add((prev, start, false));
            }
            segments.Add((start, end, true));
            prev = end;
        }
        if (prev != text.Length)
        {
            segments.Add((prev, text.Length, false));
        }
        return segments;
    }

    /// <summary>Segments from a per-code-point predicate: every matching code point is its own match.</summary>
    public static List<(int Start, int End, bool IsMatch)> FromPredicate(string text, Func<int, bool> isDelimiter)
    {
        var segments = new List<(int, int, bool)>();
        int lastOffset = 0, i = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            int len = rune.Utf16SequenceLength;
            if (isDelimiter(rune.Value))
            {
                if (lastOffset < i)
                {
                    segments.Add((lastOffset, i, false));
                }
                segments.Add((i, i + len, true));
                lastOffset = i + len;
            }
            i += len;
        }
        if (i > lastOffset)
        {
            segments.Add((lastOffset, i, false));
        }
        return segments;
    }

    /// <summary>Applies <paramref name="behavior"/> to the segments and returns the ranges of the non-empty pieces.</summary>
    public static IEnumerable<(int Start, int End)> Split(List<(int Start, int End, bool IsMatch)> segments, SplitBehavior behavior, bool invert = false)
    {
        if (invert)
        {
            segments = segments.Select(s => (s.Start, s.End, !s.IsMatch)).ToList();
        }
        var kept = new List<(int Start, int End, bool Remove)>(segments.Count);
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                kept.AddRange(segments.Select(s => (s.Start, s.End, false)));
                break;
            case SplitBehavior.Removed:
                kept.AddRange(segments.Select(s => (s.Start, s.End, s.IsMatch)));
                break;
            case SplitBehavior.Contiguous:
                foreach (var s in segments)
                {
                    if (s.IsMatch == previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, s.End, false);
                    }
                    else
                    {
                        kept.Add((s.Start, s.End, false));
                    }
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var s in segments)
                {
                    if (s.IsMatch && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, s.End, false);
                    }
                    else
                    {
                        kept.Add((s.Start, s.End, false));
                    }
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int k = segments.Count - 1; k >= 0; k--)
                {
                    var s = segments[k];
                    if (s.IsMatch && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (s.Start, kept[^1].End, false);
                    }
                    else
                    {
                        kept.Add((s.Start, s.End, false));
                    }
                    previousMatch = s.IsMatch;
                }
                kept.Reverse();
                break;
        }
        foreach (var (start, end, remove) in kept)
        {
            if (!remove && end > start)
            {
                yield return (start, end);
            }
        }
    }

    /// <summary>Replaces every match of <paramref name="regex"/> with <paramref name="content"/>.</summary>
    public static string Replace(string text, CodePointRegex regex, string content)
    {
        var matches = regex.Matches(text);
        if (matches.Count == 0)
        {
            return text;
        }
        var sb = new StringBuilder(text.Length);
        int prev = 0;
        foreach (var (start, end) in matches)
        {
            sb.Append(text, prev, start - prev).Append(content);
            prev = end;
        }
        return sb.Append(text, prev, text.Length - prev).ToString();
    }
}
