using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using PeftSharp.Tokenization.Unicode;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>
/// A .NET regex that matches as Oniguruma does in Hugging Face tokenizers, on code points. .NET matches UTF-16
/// units, so a letter outside the BMP (𝐀, 𠀀) is two surrogates that <c>\p{L}</c> rejects; we run the regex on a
/// proxy string where each such code point is one BMP character of the same general category, then map the
/// matches back.
/// </summary>
internal sealed class CodePointRegex
{
    private static readonly Lazy<Dictionary<UnicodeCategory, char>> s_standIns = new(BuildStandIns);

    private readonly Regex _regex;
    private readonly bool _caseInsensitive;

    public CodePointRegex(string pattern)
    {
        Pattern = pattern;
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
        _caseInsensitive = pattern.Contains("(?i", StringComparison.Ordinal);
    }

    public string Pattern { get; }

    /// <summary>A regex matching <paramref name="literal"/> exactly (tokenizers' <c>SplitPattern::String</c>).</summary>
    public static CodePointRegex ForLiteral(string literal) => new(Regex.Escape(literal));

    /// <summary>Non-overlapping matches, left to right, as (start, end) UTF-16 offsets into <paramref name="text"/>.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var result = new List<(int, int)>();
        bool needsProxy = false;
        foreach (char c in text)
        {
            if (char.IsSurrogate(c) || (_caseInsensitive && c == '\u017F'))
            {
                needsProxy = true;
                break;
            }
        }
        if (!needsProxy)
        {
            for (var m = _regex.Match(text); m.Success; m = m.NextMatch())
            {
                result.Add((m.Index, m.Index + m.Length));
            }
            return result;
        }
        var (proxy, offsets) = BuildProxy(text);
        for (var m = _regex.Match(proxy); m.Success; m = m.NextMatch())
        {
            result.Add((offsets[m.Index], offsets[m.Index + m.Length]));
        }
        return result;
    }

    private (string Proxy, int[] Offsets) BuildProxy(string text)
    {
        var sb = new StringBuilder(text.Length);
        var offsets = new List<int>(text.Length + 1);
        int i = 0;
        while (i < text.Length)
        {
            offsets.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32(text[i], text[i + 1]);
                sb.Append(s_standIns.Value[UnicodeChars.Category(cp)]);
                i += 2;
                continue;
            }
            // Oniguruma folds U+017F (long s) onto 's' under (?i); .NET's case table does not.
            sb.Append(_caseInsensitive && text[i] == '\u017F' ? 's' : text[i]);
            i++;
        }
        offsets.Add(text.Length);
        return (sb.ToString(), offsets.ToArray());
    }

    // One BMP character per general category, above Latin-1 so that no ASCII literal of a pattern can match it.
    private static Dictionary<UnicodeCategory, char> BuildStandIns()
    {
        var map = new Dictionary<UnicodeCategory, char>();
        for (int cp = 0x100; cp < 0x10000; cp++)
        {
            if (cp is >= 0xD800 and < 0xE000)
            {
                continue;
            }
            map.TryAdd(CharUnicodeInfo.GetUnicodeCategory((char)cp), (char)cp);
        }
        for (int cp = 0; cp < 0x100; cp++)
        {
            map.TryAdd(CharUnicodeInfo.GetUnicodeCategory((char)cp), (char)cp);
        }
        return map;
    }
}
