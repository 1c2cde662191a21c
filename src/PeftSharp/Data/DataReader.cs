using System.Text;
using System.Text.Json;

namespace PeftSharp.Data;

/// <summary>
/// Reads a training or evaluation file into a <see cref="Dataset"/>: JSON Lines (<c>.jsonl</c>, <c>.json</c>: one
/// JSON object per line, blank lines ignored) or CSV/TSV (<c>.csv</c>, <c>.tsv</c>: a header row, then RFC 4180
/// records). The row shape (<see cref="DataFormat"/>) is detected from the first readable row and every row must fit it.
/// </summary>
public static class DataReader
{
    private readonly record struct RawRow(int Line, IRow? Row, string? Error);

    /// <summary>Reads every row of <paramref name="path"/>.</summary>
    /// <exception cref="DataFileException">
    /// The file is missing, empty, not UTF-8 or of an unknown extension; no row fits a format; or a row is bad (invalid
    /// JSON, a missing or mistyped field, a wrong field count, a label outside <see cref="DataReadOptions.LabelNames"/>)
    /// and <see cref="DataReadOptions.SkipBadRows"/> is off. The message starts with <c>file:line:</c>.
    /// </exception>
    public static Dataset Read(string path, DataReadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new DataReadOptions();
        if (!File.Exists(path))
        {
            throw new DataFileException(path, null, "file not found");
        }
        var rows = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".jsonl" or ".json" or ".ndjson" => JsonLines(path),
            ".csv" => Delimited(path, ','),
            ".tsv" or ".tab" => Delimited(path, '\t'),
            var ext => throw new DataFileException(path, null, $"unknown data file extension '{ext}' (expected .jsonl, .json, .csv or .tsv)"),
        };

        var columns = options.Columns;
        var format = options.Format;
        var labels = new LabelCollector(options.LabelNames, columns.Label);
        var examples = new List<Example>();
        var reasons = new List<string>();
        int skipped = 0, lastLine = 0;
        using var enumerator = rows.GetEnumerator();
        while (MoveNext(enumerator, path, lastLine))
        {
            var raw = enumerator.Current;
            lastLine = raw.Line;
            try
            {
                if (raw.Error != null)
                {
                    throw new BadRowException(raw.Error);
                }
                format ??= RowShapes.Detect(raw.Row!, columns)
                    ?? throw new BadRowException($"cannot tell the format from the fields [{string.Join(", ", raw.Row!.Fields)}]; " +
                        $"expected {RowShapes.Expected(columns)} (set DataReadOptions.Columns to rename them)");
                examples.Add(RowShapes.Build(raw.Row!, format.Value, columns, labels, raw.Line));
            }
            catch (BadRowException e)
            {
                if (!options.SkipBadRows)
                {
                    throw new DataFileException(path, raw.Line, e.Message);
                }
                skipped++;
                if (reasons.Count < Dataset.MaxReasons)
                {
                    reasons.Add($"{path}:{raw.Line}: {e.Message}");
                }
            }
        }

        if (format == null || examples.Count == 0)
        {
            var why = skipped > 0 ? $"all {skipped} rows are bad; the first: {reasons[0]}" : "no rows";
            throw new DataFileException(path, null, why);
        }
        ClassLabels? classes = null;
        if (format is DataFormat.Classification or DataFormat.SentencePair)
        {
            (classes, examples) = labels.Resolve(examples);
        }
        return new Dataset(path, format.Value, examples, classes, skipped, reasons);
    }

    private static bool MoveNext(IEnumerator<RawRow> rows, string path, int lastLine)
    {
        try
        {
            return rows.MoveNext();
        }
        catch (DecoderFallbackException e)
        {
            throw new DataFileException(path, null, $"not valid UTF-8 (after line {lastLine})", e);
        }
        catch (IOException e)
        {
            throw new DataFileException(path, null, $"cannot read: {e.Message}", e);
        }
    }

    private static StreamReader OpenText(string path) =>
        new(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: true);

    private static IEnumerable<RawRow> JsonLines(string path)
    {
        using var reader = OpenText(path);
        int line = 0;
        for (string? text = reader.ReadLine(); text != null; text = reader.ReadLine())
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }
            var (doc, error) = ParseJson(text);
            if (doc == null)
            {
                yield return new RawRow(line, null, error);
                continue;
            }
            using (doc)
            {
                yield return doc.RootElement.ValueKind == JsonValueKind.Object
                    ? new RawRow(line, new JsonRow(doc.RootElement), null)
                    : new RawRow(line, null, $"a row must be a JSON object, found {doc.RootElement.ValueKind}"
                        + (line == 1 && doc.RootElement.ValueKind == JsonValueKind.Array ? " (a JSON array file is not JSON Lines: write one object per line)" : ""));
            }
        }
    }

    private static (JsonDocument? Doc, string? Error) ParseJson(string text)
    {
        try
        {
            return (JsonDocument.Parse(text), null);
        }
        catch (JsonException e)
        {
            var at = e.BytePositionInLine is long b ? $" (byte {b + 1})" : "";
            var message = e.Message;
            int cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
            return (null, $"invalid JSON{at}: {(cut > 0 ? message[..cut] : message)}");
        }
    }

    private static IEnumerable<RawRow> Delimited(string path, char delimiter)
    {
        using var reader = OpenText(path);
        var parser = new CsvParser(reader, delimiter);
        var first = parser.Next();
        if (first is not { } header)
        {
            yield break;
        }
        if (header.Error != null)
        {
            throw new DataFileException(path, header.Line, $"header: {header.Error}");
        }
        var columns = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < header.Fields.Count; i++)
        {
            if (!columns.TryAdd(header.Fields[i], i))
            {
                throw new DataFileException(path, header.Line, $"header: column '{header.Fields[i]}' appears twice");
            }
        }
        for (var next = parser.Next(); next is { } record; next = parser.Next())
        {
            if (record.Error != null)
            {
                yield return new RawRow(record.Line, null, record.Error);
            }
            else if (record.Fields.Count != header.Fields.Count)
            {
                yield return new RawRow(record.Line, null, $"has {record.Fields.Count} fields, the header has {header.Fields.Count}");
            }
            else
            {
                yield return new RawRow(record.Line, new CsvRow(columns, record.Fields), null);
            }
        }
    }
}
