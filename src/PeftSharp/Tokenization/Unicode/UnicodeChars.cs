using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.Unicode;

/// <summary>
/// Character predicates with the meaning Hugging Face tokenizers (Rust) gives them: <c>char::is_whitespace</c>,
/// <c>is_punctuation</c>, <c>is_other</c> and friends, on code points rather than UTF-16 units.
/// </summary>
internal static class UnicodeChars
{
    public static UnicodeCategory Category(int cp) => Rune.GetUnicodeCategory(new Rune(cp));

    /// <summary>Rust <c>char::is_whitespace</c>: the Unicode White_Space property.</summary>
    public static bool IsWhitespace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    /// <summary>Unicode punctuation (Pc, Pd, Ps, Pe, Pi, Pf, Po), as the <c>unicode_categories</c> crate.</summary>
    public static bool IsPunctuation(int cp) => Category(cp) is UnicodeCategory.ConnectorPunctuation
        or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
        or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
        or UnicodeCategory.OtherPunctuation;

    /// <summary>Rust <c>char::is_ascii_punctuation</c>: the 32 ASCII symbols and punctuation marks.</summary>
    public static bool IsAsciiPunctuation(int cp) =>
        cp is (>= 0x21 and <= 0x2F) or (>= 0x3A and <= 0x40) or (>= 0x5B and <= 0x60) or (>= 0x7B and <= 0x7E);

    /// <summary>BERT's punctuation test: ASCII punctuation or any Unicode P* category.</summary>
    public static bool IsBertPunctuation(int cp) => IsAsciiPunctuation(cp) || IsPunctuation(cp);

    /// <summary><c>is_other</c> of the <c>unicode_categories</c> crate: Cc, Cf, Cn, Co (and Cs).</summary>
    public static bool IsOther(int cp) => Category(cp) is UnicodeCategory.Control or UnicodeCategory.Format
        or UnicodeCategory.OtherNotAssigned or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;

    /// <summary>General category Mn.</summary>
    public static bool IsNonSpacingMark(int cp) => Category(cp) == UnicodeCategory.NonSpacingMark;

    /// <summary>General category M (Mn, Mc, Me): <c>is_combining_mark</c> of <c>unicode-normalization</c>.</summary>
    public static bool IsMark(int cp) => Category(cp) is UnicodeCategory.NonSpacingMark
        or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark;

    /// <summary>Rust <c>char::is_numeric</c>: Nd, Nl, No.</summary>
    public static bool IsNumeric(int cp) => Category(cp) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>
    /// Rust regex <c>\w</c>: Alphabetic, marks, Nd, Pc and the joiners. Alphabetic is approximated by the letter
    /// categories, Nl and the circled/squared Latin letters (the So code points that carry Other_Alphabetic).
    /// </summary>
    public static bool IsWordChar(int cp)
    {
        if (cp is 0x200C or 0x200D or (>= 0x24B6 and <= 0x24E9) or (>= 0x1F130 and <= 0x1F149)
            or (>= 0x1F150 and <= 0x1F169) or (>= 0x1F170 and <= 0x1F189))
        {
            return true;
        }
        return Category(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber
                or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
                or UnicodeCategory.ConnectorPunctuation => true,
            _ => false,
        };
    }

    /// <summary>
    /// Rust <c>char::to_lowercase</c> applied code point by code point (full mapping, no final-sigma context), as
    /// tokenizers' <c>NormalizedString::lowercase</c>. .NET's invariant simple mapping agrees except for U+0130.
    /// </summary>
    public static string ToLower(string text)
    {
        StringBuilder? sb = null;
        int i = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            var lower = rune.Value == 0x130 ? "i\u0307" : Rune.ToLowerInvariant(rune).ToString();
            if (sb == null && (lower.Length != rune.Utf16SequenceLength || lower[0] != text[i]
                || (lower.Length == 2 && lower[1] != text[i + 1])))
            {
                sb = new StringBuilder(text.Length).Append(text, 0, i);
            }
            sb?.Append(lower);
            i += rune.Utf16SequenceLength;
        }
        return sb?.ToString() ?? text;
    }

    /// <summary>Keeps the code points of <paramref name="text"/> for which <paramref name="keep"/> holds.</summary>
    public static string Filter(string text, Func<int, bool> keep)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            if (keep(rune.Value))
            {
                sb.Append(rune.ToString());
            }
        }
        return sb.ToString();
    }
}
