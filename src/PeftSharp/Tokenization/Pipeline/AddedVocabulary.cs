using System.Text;
using PeftSharp.Tokenization.Unicode;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>One entry of tokenizer.json "added_tokens" (tokenizers' <c>AddedToken</c>).</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized);

/// <summary>A piece of the input: either an added token already resolved to its id, or text for the model.</summary>
internal readonly record struct TextPiece(string Text, int? Id, bool AtOriginalStart);

/// <summary>
/// Finds added and special tokens in the text before the model sees it, as tokenizers' <c>AddedVocabulary</c>:
/// tokens with <c>normalized: false</c> are matched on the raw text, the others on each normalized piece, both
/// leftmost-longest, honouring <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c>.
/// </summary>
internal sealed class AddedVocabulary
{
    private readonly Matcher _raw;
    private readonly Matcher _normalized;
    private readonly Dictionary<int, AddedToken> _byId;
    private readonly Dictionary<string, AddedToken> _byContent;
    private readonly HashSet<string> _specialContents;

    public AddedVocabulary(IReadOnlyList<AddedToken> tokens, INormalizer? normalizer)
    {
        Tokens = tokens;
        _byId = [];
        _byContent = new(StringComparer.Ordinal);
        foreach (var t in tokens)
        {
            _byId[t.Id] = t;
            _byContent[t.Content] = t;
        }
        _specialContents = tokens.Where(t => t.Special).Select(t => t.Content).ToHashSet(StringComparer.Ordinal);
        _raw = new Matcher(tokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalized = new Matcher(tokens.Where(t => t.Normalized)
            .Select(t => (normalizer?.Normalize(t.Content) ?? t.Content, t)));
    }

    public IReadOnlyList<AddedToken> Tokens { get; }

    public AddedToken? ById(int id) => _byId.GetValueOrDefault(id);

    public AddedToken? ByContent(string content) => _byContent.GetValueOrDefault(content);

    /// <summary>tokenizers' <c>is_special_token</c>: by content, so a model token spelled like a special one counts too.</summary>
    public bool IsSpecialContent(string token) => _specialContents.Contains(token);

    /// <summary>Splits the raw text, normalizes the remaining pieces, then splits those; empty pieces are dropped.</summary>
    public List<TextPiece> SplitAndNormalize(string text, INormalizer? normalizer)
    {
        var result = new List<TextPiece>();
        foreach (var piece in _raw.Split(text, atStart: true))
        {
            if (piece.Id != null)
            {
                result.Add(piece);
                continue;
            }
            var normalized = normalizer?.Normalize(piece.Text) ?? piece.Text;
            result.AddRange(_normalized.Split(normalized, piece.AtOriginalStart));
        }
        return result;
    }

    private sealed class Matcher
    {
        // Candidates by first UTF-16 unit, longest first, so the first hit at a position is the longest.
        private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;

        public Matcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
        {
            _byFirstChar = patterns.Where(p => p.Pattern.Length > 0)
                .GroupBy(p => p.Pattern[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.Pattern.Length).ToArray());
        }

        public List<TextPiece> Split(string text, bool atStart)
        {
            var pieces = new List<TextPiece>();
            int startOffset = 0, pos = 0;
            while (_byFirstChar.Count > 0 && pos < text.Length)
            {
                var match = LongestAt(text, pos);
                if (match == null)
                {
                    pos++;
                    continue;
                }
                var (pattern, token) = match.Value;
                int start = pos, stop = pos + pattern.Length;
                pos = stop;
                if (token.SingleWord)
                {
                    bool startOk = start == 0 || !EndsWithWordChar(text, start);
                    bool stopOk = stop == text.Length || !StartsWithWordChar(text, stop);
                    if (!startOk || !stopOk)
                    {
                        continue;
                    }
                }
                if (token.LStrip)
                {
                    // Spaces a previous match already took stay with it.
                    start = Math.Max(WhitespaceRunStart(text, start), startOffset);
                }
                if (token.RStrip)
                {
                    stop = WhitespaceRunEnd(text, stop);
                }
                if (startOffset < start)
                {
                    pieces.Add(new TextPiece(text[startOffset..start], null, atStart && startOffset == 0));
                }
                pieces.Add(new TextPiece(text[start..stop], token.Id, false));
                startOffset = stop;
            }
            if (startOffset < text.Length)
            {
                pieces.Add(new TextPiece(text[startOffset..], null, atStart && startOffset == 0));
            }
            return pieces;
        }

        private (string, AddedToken)? LongestAt(string text, int pos)
        {
            if (!_byFirstChar.TryGetValue(text[pos], out var candidates))
            {
                return null;
            }
            foreach (var c in candidates)
            {
                if (pos + c.Pattern.Length <= text.Length && string.CompareOrdinal(text, pos, c.Pattern, 0, c.Pattern.Length) == 0)
                {
                    return c;
                }
            }
            return null;
        }

        private static bool EndsWithWordChar(string text, int end)
        {
            Rune.DecodeLastFromUtf16(text.AsSpan(0, end), out var r, out _);
            return UnicodeChars.IsWordChar(r.Value);
        }

        private static bool StartsWithWordChar(string text, int start)
        {
            Rune.DecodeFromUtf16(text.AsSpan(start), out var r, out _);
            return UnicodeChars.IsWordChar(r.Value);
        }

        private static int WhitespaceRunStart(string text, int end)
        {
            while (end > 0)
            {
                Rune.DecodeLastFromUtf16(text.AsSpan(0, end), out var r, out int len);
                if (!UnicodeChars.IsWhitespace(r.Value))
                {
                    break;
                }
                end -= len;
            }
            return end;
        }

        private static int WhitespaceRunEnd(string text, int start)
        {
            while (start < text.Length)
            {
                Rune.DecodeFromUtf16(text.AsSpan(start), out var r, out int len);
                if (!UnicodeChars.IsWhitespace(r.Value))
                {
                    break;
                }
                start += len;
            }
            return start;
        }
    }
}
