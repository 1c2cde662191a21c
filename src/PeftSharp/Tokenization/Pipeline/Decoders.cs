using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "decoder": rewrites the token strings of a sequence; the result is their concatenation.</summary>
internal interface IDecoder
{
    List<string> DecodeChain(List<string> tokens);
}

/// <summary>Builds decoders from tokenizer.json, as tokenizers' <c>DecoderWrapper</c>.</summary>
internal static class Decoders
{
    private static readonly string[] s_supported =
        ["Sequence", "ByteLevel", "WordPiece", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip", "BPEDecoder", "CTC"];

    public static IDecoder? Create(JsonSection json)
    {
        if (json.IsNull)
        {
            return null;
        }
        return json.Type switch
        {
            "Sequence" => new SequenceDecoder(json.Items("decoders").Select(Create).OfType<IDecoder>().ToArray()),
            "ByteLevel" => new ByteLevelDecoder(),
            "WordPiece" => new WordPieceDecoder(json.Has("prefix") ? json.String("prefix") : "##", json.Bool("cleanup", true)),
            "Metaspace" => new MetaspaceDecoder(json.Char("replacement", "\u2581"),
                json.OptionalBool("add_prefix_space") == false || (json.Has("prepend_scheme") && json.String("prepend_scheme") == "never")),
            "Replace" => new ReplaceDecoder(json.Pattern("pattern"), json.String("content")),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => new StripDecoder(json.Char("content"), json.Int("start", 0), json.Int("stop", 0)),
            "BPEDecoder" => new BpeSuffixDecoder(json.Has("suffix") ? json.String("suffix") : "</w>"),
            "CTC" => new CtcDecoder(json.Has("pad_token") ? json.String("pad_token") : "<pad>",
                json.Has("word_delimiter_token") ? json.String("word_delimiter_token") : "|", json.Bool("cleanup", true)),
            _ => throw json.Unsupported("decoder", s_supported),
        };
    }
}

internal sealed class SequenceDecoder(IReadOnlyList<IDecoder> steps) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        foreach (var step in steps)
        {
            tokens = step.DecodeChain(tokens);
        }
        return tokens;
    }
}

/// <summary>Alphabet characters back to bytes, then UTF-8 with U+FFFD for invalid sequences (from_utf8_lossy).</summary>
internal sealed class ByteLevelDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens)
        {
            ByteLevelAlphabet.AppendBytes(t, bytes);
        }
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

internal sealed class WordPieceDecoder(string prefix, bool cleanup) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (i != 0)
            {
                t = t.StartsWith(prefix, StringComparison.Ordinal) ? t[prefix.Length..] : " " + t;
            }
            result.Add(cleanup ? Cleanup(t) : t);
        }
        return result;
    }

    /// <summary>tokenizers' <c>wordpiece::cleanup</c>: glue punctuation and English contractions to the word before.</summary>
    public static string Cleanup(string s) => s
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" do not", " don't", StringComparison.Ordinal)
        .Replace(" 's", "'s", StringComparison.Ordinal).Replace(" 've", "'ve", StringComparison.Ordinal)
        .Replace(" 're", "'re", StringComparison.Ordinal);
}

/// <summary>"▁" back to spaces; in the first token the "▁" is dropped unless the prepend scheme is "never".</summary>
internal sealed class MetaspaceDecoder(string replacement, bool never) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            result.Add(tokens[i].Replace(replacement, i == 0 && !never ? "" : " ", StringComparison.Ordinal));
        }
        return result;
    }
}

internal sealed class ReplaceDecoder(CodePointRegex pattern, string content) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => tokens.Select(t => Splitting.Replace(t, pattern, content)).ToList();
}

/// <summary>Runs of "&lt;0xNN&gt;" tokens become their UTF-8 text, or one U+FFFD per byte if invalid.</summary>
internal sealed class ByteFallbackDecoder : IDecoder
{
    private static readonly UTF8Encoding s_strictUtf8 = new(false, throwOnInvalidBytes: true);

    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(t);
        }
        Flush(pending, result);
        return result;
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0)
        {
            return;
        }
        try
        {
            result.Add(s_strictUtf8.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            result.AddRange(Enumerable.Repeat("\uFFFD", pending.Count));
        }
        pending.Clear();
    }
}

internal sealed class FuseDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of one character from each token.</summary>
internal sealed class StripDecoder(string content, int start, int stop) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => tokens.Select(Strip).ToList();

    private string Strip(string token)
    {
        var runes = token.EnumerateRunes().Select(r => r.ToString()).ToList();
        int first = 0;
        while (first < start && first < runes.Count && runes[first] == content)
        {
            first++;
        }
        int end = runes.Count, removed = 0;
        while (removed < stop && end > first && runes[end - 1] == content)
        {
            end--;
            removed++;
        }
        return string.Concat(runes.Skip(first).Take(end - first));
    }
}

/// <summary>The classic BPE decoder: the end-of-word suffix becomes a space (nothing on the last token).</summary>
internal sealed class BpeSuffixDecoder(string suffix) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) =>
        tokens.Select((t, i) => t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList();
}

internal sealed class CtcDecoder(string padToken, string wordDelimiter, bool cleanup) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>();
        string? previous = null;
        foreach (var t in tokens)
        {
            if (t == previous)
            {
                continue;
            }
            previous = t;
            var s = t.Replace(padToken, "", StringComparison.Ordinal);
            if (cleanup)
            {
                s = WordPieceDecoder.Cleanup(s).Replace(wordDelimiter, " ", StringComparison.Ordinal);
            }
            if (s.Length > 0)
            {
                result.Add(s);
            }
        }
        return result;
    }
}
