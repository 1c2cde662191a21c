using PeftSharp.IO.Safetensors;
using TorchSharp;
using TorchSharp.Modules;

namespace PeftSharp.Tests.IO;

public class SafetensorsReadIntoTests
{
    private static string WriteOne(TempDir dir, torch.Tensor tensor)
    {
        var path = dir.File("t.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, torch.Tensor> { ["w"] = tensor });
        return path;
    }

    [Fact]
    public void Same_dtype_parameter_receives_exactly_the_stored_values()
    {
        using var dir = new TempDir();
        using var values = torch.arange(0, 12, dtype: torch.ScalarType.Float32).reshape(3, 4) / 7;
        using var file = SafetensorsFile.Open(WriteOne(dir, values));
        using var target = new Parameter(torch.zeros(3, 4));

        file.ReadInto("w", target);

        Assert.True(target.requires_grad);
        Assert.Equal(values.data<float>().ToArray(), target.data<float>().ToArray());
    }

    [Fact]
    public void F16_into_F32_in_chunks_equals_a_whole_read_converted()
    {
        using var dir = new TempDir();
        // 11 elements in chunks of 3 (6 bytes of F16): the last chunk is partial.
        using var values = (torch.arange(0, 11, dtype: torch.ScalarType.Float32) / 3 - 1).to_type(torch.ScalarType.Float16);
        using var file = SafetensorsFile.Open(WriteOne(dir, values));
        using var target = torch.full(11, float.NaN);

        file.ReadInto("w", target, chunkBytes: 6);

        using var expected = file.Read("w", torch.ScalarType.Float32);
        Assert.Equal(expected.data<float>().ToArray(), target.data<float>().ToArray());
    }

    [Fact]
    public void Non_contiguous_target_receives_the_values_in_its_own_layout()
    {
        using var dir = new TempDir();
        using var values = torch.arange(0, 6, dtype: torch.ScalarType.Float32).reshape(2, 3);
        using var file = SafetensorsFile.Open(WriteOne(dir, values));
        using var storage = torch.zeros(3, 2);
        using var target = storage.t();

        file.ReadInto("w", target);

        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, target.contiguous().data<float>().ToArray());
    }

    [Fact]
    public void Target_of_another_shape_is_refused_naming_file_and_tensor()
    {
        using var dir = new TempDir();
        using var values = torch.zeros(2, 3);
        var path = WriteOne(dir, values);
        using var file = SafetensorsFile.Open(path);
        using var target = torch.zeros(3, 2);

        var e = Assert.Throws<SafetensorsException>(() => file.ReadInto("w", target));

        Assert.Contains(path, e.Message);
        Assert.Contains("'w' is [2, 3] but the target is [3, 2]", e.Message);
    }
}
