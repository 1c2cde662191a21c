namespace PeftSharp.Data;

/// <summary>The examples read from one data file (or one part of a split).</summary>
/// <param name="Source">The file read (with " [train]" / " [validation]" after a seeded split).</param>
/// <param name="Format">The row shape, detected or given.</param>
/// <param name="Examples">The rows in file order (or split order).</param>
/// <param name="Labels">The class names for <see cref="DataFormat.Classification"/> and <see cref="DataFormat.SentencePair"/>; null otherwise.</param>
/// <param name="SkippedRows">Bad rows skipped under <see cref="DataReadOptions.SkipBadRows"/> (0 otherwise).</param>
/// <param name="SkippedReasons">"file:line: reason" of the first skipped rows (at most <see cref="MaxReasons"/>).</param>
public sealed record Dataset(
    string Source,
    DataFormat Format,
    IReadOnlyList<Example> Examples,
    ClassLabels? Labels,
    int SkippedRows,
    IReadOnlyList<string> SkippedReasons)
{
    /// <summary>How many skip reasons are kept.</summary>
    public const int MaxReasons = 20;

    /// <summary>Number of examples.</summary>
    public int Count => Examples.Count;
}
