using System.Diagnostics;
using System.Reflection;
using System.Text.Json;

namespace PeftSharp.Bench;

/// <summary>
/// Runs one measurement in a fresh copy of this harness (<c>__child &lt;command&gt; …</c>), so that its peak RSS
/// (<c>VmHWM</c>) belongs to that configuration alone. The child prints its result as one JSON line after
/// <see cref="ResultMarker"/>; its stderr passes through.
/// </summary>
internal static class ChildProcess
{
    public const string ResultMarker = "@@bench-result ";

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static T Run<T>(string command, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var (file, prefix) = SelfInvocation();
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = false,
            UseShellExecute = false,
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }
        foreach (var a in prefix.Concat([BenchCli.ChildVerb, command]).Concat(arguments))
        {
            info.ArgumentList.Add(a);
        }
        using var process = Process.Start(info) ?? throw new BenchException($"could not start {file}");
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var line = stdout.Split('\n').LastOrDefault(l => l.StartsWith(ResultMarker, StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null)
        {
            throw new BenchException(
                $"child '{command} {string.Join(' ', info.ArgumentList.Skip(prefix.Count + 2))}' failed (exit {process.ExitCode}); its output:\n{stdout}");
        }
        return JsonSerializer.Deserialize<T>(line[ResultMarker.Length..], Json)
            ?? throw new BenchException($"child '{command}' returned an empty result");
    }

    /// <summary>How to start this harness again: the apphost itself, or <c>dotnet &lt;dll&gt;</c> when run through the muxer.</summary>
    private static (string File, List<string> Prefix) SelfInvocation()
    {
        var path = Environment.ProcessPath ?? throw new BenchException("cannot find this process's executable to start a child");
        if (Path.GetFileNameWithoutExtension(path).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            var dll = Assembly.GetEntryAssembly()?.Location ?? throw new BenchException("cannot find the harness assembly to start a child");
            return (path, [dll]);
        }
        return (path, []);
    }
}
