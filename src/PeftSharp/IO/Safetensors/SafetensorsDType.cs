using TorchSharp;

namespace PeftSharp.IO.Safetensors;

/// <summary>
/// The element types of the safetensors format, declared in the order of the Rust <c>safetensors</c> crate's
/// <c>Dtype</c> enum (0.4.x). The writer sorts tensors by this order, descending, so the order is part of the format.
/// </summary>
public enum SafetensorsDType
{
    BOOL,
    U8,
    I8,
    F8_E5M2,
    F8_E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

/// <summary>Facts about <see cref="SafetensorsDType"/>: on-disk spelling, element size, TorchSharp equivalent.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Bytes per element: 1 for BOOL/U8/I8/F8_*, 2 for I16/U16/F16/BF16, 4 for I32/U32/F32, 8 for F64/I64/U64.</summary>
    public static int ItemSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E5M2 or SafetensorsDType.F8_E4M3 => 1,
        SafetensorsDType.I16 or SafetensorsDType.U16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.F64 or SafetensorsDType.I64 or SafetensorsDType.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>
    /// The TorchSharp type holding this dtype, or null where TorchSharp 0.107 has none (F8_E5M2, F8_E4M3, U16, U32,
    /// U64): such tensors can be listed and read raw, not as tensors.
    /// </summary>
    public static torch.ScalarType? ToScalarType(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL => torch.ScalarType.Bool,
        SafetensorsDType.U8 => torch.ScalarType.Byte,
        SafetensorsDType.I8 => torch.ScalarType.Int8,
        SafetensorsDType.I16 => torch.ScalarType.Int16,
        SafetensorsDType.F16 => torch.ScalarType.Float16,
        SafetensorsDType.BF16 => torch.ScalarType.BFloat16,
        SafetensorsDType.I32 => torch.ScalarType.Int32,
        SafetensorsDType.F32 => torch.ScalarType.Float32,
        SafetensorsDType.F64 => torch.ScalarType.Float64,
        SafetensorsDType.I64 => torch.ScalarType.Int64,
        _ => null,
    };

    /// <summary>The safetensors dtype storing a TorchSharp type, or null (complex and quantized types have none).</summary>
    public static SafetensorsDType? FromScalarType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Bool => SafetensorsDType.BOOL,
        torch.ScalarType.Byte => SafetensorsDType.U8,
        torch.ScalarType.Int8 => SafetensorsDType.I8,
        torch.ScalarType.Int16 => SafetensorsDType.I16,
        torch.ScalarType.Float16 => SafetensorsDType.F16,
        torch.ScalarType.BFloat16 => SafetensorsDType.BF16,
        torch.ScalarType.Int32 => SafetensorsDType.I32,
        torch.ScalarType.Float32 => SafetensorsDType.F32,
        torch.ScalarType.Float64 => SafetensorsDType.F64,
        torch.ScalarType.Int64 => SafetensorsDType.I64,
        _ => null,
    };

    /// <summary>Parses the header spelling (exact, case-sensitive, as serde does), or returns false.</summary>
    public static bool TryParse(string text, out SafetensorsDType dtype)
    {
        // Enum.TryParse would also accept "11", " F32" or "f32"; the format only has the exact names.
        foreach (var candidate in Enum.GetValues<SafetensorsDType>())
        {
            if (string.Equals(candidate.ToString(), text, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }
        dtype = default;
        return false;
    }
}
