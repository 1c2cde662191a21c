using System.Buffers.Binary;
using System.Text.Json;
using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.IO;

public class SafetensorsReaderTests
{
    public static IEnumerable<object[]> FixtureFiles() =>
        Directory.EnumerateFiles(SharedPaths.Fixtures, "*.safetensors", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(p => new object[] { Path.GetRelativePath(SharedPaths.Fixtures, p) });

    [Fact]
    public void Fixture_tree_has_the_98_files_the_readme_lists()
    {
        Assert.Equal(98, FixtureFiles().Count());
    }

    [Fact]
    public void Every_fixture_tensor_reads_as_the_bytes_its_independently_parsed_header_points_at()
    {
        var files = 0;
        foreach (var relative in FixtureFiles().Select(o => (string)o[0]))
        {
            var path = SharedPaths.Fixture(relative);
            var raw = File.ReadAllBytes(path);
            var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(raw);
            using var header = JsonDocument.Parse(raw.AsMemory(8, n));
            using var file = SafetensorsFile.Open(path);
            var expectedNames = header.RootElement.EnumerateObject().Select(p => p.Name).Where(k => k != "__metadata__").ToList();
            Assert.Equal(expectedNames, file.Entries.Select(e => e.Name).ToList());
            foreach (var property in header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__"))
            {
                var offsets = property.Value.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt32()).ToArray();
                var shape = property.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                Assert.Equal("F32", property.Value.GetProperty("dtype").GetString());
                using var tensor = file.Read(property.Name);
                Assert.Equal(torch.ScalarType.Float32, tensor.dtype);
                Assert.Equal(shape, tensor.shape);
                Assert.True(raw.AsSpan(8 + n + offsets[0], offsets[1] - offsets[0]).SequenceEqual(tensor.bytes), $"{relative}: {property.Name}");
            }
            files++;
        }
        Assert.Equal(98, files);
    }

    [Fact]
    public void Llama_q_proj_values_match_python_struct_unpack()
    {
        // Python: struct.unpack over bases/llama/model.safetensors, data_offsets [254464, 270848].
        using var file = SafetensorsFile.Open(SharedPaths.Fixture("bases", "llama", "model.safetensors"));
        var entry = file["model.layers.0.self_attn.q_proj.weight"];
        Assert.Equal((254464L, 270848L), (entry.Begin, entry.End));
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, file.Metadata);
        using var w = file.Read("model.layers.0.self_attn.q_proj.weight");
        var values = w.data<float>().ToArray();
        Assert.Equal(0.1929217129945755f, values[0]);
        Assert.Equal(0.13278017938137054f, values[1]);
        Assert.Equal(-0.11299973726272583f, values[2]);
        Assert.Equal(0.023264562711119652f, values[^1]);
        Assert.Equal(-6.000962032218013, values.Sum(v => (double)v), 1e-9);
    }

    [Fact]
    public void Read_converts_to_the_requested_dtype()
    {
        using var file = SafetensorsFile.Open(SharedPaths.Fixture("bases", "llama", "model.safetensors"));
        using var f32 = file.Read("model.layers.0.self_attn.q_proj.weight");
        using var f64 = file.Read("model.layers.0.self_attn.q_proj.weight", torch.ScalarType.Float64);
        using var bf16 = file.Read("model.layers.0.self_attn.q_proj.weight", torch.ScalarType.BFloat16, torch.CPU);
        Assert.Equal(torch.ScalarType.Float64, f64.dtype);
        Assert.Equal(torch.ScalarType.BFloat16, bf16.dtype);
        Assert.Equal((double)f32[0, 0].item<float>(), f64[0, 0].item<double>());
        // bf16 keeps 8 significant bits: relative error below 2^-8.
        Assert.True(Math.Abs(bf16.to_type(torch.ScalarType.Float32)[0, 0].item<float>() - 0.1929217129945755f) < 0.1929217129945755f / 256);
    }

    [Fact]
    public void Missing_tensor_error_names_file_and_tensor()
    {
        var path = SharedPaths.Fixture("bases", "llama", "model.safetensors");
        using var file = SafetensorsFile.Open(path);
        Assert.False(file.Contains("model.nope"));
        var e = Assert.Throws<SafetensorsException>(() => file.Read("model.nope"));
        Assert.Contains(path, e.Message);
        Assert.Contains("'model.nope'", e.Message);
    }
}
