using System.CommandLine;
using TorchSharp;

namespace PeftSharp.Cli.Commands;

/// <summary>Options several commands share.</summary>
internal static class CommonOptions
{
    public static Option<string> Device() => new("--device") { Description = "Compute device: cpu, cuda or cuda:N (CUDA needs TorchSharp's CUDA runtime package).", DefaultValueFactory = _ => "cpu" };

    public static torch.Device ParseDevice(string? text)
    {
        try
        {
            return torch.device(string.IsNullOrWhiteSpace(text) ? "cpu" : text);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or NotSupportedException)
        {
            throw new PeftException($"--device '{text}' is not a device TorchSharp can use here ({e.Message.ReplaceLineEndings(" ")})");
        }
    }
}
