using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.IO;

public class SafetensorsWriterTests
{
    [Fact]
    public void Open_read_save_reproduces_every_fixture_file_byte_for_byte()
    {
        using var dir = new TempDir();
        var checkedFiles = 0;
        foreach (var path in Directory.EnumerateFiles(SharedPaths.Fixtures, "*.safetensors", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            using var scope = torch.NewDisposeScope();
            var copy = dir.File("copy.safetensors");
            using (var file = SafetensorsFile.Open(path))
            {
                var tensors = file.Entries.Select(e => new KeyValuePair<string, torch.Tensor>(e.Name, file.Read(e.Name))).ToList();
                SafetensorsWriter.Save(copy, tensors, file.Metadata.Count > 0 ? file.Metadata : null);
            }
            Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(File.ReadAllBytes(copy)), $"round trip differs: {path}");
            checkedFiles++;
        }
        Assert.Equal(98, checkedFiles);
    }

    // The next three byte strings are the expected outputs of the Rust crate's own unit tests
    // (safetensors/src/tensor.rs: test_serialization, test_serialization_forced_alignement, test_empty).
    [Fact]
    public void Matches_rust_crate_bytes_for_one_f32_tensor()
    {
        using var dir = new TempDir();
        using var t = torch.tensor(new float[] { 0, 1, 2, 3, 4, 5 }).reshape(1, 2, 3);
        SafetensorsWriter.Save(dir.File("a.safetensors"), [new("attn.0", t)]);
        byte[] expected =
        [
            64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
            116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
            58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
            101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
            0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
        ];
        Assert.Equal(expected, File.ReadAllBytes(dir.File("a.safetensors")));
    }

    [Fact]
    public void Matches_rust_crate_bytes_when_header_needs_space_padding()
    {
        using var dir = new TempDir();
        using var t = torch.tensor(new float[] { 0, 1, 2, 3, 4, 5 }).reshape(1, 1, 2, 3);
        SafetensorsWriter.Save(dir.File("a.safetensors"), [new("attn0", t)]);
        byte[] expected =
        [
            72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
            121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
            91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
            115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
            32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
            160, 64,
        ];
        Assert.Equal(expected, File.ReadAllBytes(dir.File("a.safetensors")));
    }

    [Fact]
    public void Matches_rust_crate_bytes_for_empty_files_with_and_without_metadata()
    {
        using var dir = new TempDir();
        SafetensorsWriter.Save(dir.File("empty.safetensors"), []);
        Assert.Equal(new byte[] { 8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32 }, File.ReadAllBytes(dir.File("empty.safetensors")));

        SafetensorsWriter.Save(dir.File("meta.safetensors"), [], new Dictionary<string, string> { ["framework"] = "pt" });
        byte[] expected =
        [
            40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
            95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
            116, 34, 125, 125, 32, 32, 32, 32, 32,
        ];
        Assert.Equal(expected, File.ReadAllBytes(dir.File("meta.safetensors")));
        using var file = SafetensorsFile.Open(dir.File("meta.safetensors"));
        Assert.Empty(file.Entries);
        Assert.Equal("pt", file.Metadata["framework"]);
    }

    [Fact]
    public void Mixed_dtypes_round_trip_bit_exactly_in_dtype_descending_then_name_order()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>
        {
            ["z.f32"] = torch.tensor(new float[] { 1.5f, -2.25f, float.NaN, float.NegativeInfinity }),
            ["a.f32"] = torch.tensor(new float[] { 3.0f }),
            ["half"] = torch.tensor(new float[] { 1, -0.5f, 65504 }).to_type(torch.ScalarType.Float16),
            ["brain"] = torch.tensor(new float[] { 1, -0.5f, 3.0e38f }).to_type(torch.ScalarType.BFloat16),
            ["long"] = torch.tensor(new long[] { long.MinValue, -1, long.MaxValue }),
            ["flag"] = torch.tensor(new bool[] { true, false, true }),
            ["byte"] = torch.tensor(new byte[] { 0, 255, 7 }),
            ["sbyte"] = torch.tensor(new sbyte[] { -128, 127, -1 }),
            ["int"] = torch.tensor(new int[] { int.MinValue, 0, int.MaxValue }).reshape(3, 1),
            ["short"] = torch.tensor(new short[] { short.MinValue, 2 }),
            ["double"] = torch.tensor(new double[] { Math.PI, -0.0 }),
            ["scalar"] = torch.tensor(42.0f),
            ["empty"] = torch.zeros(0, 4),
        };
        var path = dir.File("mixed.safetensors");
        SafetensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });

        var raw = File.ReadAllBytes(path);
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.Equal(0, n % 8);
        using var header = JsonDocument.Parse(raw.AsMemory(8, n));
        var keys = header.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        string[] expectedOrder =
        [
            "__metadata__", "long", "double", "a.f32", "empty", "scalar", "z.f32", "int", "brain", "half", "short", "sbyte", "byte", "flag",
        ];
        Assert.Equal(expectedOrder, keys);
        var dtypes = header.RootElement.EnumerateObject().Skip(1).Select(p => p.Value.GetProperty("dtype").GetString()).ToList();
        Assert.Equal(new[] { "I64", "F64", "F32", "F32", "F32", "F32", "I32", "BF16", "F16", "I16", "I8", "U8", "BOOL" }, dtypes);

        // Little-endian payloads written out by hand.
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0xB8, 0xFF, 0x7B }, Payload(raw, n, header, "half"));
        Assert.Equal(new byte[] { 0x80, 0x3F, 0x00, 0xBF, 0x62, 0x7F }, Payload(raw, n, header, "brain"));
        Assert.Equal(new byte[] { 1, 0, 1 }, Payload(raw, n, header, "flag"));
        Assert.Equal(new byte[] { 0x80, 0x7F, 0xFF }, Payload(raw, n, header, "sbyte"));

        using var file = SafetensorsFile.Open(path);
        foreach (var (name, original) in tensors)
        {
            using var back = file.Read(name);
            Assert.Equal(original.dtype, back.dtype);
            Assert.Equal(original.shape, back.shape);
            Assert.True(original.bytes.SequenceEqual(back.bytes), name);
        }
        Assert.Equal(SafetensorsDType.BF16, file["brain"].DType);
        Assert.Equal(Array.Empty<long>(), file["scalar"].Shape);
    }

    [Fact]
    public void Reading_f16_and_bf16_as_f32_gives_the_exact_widened_values()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var path = dir.File("h.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, torch.Tensor>
        {
            ["h"] = torch.tensor(new float[] { 1, -0.5f, 65504, 0.0009765625f }).to_type(torch.ScalarType.Float16),
            ["b"] = torch.tensor(new float[] { 1, -0.5f, 1.5f }).to_type(torch.ScalarType.BFloat16),
        });
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(new float[] { 1, -0.5f, 65504, 0.0009765625f }, file.Read("h", torch.ScalarType.Float32).data<float>().ToArray());
        Assert.Equal(new float[] { 1, -0.5f, 1.5f }, file.Read("b", torch.ScalarType.Float32).data<float>().ToArray());
    }

    [Fact]
    public void Non_contiguous_tensor_is_written_in_logical_row_major_order()
    {
        using var dir = new TempDir();
        using var m = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3);
        using var t = m.t();
        Assert.False(t.is_contiguous());
        SafetensorsWriter.Save(dir.File("t.safetensors"), [new("t", t)]);
        using var file = SafetensorsFile.Open(dir.File("t.safetensors"));
        Assert.Equal(new long[] { 3, 2 }, file["t"].Shape);
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, file.Read("t").data<float>().ToArray());
    }

    [Fact]
    public void Strings_are_escaped_as_serde_json_does()
    {
        using var dir = new TempDir();
        using var t = torch.zeros(1);
        var metadata = new Dictionary<string, string> { ["q\"b\\"] = "line\nnul\u0001tab\tZürich/" };
        SafetensorsWriter.Save(dir.File("s.safetensors"), [new("é.ü", t)], metadata);
        var raw = File.ReadAllBytes(dir.File("s.safetensors"));
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        var json = Encoding.UTF8.GetString(raw, 8, n).TrimEnd(' ');
        Assert.Equal("{\"__metadata__\":{\"q\\\"b\\\\\":\"line\\nnul\\u0001tab\\tZürich/\"},\"é.ü\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", json);
        using var file = SafetensorsFile.Open(dir.File("s.safetensors"));
        Assert.Equal(metadata, file.Metadata);
        Assert.True(file.Contains("é.ü"));
    }

    [Fact]
    public void Names_sort_by_utf8_bytes_like_rust_strings()
    {
        // U+FF01 is 0xEF.. in UTF-8 and sorts before U+1F600 (0xF0..); in UTF-16 the surrogate 0xD83D sorts first.
        using var dir = new TempDir();
        using var a = torch.zeros(1);
        using var b = torch.ones(1);
        SafetensorsWriter.Save(dir.File("u.safetensors"), [new("\U0001F600", a), new("\uFF01", b)]);
        using var file = SafetensorsFile.Open(dir.File("u.safetensors"));
        Assert.Equal(new[] { "\uFF01", "\U0001F600" }, file.Entries.Select(e => e.Name));
    }

    [Fact]
    public void Save_rejects_duplicate_names_metadata_name_and_unstorable_dtypes()
    {
        using var dir = new TempDir();
        using var t = torch.zeros(2);
        using var c = torch.zeros(2, dtype: torch.ScalarType.ComplexFloat32);
        var path = dir.File("bad.safetensors");
        Assert.Contains("'x' given twice", Assert.Throws<SafetensorsException>(() => SafetensorsWriter.Save(path, [new("x", t), new("x", t)])).Message);
        Assert.Contains("__metadata__", Assert.Throws<SafetensorsException>(() => SafetensorsWriter.Save(path, [new("__metadata__", t)])).Message);
        Assert.Contains("'c'", Assert.Throws<SafetensorsException>(() => SafetensorsWriter.Save(path, [new("c", c)])).Message);
        Assert.False(File.Exists(path));
    }

    private static byte[] Payload(byte[] raw, int n, JsonDocument header, string name)
    {
        var offsets = header.RootElement.GetProperty(name).GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        return raw[(8 + n + offsets[0])..(8 + n + offsets[1])];
    }
}
