using System.Text;
using PeftSharp.IO.Safetensors;
using TorchSharp;

namespace PeftSharp.Tests.IO;

public class SafetensorsValidationTests
{
    private const string Meta = "\"__metadata__\":{\"format\":\"pt\"}";

    public static TheoryData<string, string, long, string> MalformedHeaders => new()
    {
        // name, header JSON, data bytes, fragment the message must contain
        { "not json", "{nope}", 0, "not valid JSON" },
        { "truncated json", "{\"a\":{\"dtype\":\"F32\"", 0, "not valid JSON" },
        { "header not an object", "[1,2]", 0, "does not start with '{'" },
        { "leading whitespace", " {}", 0, "does not start with '{'" },
        { "junk after object", "{} x", 0, "not valid JSON" },
        { "second object", "{}{}", 0, "not valid JSON" },
        { "comment", "{/* c */}", 0, "not valid JSON" },
        { "entry not an object", "{\"a\":[1]}", 0, "tensor 'a': entry must be an object" },
        { "missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': entry has no \"dtype\"" },
        { "missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a': entry has no \"shape\"" },
        { "missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a': entry has no \"data_offsets\"" },
        { "dtype a number", "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" must be a string" },
        { "shape a string", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "\"shape\" must be an array" },
        { "shape holds null", "{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", 4, "\"shape\" must hold non-negative integers" },
        { "fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "\"shape\" has 1.5" },
        { "negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "\"shape\" has -1" },
        { "dim beyond int64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,4]}}", 4, "\"shape\" has 18446744073709551615" },
        { "one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "must be [begin, end]" },
        { "three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "must be [begin, end]" },
        { "duplicate field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" given twice" },
        { "unknown dtype", "{\"a\":{\"dtype\":\"F4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor 'a': unknown dtype \"F4\"" },
        { "lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\"" },
        { "end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "tensor 'a': data_offsets [4, 0] end before" },
        { "wrong byte count", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "tensor 'a': shape [2] of F32 needs 8 bytes" },
        { "past the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "tensor 'a': data_offsets [0, 8] run past the end of the data section (4 bytes)" },
        { "shape overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "tensor 'a': shape [4294967296, 4294967296] of F64 overflows" },
        { "hole at start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor 'a': data_offsets [4, 8] leave bytes [0, 4)" },
        { "hole between", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "tensor 'b': data_offsets [8, 12] leave bytes [4, 8)" },
        { "overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor 'b': data_offsets [4, 8] overlap" },
        { "same range twice", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap" },
        { "trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "2 trailing bytes belong to no tensor" },
        { "data but no tensors", "{" + Meta + "}", 3, "3 trailing bytes" },
        { "duplicate tensor", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "tensor 'a' appears twice" },
        { "metadata not an object", "{\"__metadata__\":[\"pt\"]}", 0, "\"__metadata__\" must be an object of strings, found an array" },
        { "metadata value a number", "{\"__metadata__\":{\"format\":1}}", 0, "\"__metadata__\" value of 'format' must be a string, found a number" },
        { "metadata value an object", "{\"__metadata__\":{\"format\":{}}}", 0, "value of 'format' must be a string, found an object" },
        { "metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" twice" },
        { "metadata key twice", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "has key 'k' twice" },
        { "lone surrogate escape", "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "invalid JSON string" },
    };

    [Theory]
    [MemberData(nameof(MalformedHeaders))]
    public void Malformed_header_fails_with_a_message_naming_file_and_fault(string name, string header, long dataLength, string fragment)
    {
        using var dir = new TempDir();
        var path = dir.File(name.Replace(' ', '_') + ".safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build(header, dataLength));
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void File_shorter_than_the_length_prefix_is_rejected()
    {
        using var dir = new TempDir();
        var path = dir.File("short.safetensors");
        File.WriteAllBytes(path, [8, 0, 0, 0, 0]);
        Assert.Contains("shorter than the 8-byte", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
        File.WriteAllBytes(path, []);
        Assert.Contains("file is 0 bytes", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void Header_length_beyond_the_file_or_over_100_MB_is_rejected()
    {
        using var dir = new TempDir();
        var path = dir.File("len.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build("{}", 0, declaredLength: 9));
        Assert.Contains("says 9 bytes but the file has only 8", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
        File.WriteAllBytes(path, RawSafetensors.Build("{}", 0, declaredLength: 100_000_001));
        Assert.Contains("over the 100,000,000-byte limit", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
        File.WriteAllBytes(path, RawSafetensors.Build("{}", 0, declaredLength: ulong.MaxValue));
        Assert.Contains("limit", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void Non_utf8_header_is_rejected()
    {
        using var dir = new TempDir();
        var path = dir.File("latin1.safetensors");
        var header = Encoding.Latin1.GetBytes("{\"Zürich\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        File.WriteAllBytes(path, RawSafetensors.Build(header, 0));
        Assert.Contains("not valid UTF-8", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void Missing_file_is_a_safetensors_exception_naming_it()
    {
        using var dir = new TempDir();
        var path = dir.File("absent.safetensors");
        Assert.Contains(path, Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void Header_in_any_order_with_unknown_fields_null_metadata_and_zero_size_tensors_is_accepted_like_the_crate()
    {
        // The crate sorts by data_offsets before checking coverage, ignores unknown TensorInfo fields, treats a null
        // __metadata__ as none, and lets empty tensors share an offset.
        using var dir = new TempDir();
        var path = dir.File("order.safetensors");
        var header = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6],\"extra\":{\"x\":[1]}}," +
                     "\"__metadata__\":null," +
                     "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]}," +
                     "\"a\":{\"shape\":[2,2],\"data_offsets\":[0,4],\"dtype\":\"U8\"}}\n\t ";
        File.WriteAllBytes(path, RawSafetensors.Build(header, 6));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(new[] { "b", "e", "a" }, file.Entries.Select(e => e.Name));
        Assert.Empty(file.Metadata);
        Assert.Equal(new byte[] { 0, 1, 2, 3 }, file.Read("a").data<byte>().ToArray());
        Assert.Equal(new byte[] { 4, 5 }, file.ReadRaw("b"));
        using var empty = file.Read("e");
        Assert.Equal(new long[] { 0, 3 }, empty.shape);
    }

    [Fact]
    public void Dtypes_torchsharp_cannot_hold_open_and_read_raw_but_read_fails_naming_the_tensor()
    {
        using var dir = new TempDir();
        var path = dir.File("u32.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build("{\"w\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[0,8]},\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[8,9]}}", 9));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(SafetensorsDType.U32, file["w"].DType);
        Assert.Equal(new byte[] { 0, 1, 2, 3, 4, 5, 6, 7 }, file.ReadRaw("w"));
        var e = Assert.Throws<SafetensorsException>(() => file.Read("w"));
        Assert.Contains(path, e.Message);
        Assert.Contains("'w' has dtype U32", e.Message);
        Assert.Contains("'f8' has dtype F8_E4M3", Assert.Throws<SafetensorsException>(() => file.Read("f8")).Message);
    }

    [Fact]
    public void Zero_element_tensor_with_a_huge_other_dimension_reads_as_empty()
    {
        using var dir = new TempDir();
        var path = dir.File("zero.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,4611686018427387904],\"data_offsets\":[0,0]}}", 0));
        using var file = SafetensorsFile.Open(path);
        var e = Record.Exception(() => file.Read("z").Dispose());
        Assert.True(e is null or SafetensorsException, e?.ToString());
    }

    [Fact]
    public void Every_dtype_name_of_the_rust_enum_parses_and_has_its_item_size()
    {
        var sizes = new Dictionary<string, int>
        {
            ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1, ["I16"] = 2, ["U16"] = 2, ["F16"] = 2,
            ["BF16"] = 2, ["I32"] = 4, ["U32"] = 4, ["F32"] = 4, ["F64"] = 8, ["I64"] = 8, ["U64"] = 8,
        };
        Assert.Equal(sizes.Keys, Enum.GetNames<SafetensorsDType>());
        foreach (var (name, size) in sizes)
        {
            Assert.True(SafetensorsDTypes.TryParse(name, out var dtype));
            Assert.Equal(size, dtype.ItemSize());
            if (dtype.ToScalarType() is { } st)
            {
                Assert.Equal(dtype, SafetensorsDTypes.FromScalarType(st));
                using var t = torch.zeros(1, dtype: st);
                Assert.Equal(size, (int)t.ElementSize);
            }
        }
        Assert.False(SafetensorsDTypes.TryParse("11", out _));
        Assert.False(SafetensorsDTypes.TryParse("F32 ", out _));
    }
}
