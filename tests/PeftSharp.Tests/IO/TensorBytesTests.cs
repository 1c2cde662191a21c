using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.IO;

public class TensorBytesTests
{
    // The >1 GiB chunked path cannot run on a test budget; a tiny chunk size drives the same code.
    [Theory]
    [InlineData(100)]
    [InlineData(3)]
    [InlineData(4096)]
    public void Chunked_read_and_write_move_the_same_bytes_as_one_span(long chunkBytes)
    {
        var path = SharedPaths.Fixture("bases", "llama", "model.safetensors");
        using var file = SafetensorsFile.Open(path);
        var entry = file["model.layers.0.mlp.up_proj.weight"];
        using var whole = file.Read(entry.Name);
        using var chunked = torch.empty(entry.Shape, torch.ScalarType.Float32);
        using (var handle = File.OpenHandle(path))
        {
            TensorBytes.ReadInto(handle, file.DataStart + entry.Begin, chunked, path, chunkBytes);
        }
        Assert.True(whole.bytes.SequenceEqual(chunked.bytes));

        using var stream = new MemoryStream();
        TensorBytes.WriteFrom(whole, stream, chunkBytes);
        Assert.Equal(file.ReadRaw(entry.Name), stream.ToArray());
    }

    [Fact]
    public void Writer_respects_the_storage_offset_of_a_contiguous_view()
    {
        using var dir = new TempDir();
        using var m = torch.arange(12, dtype: torch.ScalarType.Int32).reshape(4, 3);
        using var rows = m.narrow(0, 2, 2);
        Assert.True(rows.is_contiguous());
        SafetensorsWriter.Save(dir.File("v.safetensors"), [new("rows", rows)]);
        using var file = SafetensorsFile.Open(dir.File("v.safetensors"));
        Assert.Equal(new[] { 6, 7, 8, 9, 10, 11 }, file.Read("rows").data<int>().ToArray());
    }

    [Fact]
    public void Hundred_reads_leak_no_tensors()
    {
        using var file = SafetensorsFile.Open(SharedPaths.Fixture("bases", "llama", "model.safetensors"));
        long live2 = 0;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                file.Read("model.norm.weight", torch.ScalarType.Float64, torch.CPU);
                file.Read("lm_head.weight");
            }
            if (step == 2)
            {
                live2 = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live2, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
