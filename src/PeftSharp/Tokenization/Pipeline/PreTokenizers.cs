using PeftSharp.Tokenization.Unicode;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "pre_tokenizer": splits normalized pieces into the words the model sees.</summary>
internal interface IPreTokenizer
{
    List<PreToken> PreTokenize(List<PreToken> pieces);
}

/// <summary>Builds pre-tokenizers from tokenizer.json, as tokenizers' <c>PreTokenizerWrapper</c>.</summary>
internal static class PreTokenizers
{
    // GPT-2's word regex (encoder.py), which ByteLevel applies when use_regex is true.
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly string[] s_supported =
        ["Sequence", "ByteLevel", "Split", "BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Metaspace",
         "Punctuation", "Digits", "CharDelimiterSplit"];

    private static readonly Lazy<CodePointRegex> s_gpt2 = new(() => new CodePointRegex(Gpt2Pattern));

    public static IPreTokenizer? Create(JsonSection json)
    {
        if (json.IsNull)
        {
            return null;
        }
        return json.Type switch
        {
            "Sequence" => new SequencePreTokenizer(json.Items("pretokenizers").Select(Create).OfType<IPreTokenizer>().ToArray()),
            "ByteLevel" => new ByteLevelPreTokenizer(json.Bool("add_prefix_space", true), json.Bool("use_regex", true) ? s_gpt2.Value : null),
            "Split" => new SplitPreTokenizer(json.Pattern("pattern"), Behavior(json, "behavior"), json.Bool("invert", false)),
            "BertPreTokenizer" => new BertPreTokenizer(),
            "Whitespace" => new WhitespacePreTokenizer(),
            "WhitespaceSplit" => new PredicatePreTokenizer(UnicodeChars.IsWhitespace, SplitBehavior.Removed),
            "Metaspace" => Metaspace(json),
            "Punctuation" => new PredicatePreTokenizer(UnicodeChars.IsBertPunctuation,
                json.Has("behavior") ? Behavior(json, "behavior") : SplitBehavior.Isolated),
            "Digits" => new PredicatePreTokenizer(UnicodeChars.IsNumeric,
                json.Bool("individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous),
            "CharDelimiterSplit" => CharDelimiter(json),
            _ => throw json.Unsupported("pre_tokenizer", s_supported),
        };
    }

    /// <summary>Splits every piece; the first sub-piece of a piece at offset 0 keeps that mark.</summary>
    public static List<PreToken> SplitEach(List<PreToken> pieces, Func<string, List<(int Start, int End, bool IsMatch)>> segmenter, SplitBehavior behavior, bool invert = false)
    {
        var result = new List<PreToken>(pieces.Count);
        foreach (var piece in pieces)
        {
            foreach (var (start, end) in Splitting.Split(segmenter(piece.Text), behavior, invert))
            {
                result.Add(new PreToken(piece.Text[start..end], piece.AtOriginalStart && start == 0));
            }
        }
        return result;
    }

    public static SplitBehavior Behavior(JsonSection json, string key)
    {
        var name = json.String(key);
        return Enum.TryParse<SplitBehavior>(name, ignoreCase: false, out var b) && Enum.IsDefined(b)
            ? b
            : throw json.Error($"'{key}' \"{name}\" is not a split behavior (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
    }

    private static MetaspacePreTokenizer Metaspace(JsonSection json)
    {
        var replacement = json.Char("replacement", "\u2581");
        var scheme = json.Has("prepend_scheme") ? json.String("prepend_scheme") : "always";
        if (json.OptionalBool("add_prefix_space") == false)
        {
            scheme = "never";
        }
        if (scheme is not ("always" or "first" or "never"))
        {
            throw json.Error($"'prepend_scheme' \"{scheme}\" is not one of always, first, never");
        }
        return new MetaspacePreTokenizer(replacement, scheme, json.Bool("split", true));
    }

    private static PredicatePreTokenizer CharDelimiter(JsonSection json)
    {
        int delimiter = json.Char("delimiter").EnumerateRunes().First().Value;
        return new PredicatePreTokenizer(cp => cp == delimiter, SplitBehavior.Removed);
    }
}

internal sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> steps) : IPreTokenizer
{
    public List<PreToken> PreTokenize(List<PreToken> pieces)
    {
        foreach (var step in steps)
        {
            pieces = step.PreTokenize(pieces);
        }
        return pieces;
    }
}

/// <summary>GPT-2's pre-tokenizer: optional leading space, the word regex, then bytes as alphabet characters.</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, CodePointRegex? regex) : IPreTokenizer
{
    public List<PreToken> PreTokenize(List<PreToken> pieces)
    {
        var spaced = pieces.Select(p => addPrefixSpace && !p.Text.StartsWith(' ') ? p with { Text = " " + p.Text } : p).ToList();
        if (regex != null)
        {
            spaced = PreTokenizers.SplitEach(spaced, t => Splitting.FromMatches(t, regex.Matches(t)), SplitBehavior.Isolated);
        }
        return spaced.Select(p => p with { Text = ByteLevelAlphabet.Encode(p.Text) }).ToList();
    }
}

internal sealed class SplitPreTokenizer(CodePointRegex pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    public List<PreToken> PreTokenize(List<PreToken> pieces) =>
        PreTokenizers.SplitEach(pieces, t => Splitting.FromMatches(t, pattern.Matches(t)), behavior, invert);
}

/// <summary>Splits on every code point that satisfies a predicate (WhitespaceSplit, Punctuation, Digits, CharDelimiterSplit).</summary>
internal sealed class PredicatePreTokenizer(Func<int, bool> isDelimiter, SplitBehavior behavior) : IPreTokenizer
{
    public List<PreToken> PreTokenize(List<PreToken> pieces) =>
        PreTokenizers.SplitEach(pieces, t => Splitting.FromPredicate(t, isDelimiter), behavior);
}

/// <summary>BERT: drop whitespace, then isolate each punctuation character.</summary>
internal sealed class BertPreTokenizer : IPreTokenizer
{
    public List<PreToken> PreTokenize(List<PreToken> pieces)
    {
        var words = PreTokenizers.SplitEach(pieces, t => Splitting.FromPredicate(t, UnicodeChars.IsWhitespace), SplitBehavior.Removed);
        return PreTokenizers.SplitEach(words, t => Splitting.FromPredicate(t, UnicodeChars.IsBertPunctuation), SplitBehavior.Isolated);
    }
}

/// <summary>
/// tokenizers' Whitespace: keeps the matches of <c>\w+|[^\w\s]+</c>. Written as a scan over code points because
/// .NET's <c>\w</c> is narrower than Rust's Unicode <c>\w</c>.
/// </summary>
internal sealed class WhitespacePreTokenizer : IPreTokenizer
{
    public List<PreToken> PreTokenize(List<PreToken> pieces) =>
        PreTokenizers.SplitEach(pieces, Segments, SplitBehavior.Removed, invert: true);

    private static List<(int Start, int End, bool IsMatch)> Segments(string text)
    {
        var matches = new List<(int Start, int End)>();
        int i = 0, runStart = -1, runKind = -1;
        foreach (var rune in text.EnumerateRunes())
        {
            int kind = UnicodeChars.IsWordChar(rune.Value) ? 0 : UnicodeChars.IsWhitespace(rune.Value) ? 1 : 2;
            if (kind != runKind)
            {
                if (runKind is 0 or 2)
                {
                    matches.Add((runStart, i));
                }
                runStart = i;
                runKind = kind;
            }
            i += rune.Utf16SequenceLength;
        }
        if (runKind is 0 or 2)
        {
            matches.Add((runStart, i));
        }
        return Splitting.FromMatches(text, matches);
    }
}

/// <summary>SentencePiece's Metaspace: spaces become "▁", optionally prefixed, split before each "▁".</summary>
internal sealed class MetaspacePreTokenizer(string replacement, string prependScheme, bool split) : IPreTokenizer
{
    public string Replacement => replacement;

    public string PrependScheme => prependScheme;

    public List<PreToken> PreTokenize(List<PreToken> pieces)
    {
        var replaced = new List<PreToken>(pieces.Count);
        foreach (var p in pieces)
        {
            var text = p.Text.Replace(" ", replacement, StringComparison.Ordinal);
            bool prepend = prependScheme == "always" || (prependScheme == "first" && p.AtOriginalStart);
            if (prepend && !text.StartsWith(replacement, StringComparison.Ordinal))
            {
                text = replacement + text;
            }
            replaced.Add(p with { Text = text });
        }
        if (!split)
        {
            return replaced;
        }
        int cp = replacement.EnumerateRunes().First().Value;
        return PreTokenizers.SplitEach(replaced, t => Splitting.FromPredicate(t, c => c == cp), SplitBehavior.MergedWithNext);
    }
}
