namespace PeftSharp.IO.Safetensors;

/// <summary>
/// One tensor of a safetensors header: its name, dtype, shape (row-major, C order) and byte range
/// [<paramref name="Begin"/>, <paramref name="End"/>) relative to the start of the data section (just after the header).
/// </summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Bytes of data, <c>End - Begin</c>.</summary>
    public long ByteLength => End - Begin;

    /// <summary>Number of elements, the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Shape)
            {
                n *= d;
            }
            return n;
        }
    }
}
