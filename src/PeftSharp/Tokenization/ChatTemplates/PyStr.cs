using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Python <c>str</c> semantics on .NET strings: lengths, indices and slices count code points (not UTF-16 units), and
/// whitespace is <c>str.isspace</c>'s.
/// </summary>
internal static class PyStr
{
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    public static bool IsAllSpace(string s, int start) 
    {
        if (start >= s.Length)
        {
            return false;
        }
        for (var i = start; i < s.Length; i++)
        {
            if (!IsSpace(s[i]))
            {
                return false;
            }
        }
        return true;
    }

    private static bool HasSurrogates(string s)
    {
        foreach (var c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The string as its Python elements (one string per code point).</summary>
    public static string[] Elements(string s)
    {
        if (!HasSurrogates(s))
        {
            var plain = new string[s.Length];
            for (var i = 0; i < s.Length; i++)
            {
                plain[i] = s[i].ToString();
            }
            return plain;
        }
        var list = new List<string>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                list.Add(s[i].ToString());
            }
        }
        return [.. list];
    }

    public static int Length(string s) => HasSurrogates(s) ? Elements(s).Length : s.Length;

    /// <summary>Code-point ordinal comparison, as Python compares strings.</summary>
    public static int CompareOrdinal(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] == b[i])
            {
                continue;
            }
            // Surrogates (U+D800..DFFF) encode code points above every BMP character.
            var x = char.IsSurrogate(a[i]) ? a[i] + 0x10000 : a[i];
            var y = char.IsSurrogate(b[i]) ? b[i] + 0x10000 : b[i];
            return x.CompareTo(y);
        }
        return a.Length.CompareTo(b.Length);
    }

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        var start = 0;
        var end = s.Length;
        bool Drop(char c) => chars == null ? IsSpace(c) : chars.Contains(c);
        if (left)
        {
            while (start < end && Drop(s[start]))
            {
                start++;
            }
        }
        if (right)
        {
            while (end > start && Drop(s[end - 1]))
            {
                end--;
            }
        }
        return s[start..end];
    }

    /// <summary>Python <c>str.split</c>/<c>str.rsplit</c>; a null separator splits on runs of whitespace.</summary>
    public static List<object?> Split(string s, string? sep, long maxSplit, bool fromRight)
    {
        var parts = new List<string>();
        if (sep == null)
        {
            var words = new List<(int Start, int End)>();
            var i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && IsSpace(s[i]))
                {
                    i++;
                }
                if (i >= s.Length)
                {
                    break;
                }
                var j = i;
                while (j < s.Length && !IsSpace(s[j]))
                {
                    j++;
                }
                words.Add((i, j));
                i = j;
            }
            if (maxSplit < 0 || words.Count <= maxSplit + 1)
            {
                return words.Select(w => (object?)s[w.Start..w.End]).ToList();
            }
            var keep = (int)maxSplit;
            var result = new List<object?>();
            if (!fromRight)
            {
                result.AddRange(words.Take(keep).Select(w => (object?)s[w.Start..w.End]));
                result.Add(s[words[keep].Start..]);
            }
            else
            {
                var firstKept = words.Count - keep;
                result.Add(s[..words[firstKept - 1].End]);
                result.AddRange(words.Skip(firstKept).Select(w => (object?)s[w.Start..w.End]));
            }
            return result;
        }
        if (sep.Length == 0)
        {
            throw new TemplateError("empty separator");
        }
        var pieces = s.Split(sep);
        if (maxSplit < 0 || pieces.Length <= maxSplit + 1)
        {
            return pieces.Select(p => (object?)p).ToList();
        }
        var k = (int)maxSplit;
        if (!fromRight)
        {
            var head = pieces.Take(k).Select(p => (object?)p).ToList();
            head.Add(string.Join(sep, pieces.Skip(k)));
            return head;
        }
        var tail = new List<object?> { string.Join(sep, pieces.Take(pieces.Length - k)) };
        tail.AddRange(pieces.Skip(pieces.Length - k).Select(p => (object?)p));
        return tail;
    }

    /// <summary>Python <c>str.splitlines()</c>: the line boundaries are not kept.</summary>
    public static List<string> SplitLines(string s)
    {
        var lines = new List<string>();
        var start = 0;
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                lines.Add(s[start..i]);
                i += c == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1;
                start = i;
            }
            else
            {
                i++;
            }
        }
        if (start < s.Length)
        {
            lines.Add(s[start..]);
        }
        return lines;
    }

    /// <summary>Python <c>str.title()</c>: a cased letter after an uncased character starts a word.</summary>
    public static string TitleMethod(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            var cased = char.IsUpper(c) || char.IsLower(c) || char.IsLetter(c) && char.ToUpperInvariant(c) != char.ToLowerInvariant(c);
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = cased;
        }
        return sb.ToString();
    }

    /// <summary>Jinja's <c>title</c> filter: words begin after whitespace, '-', '(', '{', '[' or '&lt;'.</summary>
    public static string TitleFilter(string s)
    {
        var sb = new StringBuilder(s.Length);
        var atStart = true;
        foreach (var c in s)
        {
            var separator = IsSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            if (separator)
            {
                sb.Append(c);
                atStart = true;
            }
            else
            {
                sb.Append(atStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
                atStart = false;
            }
        }
        return sb.ToString();
    }

    public static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0)
        {
            if (old.Length == 0)
            {
                return replacement + string.Join(replacement, Elements(s)) + (s.Length > 0 ? replacement : "");
            }
            return s.Replace(old, replacement, StringComparison.Ordinal);
        }
        var sb = new StringBuilder();
        var pos = 0;
        for (long done = 0; done < count; done++)
        {
            var at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0 || old.Length == 0)
            {
                break;
            }
            sb.Append(s, pos, at - pos).Append(replacement);
            pos = at + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    public static long Count(string s, string sub)
    {
        if (sub.Length == 0)
        {
            return Length(s) + 1;
        }
        long n = 0;
        var pos = 0;
        while ((pos = s.IndexOf(sub, pos, StringComparison.Ordinal)) >= 0)
        {
            n++;
            pos += sub.Length;
        }
        return n;
    }

    /// <summary>Code-point index of the first (or last) occurrence of <paramref name="sub"/>, or -1.</summary>
    public static long Find(string s, string sub, bool last)
    {
        var at = last ? s.LastIndexOf(sub, StringComparison.Ordinal) : s.IndexOf(sub, StringComparison.Ordinal);
        return at < 0 ? -1 : Length(s[..at]);
    }

    /// <summary>Number of <c>\w+</c> runs, as Jinja's <c>wordcount</c>.</summary>
    public static long WordCount(string s)
    {
        long n = 0;
        var inWord = false;
        foreach (var c in s)
        {
            var w = char.IsLetterOrDigit(c) || c == '_' || CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.ConnectorPunctuation;
            if (w && !inWord)
            {
                n++;
            }
            inWord = w;
        }
        return n;
    }
}
