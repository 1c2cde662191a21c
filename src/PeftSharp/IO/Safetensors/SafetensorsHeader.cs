using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Win32.SafeHandles;

namespace PeftSharp.IO.Safetensors;

/// <summary>
/// A parsed and validated safetensors header. The checks follow the Rust <c>safetensors</c> crate
/// (<c>SafeTensors::read_metadata</c> and <c>Metadata::validate</c>): an 8-byte little-endian length of at most
/// 100,000,000, a UTF-8 JSON object starting with <c>{</c> (trailing JSON whitespace allowed, as serde_json allows the
/// space padding), and tensors whose byte ranges, sorted by offset, tile the data section exactly from 0 to its end
/// (no hole, no overlap, no trailing byte). Beyond the crate (which silently keeps the last of duplicate JSON keys),
/// duplicate tensor names are rejected.
/// </summary>
internal sealed class SafetensorsHeader
{
    /// <summary>The Rust crate's <c>MAX_HEADER_SIZE</c>.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private SafetensorsHeader(IReadOnlyDictionary<string, string> metadata, IReadOnlyList<SafetensorsEntry> entries, long headerBytes)
    {
        Metadata = metadata;
        Entries = entries;
        HeaderBytes = headerBytes;
    }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Entries in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>The JSON header's length in bytes, padding included (the u64 prefix's value).</summary>
    public long HeaderBytes { get; }

    /// <summary>File offset of the data section: 8 + <see cref="HeaderBytes"/>.</summary>
    public long DataStart => 8 + HeaderBytes;

    /// <summary>Reads the length prefix and the header of an open file, validating both against the file length.</summary>
    public static SafetensorsHeader Read(SafeFileHandle handle, string path)
    {
        var fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
        {
            throw Fail(path, $"file is {fileLength} bytes, shorter than the 8-byte header length prefix");
        }
        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(handle, prefix, 0, path);
        var declared = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (declared > MaxHeaderBytes)
        {
            throw Fail(path, $"header length prefix says {declared} bytes, over the {MaxHeaderBytes:N0}-byte limit of the format");
        }
        var headerBytes = (long)declared;
        if (8 + headerBytes > fileLength)
        {
            throw Fail(path, $"header length prefix says {headerBytes} bytes but the file has only {fileLength - 8} bytes after the prefix");
        }
        var json = new byte[headerBytes];
        ReadExactly(handle, json, 8, path);
        return Parse(json, path, fileLength - 8 - headerBytes);
    }

    /// <summary>Parses header JSON and validates it against a data section of <paramref name="dataLength"/> bytes.</summary>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> json, string path, long dataLength)
    {
        if (json.Length == 0 || json[0] != (byte)'{')
        {
            throw Fail(path, json.Length == 0 ? "header is empty" : $"header does not start with '{{' (first byte 0x{json[0]:X2})");
        }
        if (!Utf8.IsValid(json))
        {
            throw Fail(path, "header is not valid UTF-8");
        }

        var metadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<SafetensorsEntry>();
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            reader.Read();
            var names = new HashSet<string>(StringComparer.Ordinal);
            var sawMetadata = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString()!;
                reader.Read();
                if (name == MetadataKey)
                {
                    if (sawMetadata)
                    {
                        throw Fail(path, "header has \"__metadata__\" twice");
                    }
                    sawMetadata = true;
                    ReadMetadata(ref reader, metadata, path);
                }
                else
                {
                    if (!names.Add(name))
                    {
                        throw Fail(path, $"tensor '{name}' appears twice in the header");
                    }
                    entries.Add(ReadEntry(ref reader, name, path));
                }
            }
            // serde_json accepts only JSON whitespace after the value; Read() throws on anything else.
            if (reader.Read())
            {
                throw Fail(path, "header has content after its JSON object");
            }
        }
        catch (JsonException e)
        {
            throw Fail(path, $"header is not valid JSON (byte {e.BytePositionInLine}): {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // Utf8JsonReader.GetString throws this for escapes that decode to invalid UTF-16 (lone surrogates).
            throw Fail(path, $"header has an invalid JSON string: {e.Message}", e);
        }

        Validate(entries, path, dataLength);
        return new SafetensorsHeader(new ReadOnlyDictionary<string, string>(metadata), entries.AsReadOnly(), json.Length);
    }

    internal static SafetensorsException Fail(string path, string message, Exception? inner = null) =>
        inner is null ? new SafetensorsException($"{path}: {message}") : new SafetensorsException($"{path}: {message}", inner);

    internal static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n == 0)
            {
                throw Fail(path, $"file ended after byte {offset + done} while reading {buffer.Length} bytes from offset {offset} (was it truncated while open?)");
            }
            done += n;
        }
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, OrderedDictionary<string, string> metadata, string path)
    {
        // The crate's field is Option<HashMap<String, String>>: null means none.
        if (reader.TokenType == JsonTokenType.Null)
        {
            return;
        }
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Fail(path, $"\"__metadata__\" must be an object of strings, found {Describe(reader.TokenType)}");
        }
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = reader.GetString()!;
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
            {
                throw Fail(path, $"\"__metadata__\" value of '{key}' must be a string, found {Describe(reader.TokenType)}");
            }
            if (!metadata.TryAdd(key, reader.GetString()!))
            {
                throw Fail(path, $"\"__metadata__\" has key '{key}' twice");
            }
        }
    }

    private static SafetensorsEntry ReadEntry(ref Utf8JsonReader reader, string name, string path)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Fail(path, $"tensor '{name}': entry must be an object with dtype, shape and data_offsets, found {Describe(reader.TokenType)}");
        }
        SafetensorsDType? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var field = reader.GetString()!;
            reader.Read();
            switch (field)
            {
                case "dtype":
                    if (dtype is not null)
                    {
                        throw Fail(path, $"tensor '{name}': \"dtype\" given twice");
                    }
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw Fail(path, $"tensor '{name}': \"dtype\" must be a string, found {Describe(reader.TokenType)}");
                    }
                    var text = reader.GetString()!;
                    dtype = SafetensorsDTypes.TryParse(text, out var parsed)
                        ? parsed
                        : throw Fail(path, $"tensor '{name}': unknown dtype \"{text}\" (known: {string.Join(", ", Enum.GetNames<SafetensorsDType>())})");
                    break;
                case "shape":
                    if (shape is not null)
                    {
                        throw Fail(path, $"tensor '{name}': \"shape\" given twice");
                    }
                    shape = ReadIntegers(ref reader, name, "shape", path);
                    break;
                case "data_offsets":
                    if (offsets is not null)
                    {
                        throw Fail(path, $"tensor '{name}': \"data_offsets\" given twice");
                    }
                    offsets = ReadIntegers(ref reader, name, "data_offsets", path);
                    if (offsets.Length != 2)
                    {
                        throw Fail(path, $"tensor '{name}': \"data_offsets\" must be [begin, end], found {offsets.Length} numbers");
                    }
                    break;
                default:
                    // serde ignores unknown fields of TensorInfo; so do we.
                    reader.Skip();
                    break;
            }
        }
        if (dtype is null || shape is null || offsets is null)
        {
            var missing = dtype is null ? "dtype" : shape is null ? "shape" : "data_offsets";
            throw Fail(path, $"tensor '{name}': entry has no \"{missing}\"");
        }
        return new SafetensorsEntry(name, dtype.Value, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadIntegers(ref Utf8JsonReader reader, string name, string field, string path)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Fail(path, $"tensor '{name}': \"{field}\" must be an array of non-negative integers, found {Describe(reader.TokenType)}");
        }
        var values = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number)
            {
                throw Fail(path, $"tensor '{name}': \"{field}\" must hold non-negative integers, found {Describe(reader.TokenType)}");
            }
            if (!reader.TryGetInt64(out var value) || value < 0)
            {
                var raw = System.Text.Encoding.UTF8.GetString(reader.ValueSpan);
                throw Fail(path, $"tensor '{name}': \"{field}\" has {raw}, not a non-negative integer below 2^63");
            }
            values.Add(value);
        }
        return [.. values];
    }

    private static void Validate(List<SafetensorsEntry> entries, string path, long dataLength)
    {
        foreach (var e in entries)
        {
            if (e.End < e.Begin)
            {
                throw Fail(path, $"tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] end before they begin");
            }
            if (e.End > dataLength)
            {
                throw Fail(path, $"tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] run past the end of the data section ({dataLength} bytes)");
            }
            long expected;
            try
            {
                expected = checked(e.Shape.Aggregate(1L, (a, d) => a * d) * e.DType.ItemSize());
            }
            catch (OverflowException)
            {
                throw Fail(path, $"tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] of {e.DType} overflows 64-bit byte counts");
            }
            if (expected != e.ByteLength)
            {
                throw Fail(path, $"tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] of {e.DType} needs {expected} bytes, data_offsets [{e.Begin}, {e.End}] give {e.ByteLength}");
            }
        }

        // As Metadata::validate: sorted by (begin, end), each tensor must start where the previous one ended.
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long covered = 0;
        foreach (var e in sorted)
        {
            if (e.Begin > covered)
            {
                throw Fail(path, $"tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] leave bytes [{covered}, {e.Begin}) of the data section covered by no tensor");
            }
            if (e.Begin < covered)
            {
                throw Fail(path, $"tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] overlap another tensor's bytes (which end with byte {covered})");
            }
            covered = e.End;
        }
        if (covered != dataLength)
        {
            throw Fail(path, $"data section has {dataLength} bytes but the tensors cover {covered}: {dataLength - covered} trailing bytes belong to no tensor");
        }
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };
}
