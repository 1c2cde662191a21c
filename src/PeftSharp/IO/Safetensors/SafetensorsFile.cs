using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace PeftSharp.IO.Safetensors;

/// <summary>
/// An open safetensors file (the Hugging Face <c>safetensors</c> format). <see cref="Open"/> reads and validates only
/// the header; each <see cref="Read"/> reads one tensor's bytes at its offset straight into the tensor's native buffer,
/// so a multi-GB checkpoint is never held in managed memory. Safe to read from several threads at once.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly SafetensorsHeader _header;
    private readonly Dictionary<string, SafetensorsEntry> _byName;

    private SafetensorsFile(string path, SafeFileHandle handle, SafetensorsHeader header)
    {
        Path = path;
        _handle = handle;
        _header = header;
        _byName = header.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    /// <summary>Opens <paramref name="path"/> and validates its header; throws <see cref="SafetensorsException"/> naming the file if malformed.</summary>
    public static SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        SafeFileHandle handle;
        try
        {
            // FileShare.Delete lets an atomic save (temp file + rename) replace a file that is still open for reading.
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafetensorsException($"{path}: cannot open: {e.Message}", e);
        }
        try
        {
            return new SafetensorsFile(path, handle, SafetensorsHeader.Read(handle, path));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The path as given to <see cref="Open"/>.</summary>
    public string Path { get; }

    /// <summary>The header's <c>__metadata__</c> string map in file order (PEFT/transformers write <c>{"format": "pt"}</c>); empty if none.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _header.Metadata;

    /// <summary>The tensors in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries => _header.Entries;

    /// <summary>File offset where the data section (tensor offset 0) starts: 8 + header length.</summary>
    public long DataStart => _header.DataStart;

    /// <summary>True if the file holds a tensor named <paramref name="name"/> (exact, case-sensitive).</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>; <see cref="SafetensorsException"/> naming file and tensor if absent.</summary>
    public SafetensorsEntry this[string name] =>
        _byName.TryGetValue(name, out var entry)
            ? entry
            : throw new SafetensorsException($"{Path}: no tensor named '{name}' (the file has {_byName.Count} tensors)");

    /// <summary>
    /// Reads tensor <paramref name="name"/> into a new tensor of its stored dtype, converted to <paramref name="dtype"/>
    /// (e.g. BF16 → Float32) and moved to <paramref name="device"/> when given. The caller owns the result.
    /// </summary>
    public torch.Tensor Read(string name, torch.ScalarType? dtype = null, torch.Device? device = null)
    {
        var entry = this[name];
        var stored = entry.DType.ToScalarType()
            ?? throw new SafetensorsException($"{Path}: tensor '{name}' has dtype {entry.DType}, which TorchSharp cannot hold (supported: BOOL, U8, I8, I16, F16, BF16, I32, F32, F64, I64); use ReadRaw");
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        using var scope = torch.NewDisposeScope();
        // The bytes land in host memory first whatever the target device: the file is read by the CPU.
        var tensor = torch.empty(entry.Shape, stored, torch.CPU);
        TensorBytes.ReadInto(_handle, DataStart + entry.Begin, tensor, Path);
        if (dtype is { } target && target != stored)
        {
            tensor = tensor.to_type(target);
        }
        if (device is not null)
        {
            tensor = tensor.to(device);
        }
        return tensor.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> into the existing <paramref name="target"/> of the same shape (any dtype and
    /// device; values converted as <c>copy_</c> converts them). A contiguous CPU target of the stored dtype is filled
    /// straight from the file; any other target receives the bytes through a stored-dtype buffer of at most 4 MiB at
    /// a time. Either way no second full-size copy of the tensor exists, so loading a model peaks at about the model.
    /// </summary>
    public void ReadInto(string name, torch.Tensor target) => ReadInto(name, target, ConversionChunkBytes);

    internal const long ConversionChunkBytes = 4L << 20;

    internal void ReadInto(string name, torch.Tensor target, long chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(target);
        var entry = this[name];
        var stored = entry.DType.ToScalarType()
            ?? throw new SafetensorsException($"{Path}: tensor '{name}' has dtype {entry.DType}, which TorchSharp cannot hold (supported: BOOL, U8, I8, I16, F16, BF16, I32, F32, F64, I64); use ReadRaw");
        if (!entry.Shape.SequenceEqual(target.shape))
        {
            throw new SafetensorsException(
                $"{Path}: tensor '{name}' is [{string.Join(", ", entry.Shape)}] but the target is [{string.Join(", ", target.shape)}]");
        }
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        if (target.device_type == DeviceType.CPU && target.dtype == stored && target.is_contiguous())
        {
            TensorBytes.ReadInto(_handle, DataStart + entry.Begin, target, Path);
            return;
        }
        if (!target.is_contiguous())
        {
            target.copy_(Read(name));
            return;
        }
        var flat = target.view(-1);
        var itemSize = entry.DType.ItemSize();
        var perChunk = Math.Max(1, chunkBytes / itemSize);
        var total = entry.ElementCount;
        for (long start = 0; start < total; start += perChunk)
        {
            using var chunkScope = torch.NewDisposeScope();
            var count = Math.Min(perChunk, total - start);
            var buffer = torch.empty(count, stored, torch.CPU);
            TensorBytes.ReadInto(_handle, DataStart + entry.Begin + start * itemSize, buffer, Path);
            flat.narrow(0, start, count).copy_(buffer);
        }
    }

    /// <summary>The raw little-endian bytes of tensor <paramref name="name"/> (any dtype; for small tensors: it allocates a managed array).</summary>
    public byte[] ReadRaw(string name)
    {
        var entry = this[name];
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (entry.ByteLength > Array.MaxLength)
        {
            throw new SafetensorsException($"{Path}: tensor '{name}' is {entry.ByteLength} bytes, too large for ReadRaw; use Read");
        }
        var bytes = new byte[entry.ByteLength];
        SafetensorsHeader.ReadExactly(_handle, bytes, DataStart + entry.Begin, Path);
        return bytes;
    }

    public void Dispose() => _handle.Dispose();
}
