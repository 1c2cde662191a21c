using System.Diagnostics;

namespace PeftSharp.Bench;

/// <summary>Medians and the warm-up/repeat loop every timing uses.</summary>
internal static class Stats
{
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Runs <paramref name="action"/> <paramref name="warmup"/> times untimed, then <paramref name="repeats"/> times; milliseconds of each timed call.</summary>
    public static List<double> TimeMs(int warmup, int repeats, Action action)
    {
        for (var i = 0; i < warmup; i++)
        {
            action();
        }
        var times = new List<double>(repeats);
        for (var i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        return times;
    }

    public const double MiB = 1024.0 * 1024.0;
}
