namespace PeftSharp.Bench;

/// <summary>What the commands of one run share: the settings, the report being built, and measurements that other
/// commands reuse (the matmul peak is the denominator of every MFU).</summary>
internal sealed class BenchContext(BenchSettings settings, BenchArgs args, string commandLine)
{
    /// <summary>The raw options, for options only one command reads.</summary>
    public BenchArgs Args { get; } = args;

    public BenchSettings Settings { get; } = settings;

    public string CommandLine { get; } = commandLine;

    public Report Report { get; } = new();

    /// <summary>The measured fp32 matmul peak in GFLOP/s, once <c>matmul-peak</c> ran (or another command needed it).</summary>
    public double? MatmulPeakGflops { get; set; }
}
