using System.Buffers.Binary;
using System.Text;
using TorchSharp;

namespace PeftSharp.IO.Safetensors;

/// <summary>
/// Writes safetensors files byte for byte as the Rust <c>safetensors</c> crate's <c>serialize_to_file</c> does (so as
/// Hugging Face PEFT and transformers write them): an 8-byte little-endian header length; a compact JSON header with
/// <c>"__metadata__"</c> first, then the tensors sorted by dtype (Rust enum order, descending) and then by name
/// (UTF-8 byte order), each as <c>{"dtype","shape","data_offsets"}</c>; the header padded with spaces to a multiple of
/// 8; then the raw little-endian data, contiguous, in the same order.
/// </summary>
public static class SafetensorsWriter
{
    // Rust strings are valid UTF-8: a lone surrogate in a name or metadata must fail, not become U+FFFD.
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Atomically writes <paramref name="tensors"/> (any device, any layout; read, never modified) and optional
    /// <paramref name="metadata"/> (written in its enumeration order; the crate writes a HashMap, in no fixed order, so
    /// only single-key metadata such as PEFT's <c>{"format": "pt"}</c> is byte-comparable across writers).
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var items = Prepare(path, tensors);
        var header = BuildHeader(path, items, metadata);
        AtomicFile.Write(path, stream =>
        {
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var item in items)
            {
                using var scope = torch.NewDisposeScope();
                var t = item.Tensor;
                if (t.device_type != DeviceType.CPU)
                {
                    t = t.cpu();
                }
                if (!t.is_contiguous())
                {
                    t = t.contiguous();
                }
                TensorBytes.WriteFrom(t, stream);
            }
        });
    }

    /// <summary>One tensor to write, with its UTF-8 name (the sort key) and header facts.</summary>
    internal sealed record Item(string Name, byte[] Utf8Name, SafetensorsDType DType, long[] Shape, long ByteLength, torch.Tensor Tensor);

    /// <summary>Validates names and dtypes and sorts as the crate's <c>prepare</c>: dtype descending, then name.</summary>
    internal static List<Item> Prepare(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors)
    {
        var items = new List<Item>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            ArgumentNullException.ThrowIfNull(name);
            ArgumentNullException.ThrowIfNull(tensor);
            if (name == "__metadata__")
            {
                throw new SafetensorsException($"{path}: a tensor cannot be named \"__metadata__\" (the header's metadata key)");
            }
            if (!names.Add(name))
            {
                throw new SafetensorsException($"{path}: tensor '{name}' given twice");
            }
            var dtype = SafetensorsDTypes.FromScalarType(tensor.dtype)
                ?? throw new SafetensorsException($"{path}: tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store");
            items.Add(new Item(name, Utf8(path, name), dtype, tensor.shape, tensor.NumberOfElements * dtype.ItemSize(), tensor));
        }
        items.Sort((a, b) =>
        {
            var byDType = b.DType.CompareTo(a.DType);
            // Rust's String ordering compares UTF-8 bytes, which differs from UTF-16 ordinal order beyond U+FFFF.
            return byDType != 0 ? byDType : a.Utf8Name.AsSpan().SequenceCompareTo(b.Utf8Name);
        });
        return items;
    }

    /// <summary>The padded JSON header as serde_json writes the crate's <c>Metadata</c>.</summary>
    internal static byte[] BuildHeader(string path, IReadOnlyList<Item> items, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new StringBuilder("{");
        var first = true;
        if (metadata is not null)
        {
            json.Append("\"__metadata__\":{");
            var firstKey = true;
            foreach (var (key, value) in metadata)
            {
                if (!firstKey)
                {
                    json.Append(',');
                }
                firstKey = false;
                AppendString(json, key).Append(':');
                AppendString(json, value);
            }
            json.Append('}');
            first = false;
        }
        long offset = 0;
        foreach (var item in items)
        {
            if (!first)
            {
                json.Append(',');
            }
            first = false;
            AppendString(json, item.Name);
            json.Append(":{\"dtype\":\"").Append(item.DType).Append("\",\"shape\":[");
            json.AppendJoin(',', item.Shape);
            json.Append("],\"data_offsets\":[").Append(offset).Append(',').Append(offset + item.ByteLength).Append("]}");
            offset += item.ByteLength;
        }
        json.Append('}');
        var bytes = Utf8(path, json.ToString());
        var padded = (bytes.Length + 7) / 8 * 8;
        if (padded > SafetensorsHeader.MaxHeaderBytes)
        {
            throw new SafetensorsException($"{path}: header would be {padded} bytes, over the format's {SafetensorsHeader.MaxHeaderBytes:N0}-byte limit");
        }
        var header = new byte[padded];
        bytes.CopyTo(header, 0);
        header.AsSpan(bytes.Length).Fill((byte)' ');
        return header;
    }

    private static byte[] Utf8(string path, string text)
    {
        try
        {
            return s_strictUtf8.GetBytes(text);
        }
        catch (EncoderFallbackException e)
        {
            throw new SafetensorsException($"{path}: a tensor name or metadata string is not valid Unicode (lone surrogate): {e.Message}", e);
        }
    }

    /// <summary>A JSON string escaped as serde_json does: only <c>"</c>, <c>\</c> and control characters; non-ASCII stays raw UTF-8.</summary>
    private static StringBuilder AppendString(StringBuilder json, string text)
    {
        json.Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                case < ' ': json.Append("\\u00").Append(((int)c).ToString("x2")); break;
                default: json.Append(c); break;
            }
        }
        return json.Append('"');
    }
}
