namespace PeftSharp.Bench;

/// <summary>
/// A subcommand of the harness. <paramref name="Run"/> measures and adds its sections to the context's report;
/// <paramref name="Child"/>, when present, is what the command's child processes run (re-invoked as
/// <c>__child &lt;name&gt; …</c>) and returns a JSON-serialisable result.
/// </summary>
internal sealed record BenchCommand(string Name, string Description, Action<BenchContext> Run, Func<BenchArgs, object>? Child = null, bool InAll = false);
