namespace PeftSharp.Data;

/// <summary>
/// A data file that cannot be read as a dataset: unreadable, of an unknown format, or with a bad row. The message
/// starts with <c>file:line:</c> (1-based) when a row is at fault.
/// </summary>
public sealed class DataFileException : PeftException
{
    public DataFileException(string path, int? line, string message, Exception? inner = null)
        : base(line is int l ? $"{path}:{l}: {message}" : $"{path}: {message}", inner!)
    {
        FilePath = path;
        Line = line;
        Reason = message;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>The 1-based line where the bad row starts, or null when the whole file is at fault.</summary>
    public int? Line { get; }

    /// <summary>The message without the file and line.</summary>
    public string Reason { get; }
}
