using System.Text.Encodings.Web;
using System.Text.Json;

namespace PeftSharp.Cli.Commands;

internal static class CliJson
{
    /// <summary>Indented, with non-ASCII text written as is (names and formulas stay readable).</summary>
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
