using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PeftSharp.IO;

/// <summary>
/// Reads JSON files (config.json, adapter_config.json, index files) with errors that name the file and, for malformed
/// JSON, the line and column, as <see cref="ConfigException"/>. A UTF-8 byte-order mark is skipped; other non-UTF-8
/// bytes are an error. Syntax is strict RFC 8259 (no comments, no trailing commas).
/// </summary>
public static class JsonFiles
{
    // Python's json keeps the last of duplicate keys silently; a config with one is almost surely a mistake.
    private static readonly JsonDocumentOptions s_options = new() { AllowDuplicateProperties = false };

    /// <summary>Parses <paramref name="path"/> into a <see cref="JsonDocument"/> (caller disposes it).</summary>
    public static JsonDocument ReadDocument(string path)
    {
        var bytes = ReadUtf8(path);
        try
        {
            return JsonDocument.Parse(bytes, s_options);
        }
        catch (JsonException e)
        {
            throw Malformed(path, e);
        }
    }

    /// <summary>Parses <paramref name="path"/> into a mutable <see cref="JsonNode"/>; a file holding just <c>null</c> is an error.</summary>
    public static JsonNode ReadNode(string path)
    {
        var bytes = ReadUtf8(path);
        try
        {
            return JsonNode.Parse(bytes.Span, documentOptions: s_options) ?? throw new ConfigException($"{path}: holds JSON null, expected a value");
        }
        catch (JsonException e)
        {
            throw Malformed(path, e);
        }
    }

    /// <summary>Parses <paramref name="path"/>, which must hold a JSON object (as every Hugging Face config does).</summary>
    public static JsonObject ReadObject(string path)
    {
        var node = ReadNode(path);
        return node as JsonObject ?? throw new ConfigException($"{path}: the top level must be a JSON object, found {node.GetValueKind()}");
    }

    private static ReadOnlyMemory<byte> ReadUtf8(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read: {e.Message}", e);
        }
        var body = bytes.AsMemory();
        if (body.Span.StartsWith(Encoding.UTF8.Preamble))
        {
            body = body[Encoding.UTF8.Preamble.Length..];
        }
        var invalidAt = FirstInvalidUtf8(body.Span);
        if (invalidAt >= 0)
        {
            var (line, column) = LineAndColumn(body.Span[..invalidAt]);
            throw new ConfigException($"{path}: not UTF-8: invalid byte 0x{body.Span[invalidAt]:X2} on line {line}, column {column} (byte {invalidAt})");
        }
        return body;
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        var offset = 0;
        while (offset < bytes.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(bytes[offset..], out _, out var consumed) != System.Buffers.OperationStatus.Done)
            {
                return offset;
            }
            offset += consumed;
        }
        return -1;
    }

    private static (long Line, long Column) LineAndColumn(ReadOnlySpan<byte> before)
    {
        var lastNewline = before.LastIndexOf((byte)'\n');
        return (before.Count((byte)'\n') + 1, before.Length - lastNewline);
    }

    private static ConfigException Malformed(string path, JsonException e)
    {
        // JsonException counts lines and bytes from 0.
        var where = e.LineNumber is { } line ? $" (line {line + 1}, position {e.BytePositionInLine + 1})" : "";
        // The parser's own message repeats the position as "LineNumber: … | BytePositionInLine: …".
        var cut = e.Message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return new ConfigException($"{path}: malformed JSON{where}: {(cut > 0 ? e.Message[..cut] : e.Message)}", e);
    }
}
