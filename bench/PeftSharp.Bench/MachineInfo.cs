using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;

namespace PeftSharp.Bench;

/// <summary>The facts a benchmark result needs beside it: commit, CPU, cores, memory, load, runtime versions.</summary>
internal static class MachineInfo
{
    public static string CpuModel()
    {
        var line = ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':') + 1)..].Trim();
    }

    /// <summary>MemTotal of /proc/meminfo in GiB.</summary>
    public static double MemoryGiB()
    {
        var line = ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return line is null ? double.NaN : ProcStatus.ParseKb(line) / (1024.0 * 1024 * 1024);
    }

    /// <summary>The 1-, 5- and 15-minute load averages: other processes on the machine make timings noisy.</summary>
    public static string LoadAverage()
    {
        var text = ReadLines("/proc/loadavg").FirstOrDefault();
        return text is null ? "n/a" : string.Join(" ", text.Split(' ').Take(3));
    }

    /// <summary><c>git rev-parse --short HEAD</c>, with <c>+dirty</c> when tracked files differ from it.</summary>
    public static string Commit()
    {
        var head = Git("rev-parse --short HEAD");
        if (head is null)
        {
            return "unknown (not run from a git clone)";
        }
        var dirty = Git("status --porcelain --untracked-files=no");
        return string.IsNullOrWhiteSpace(dirty) ? head : head + "+dirty";
    }

    public static string Describe() =>
        $"{CpuModel()}; nproc {Environment.ProcessorCount}; {MemoryGiB():F1} GiB RAM; torch threads {torch.get_num_threads()}; "
        + $"load average at the end {LoadAverage()}; .NET {Environment.Version}; TorchSharp {typeof(torch).Assembly.GetName().Version}";

    private static string? Git(string arguments)
    {
        try
        {
            var info = new ProcessStartInfo("git", arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(info);
            if (p is null)
            {
                return null;
            }
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static IEnumerable<string> ReadLines(string path) => File.Exists(path) ? File.ReadLines(path) : [];
}
