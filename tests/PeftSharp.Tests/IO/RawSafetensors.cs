using System.Buffers.Binary;
using System.Text;

namespace PeftSharp.Tests.IO;

/// <summary>Builds safetensors bytes by hand (independently of SafetensorsWriter) for tests of malformed files.</summary>
internal static class RawSafetensors
{
    /// <summary>8-byte LE length + header (space-padded to 8 when <paramref name="pad"/>) + <paramref name="dataLength"/> bytes 0, 1, 2, ...</summary>
    public static byte[] Build(string headerJson, long dataLength, bool pad = true, ulong? declaredLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        return Build(header, dataLength, pad, declaredLength);
    }

    public static byte[] Build(byte[] header, long dataLength, bool pad = true, ulong? declaredLength = null)
    {
        var padded = pad ? (header.Length + 7) / 8 * 8 : header.Length;
        var bytes = new byte[8 + padded + dataLength];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        for (var i = 0; i < dataLength; i++)
        {
            bytes[8 + padded + i] = (byte)i;
        }
        return bytes;
    }
}
