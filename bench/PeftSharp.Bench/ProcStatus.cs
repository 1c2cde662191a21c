using System.Globalization;
using TorchSharp;

namespace PeftSharp.Bench;

/// <summary>
/// This process's resident memory from <c>/proc/self/status</c>: <c>VmRSS</c> (now) and <c>VmHWM</c> (the peak since the
/// process started). A peak is per process, hence one child process per measured configuration.
/// </summary>
internal readonly record struct ProcStatus(long RssBytes, long PeakBytes)
{
    public static ProcStatus Read()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path))
        {
            throw new BenchException($"{path} not found: peak memory needs Linux");
        }
        long rss = 0, hwm = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = ParseKb(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                hwm = ParseKb(line);
            }
        }
        return new ProcStatus(rss, hwm);
    }

    /// <summary>The resident size once libtorch is loaded and has run an op: what a child holds before its model exists.</summary>
    public static ProcStatus BaselineAfterTorchInit()
    {
        using (var scope = torch.NewDisposeScope())
        {
            _ = torch.ones(8, 8).matmul(torch.ones(8, 8)).sum().item<float>();
        }
        return Read();
    }

    /// <summary>Bytes of a <c>Key:   1234 kB</c> line.</summary>
    public static long ParseKb(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
    }
}
