namespace PeftSharp.Bench;

/// <summary>What the commands of one run share: the settings, the report being built, and measurements that other
/// commands reuse (the matmul peak is the denominator of every MFU).</summary>
internal sealed class BenchContext(BenchSettings settings, string commandLine)
{
    public BenchSettings Settings { get; } = settings;

    public string CommandLine { get; } = commandLine;

    public Report Report { get; } = new();

    /// <summary>The measured fp32 matmul peak in GFLOP/s, once <c>matmul-peak</c> ran (or another command needed it).</summary>
    public double? MatmulPeakGflops { get; set; }
}
