using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Bench.Commands;

/// <summary>
/// The machine's measured fp32 matmul peak: a loop of square <c>n×n · n×n</c> products (2n³ FLOPs each) at a few sizes;
/// the fastest single product is the peak (other load on the machine only ever slows a product down, so the best is
/// the least disturbed estimate; the median is shown beside it). This, not a datasheet number, is the denominator of MFU.
/// </summary>
internal static class MatmulPeakCommand
{
    private static readonly int[] s_sizes = [1024, 2048, 3072];

    public static void Run(BenchContext context)
    {
        var rows = new List<string[]>();
        var best = 0.0;
        foreach (var n in s_sizes)
        {
            var rates = Measure(n, context.Settings.Warmup, Math.Max(5, context.Settings.Repeats));
            best = Math.Max(best, rates.Max());
            rows.Add([n.ToString(), Fmt.F(2.0 * n * n * n / 1e9, 1), Fmt.F(Stats.Median(rates)), Fmt.F(rates.Max())]);
        }
        context.MatmulPeakGflops = best;
        context.Report.AddSection("fp32 matmul peak",
            $"`torch.mm` of two random n×n float32 matrices in a loop; peak = fastest product = **{Fmt.F(best)} GFLOP/s**.\n\n"
            + Markdown.Table(["n", "GFLOP per product", "GFLOP/s (median)", "GFLOP/s (best)"], rows));
    }

    /// <summary>The peak, measuring it when no earlier command of this run did.</summary>
    public static double PeakOf(BenchContext context)
    {
        if (context.MatmulPeakGflops is null)
        {
            Run(context);
        }
        return context.MatmulPeakGflops!.Value;
    }

    /// <summary>GFLOP/s of each timed product.</summary>
    private static List<double> Measure(int n, int warmup, int repeats)
    {
        using var scope = torch.NewDisposeScope();
        using var generator = new torch.Generator(0);
        var a = torch.randn([n, n], generator: generator);
        var b = torch.randn([n, n], generator: generator);
        var times = Stats.TimeMs(warmup, repeats, () =>
        {
            using var product = a.mm(b);
        });
        return [.. times.Select(ms => 2.0 * n * n * n / (ms / 1e3) / 1e9)];
    }
}
