namespace PeftSharp.Bench;

/// <summary>
/// A subcommand of the harness. <paramref name="Run"/> measures and adds its sections to the context's report;
/// <paramref name="Child"/>, when present, is what the command's child processes run (re-invoked as
/// <c>__child &lt;name&gt; …</c>) and returns a JSON-serialisable result. A <paramref name="Raw"/> command instead
/// gets the arguments after its name, prints its own output and returns the exit code (it cannot be part of <c>all</c>).
/// </summary>
internal sealed record BenchCommand(
    string Name,
    string Description,
    Action<BenchContext>? Run = null,
    Func<BenchArgs, object>? Child = null,
    bool InAll = false,
    Func<string[], int>? Raw = null);
