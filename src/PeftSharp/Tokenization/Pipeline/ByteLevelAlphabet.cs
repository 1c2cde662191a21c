using System.Text;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>
/// GPT-2's reversible byte-to-character map (<c>bytes_to_unicode</c> in OpenAI's encoder.py): printable Latin-1
/// bytes map to themselves, the other 68 bytes to U+0100 onwards, so every byte string is a printable word.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] s_byteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> s_charToByte =
        Enumerable.Range(0, 256).ToDictionary(b => s_byteToChar[b], b => (byte)b);

    public static char CharOf(byte b) => s_byteToChar[b];

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, each written as its alphabet character.</summary>
    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            chars[i] = s_byteToChar[bytes[i]];
        }
        return new string(chars);
    }

    /// <summary>
    /// Appends the bytes a token stands for. A token with a character outside the alphabet (an added token such as
    /// "&lt;|im_start|&gt;" is inside it; a non-ASCII one may not be) contributes its own UTF-8 bytes, as tokenizers does.
    /// </summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        int mark = output.Count;
        foreach (char c in token)
        {
            if (!s_charToByte.TryGetValue(c, out byte b))
            {
                output.RemoveRange(mark, output.Count - mark);
                output.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
            output.Add(b);
        }
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }
        return map;
    }
}
