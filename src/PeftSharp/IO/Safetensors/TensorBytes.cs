using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace PeftSharp.IO.Safetensors;

/// <summary>
/// Moves raw bytes between files and a CPU tensor's native buffer without staging them in managed arrays.
/// TorchSharp's <c>Tensor.bytes</c> is a span over the native buffer but is limited to 2 GiB, so larger tensors go
/// through contiguous 1-D slices of at most <see cref="ChunkBytes"/>.
/// </summary>
internal static class TensorBytes
{
    internal const long ChunkBytes = 1L << 30;

    /// <summary>Fills the contiguous CPU tensor <paramref name="tensor"/> from the file bytes at <paramref name="offset"/>.</summary>
    public static void ReadInto(SafeFileHandle handle, long offset, torch.Tensor tensor, string path)
    {
        ForEachChunk(tensor, (span, start) => SafetensorsHeader.ReadExactly(handle, span, offset + start, path));
    }

    /// <summary>Writes the bytes of the contiguous CPU tensor <paramref name="tensor"/> to <paramref name="stream"/>.</summary>
    public static void WriteFrom(torch.Tensor tensor, Stream stream)
    {
        ForEachChunk(tensor, (span, _) => stream.Write(span));
    }

    private delegate void ChunkAction(Span<byte> span, long byteStart);

    private static void ForEachChunk(torch.Tensor tensor, ChunkAction action)
    {
        var itemSize = tensor.ElementSize;
        var total = tensor.NumberOfElements * itemSize;
        if (total == 0)
        {
            return;
        }
        if (total <= ChunkBytes)
        {
            action(tensor.bytes, 0);
            return;
        }
        using var scope = torch.NewDisposeScope();
        var flat = tensor.view(-1);
        var perChunk = ChunkBytes / itemSize;
        for (long start = 0; start < flat.shape[0]; start += perChunk)
        {
            var part = flat.narrow(0, start, Math.Min(perChunk, flat.shape[0] - start));
            action(part.bytes, start * itemSize);
            part.Dispose();
        }
    }
}
