using System.Text;
using PeftSharp.Tokenization.Unicode;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "normalizer": rewrites a piece of text before pre-tokenization.</summary>
internal interface INormalizer
{
    string Normalize(string text);
}

/// <summary>Builds normalizers from tokenizer.json, as tokenizers' <c>NormalizerWrapper</c>.</summary>
internal static class Normalizers
{
    private static readonly string[] s_supported =
        ["Sequence", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "StripAccents", "Replace", "Prepend",
         "BertNormalizer", "Nmt", "ByteLevel", "Precompiled (empty charsmap only)"];

    public static INormalizer? Create(JsonSection json)
    {
        if (json.IsNull)
        {
            return null;
        }
        switch (json.Type)
        {
            case "Sequence":
                return new SequenceNormalizer(json.Items("normalizers").Select(Create).OfType<INormalizer>().ToArray());
            case "NFC":
                return new UnicodeFormNormalizer(UnicodeForm.Nfc);
            case "NFD":
                return new UnicodeFormNormalizer(UnicodeForm.Nfd);
            case "NFKC":
                return new UnicodeFormNormalizer(UnicodeForm.Nfkc);
            case "NFKD":
                return new UnicodeFormNormalizer(UnicodeForm.Nfkd);
            case "Lowercase":
                return new LowercaseNormalizer();
            case "Strip":
                return new StripNormalizer(json.Bool("strip_left", true), json.Bool("strip_right", true));
            case "StripAccents":
                return new StripAccentsNormalizer();
            case "Replace":
                return new ReplaceNormalizer(json.Pattern("pattern"), json.String("content"));
            case "Prepend":
                return new PrependNormalizer(json.String("prepend"));
            case "BertNormalizer":
                return new BertNormalizer(json.Bool("clean_text", true), json.Bool("handle_chinese_chars", true),
                    json.OptionalBool("strip_accents"), json.Bool("lowercase", true));
            case "Nmt":
                return new NmtNormalizer();
            case "ByteLevel":
                return new ByteLevelNormalizer();
            case "Precompiled":
                // The SentencePiece charsmap (T5, ALBERT, XLM-R) is a darts trie we do not implement; an empty one is a no-op.
                if (string.IsNullOrEmpty(json.OptionalString("precompiled_charsmap")))
                {
                    return null;
                }
                throw json.Error("normalizer type 'Precompiled' with a non-empty SentencePiece charsmap is not supported " +
                    $"(supported: {string.Join(", ", s_supported)})");
            default:
                throw json.Unsupported("normalizer", s_supported);
        }
    }
}

internal sealed class SequenceNormalizer(IReadOnlyList<INormalizer> normalizers) : INormalizer
{
    public string Normalize(string text)
    {
        foreach (var n in normalizers)
        {
            text = n.Normalize(text);
        }
        return text;
    }
}

internal sealed class UnicodeFormNormalizer(UnicodeForm form) : INormalizer
{
    public string Normalize(string text) => UnicodeNormalization.Normalize(text, form);
}

internal sealed class LowercaseNormalizer : INormalizer
{
    public string Normalize(string text) => UnicodeChars.ToLower(text);
}

internal sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public string Normalize(string text)
    {
        int start = 0, end = text.Length;
        while (left && start < end && IsWhitespaceAt(text, start, out int len))
        {
            start += len;
        }
        while (right && end > start && IsWhitespaceBefore(text, end, out int len))
        {
            end -= len;
        }
        return text[start..end];
    }

    private static bool IsWhitespaceAt(string s, int i, out int len)
    {
        Rune.DecodeFromUtf16(s.AsSpan(i), out var rune, out len);
        return UnicodeChars.IsWhitespace(rune.Value);
    }

    private static bool IsWhitespaceBefore(string s, int end, out int len)
    {
        Rune.DecodeLastFromUtf16(s.AsSpan(0, end), out var rune, out len);
        return UnicodeChars.IsWhitespace(rune.Value);
    }
}

/// <summary>tokenizers' StripAccents: drops every combining mark (M*); it does not decompose first.</summary>
internal sealed class StripAccentsNormalizer : INormalizer
{
    public string Normalize(string text) => UnicodeChars.Filter(text, cp => !UnicodeChars.IsMark(cp));
}

internal sealed class ReplaceNormalizer(CodePointRegex pattern, string content) : INormalizer
{
    public string Normalize(string text) => Splitting.Replace(text, pattern, content);
}

/// <summary>Prepends a string to every non-empty piece (Llama 2's "▁").</summary>
internal sealed class PrependNormalizer(string prefix) : INormalizer
{
    public string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

/// <summary>BERT's normalizer, as tokenizers <c>normalizers/bert.rs</c>.</summary>
internal sealed class BertNormalizer(bool cleanText, bool handleChineseChars, bool? stripAccents, bool lowercase) : INormalizer
{
    public string Normalize(string text)
    {
        if (cleanText)
        {
            var sb = new StringBuilder(text.Length);
            foreach (var rune in text.EnumerateRunes())
            {
                int cp = rune.Value;
                bool isControl = cp is not ('\t' or '\n' or '\r') && UnicodeChars.IsOther(cp);
                if (cp == 0 || cp == 0xFFFD || isControl)
                {
                    continue;
                }
                if (cp is '\t' or '\n' or '\r' || UnicodeChars.IsWhitespace(cp))
                {
                    sb.Append(' ');
                }
                else
                {
                    sb.Append(rune.ToString());
                }
            }
            text = sb.ToString();
        }
        if (handleChineseChars)
        {
            var sb = new StringBuilder(text.Length);
            foreach (var rune in text.EnumerateRunes())
            {
                if (IsChineseChar(rune.Value))
                {
                    sb.Append(' ').Append(rune.ToString()).Append(' ');
                }
                else
                {
                    sb.Append(rune.ToString());
                }
            }
            text = sb.ToString();
        }
        // strip_accents: null follows lowercase (BERT uncased strips, cased keeps).
        if (stripAccents ?? lowercase)
        {
            text = UnicodeChars.Filter(UnicodeNormalization.Normalize(text, UnicodeForm.Nfd),
                cp => !UnicodeChars.IsNonSpacingMark(cp));
        }
        return lowercase ? UnicodeChars.ToLower(text) : text;
    }

    // The CJK Unified Ideographs blocks, as BERT defines "Chinese character".
    private static bool IsChineseChar(int cp) => cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF)
        or (>= 0x20000 and <= 0x2A6DF) or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F)
        or (>= 0x2B920 and <= 0x2CEAF) or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);
}

/// <summary>tokenizers' Nmt normalizer: drops ASCII controls and maps odd spaces to ' '.</summary>
internal sealed class NmtNormalizer : INormalizer
{
    public string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            int cp = rune.Value;
            if (cp is (>= 0x01 and <= 0x08) or 0x0B or (>= 0x0E and <= 0x1F) or 0x7F or 0x8F or 0x9F)
            {
                continue;
            }
            bool space = cp is 0x09 or 0x0A or 0x0C or 0x0D or 0x1680 or (>= 0x200B and <= 0x200F)
                or 0x2028 or 0x2029 or 0x2581 or 0xFEFF or 0xFFFD;
            sb.Append(space ? " " : rune.ToString());
        }
        return sb.ToString();
    }
}

/// <summary>The ByteLevel normalizer: every UTF-8 byte becomes its GPT-2 alphabet character.</summary>
internal sealed class ByteLevelNormalizer : INormalizer
{
    public string Normalize(string text) => ByteLevelAlphabet.Encode(text);
}
