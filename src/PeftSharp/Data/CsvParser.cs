using System.Text;

namespace PeftSharp.Data;

/// <summary>One record of a CSV/TSV file: its fields, or why it could not be read, and the line it starts on.</summary>
internal readonly record struct CsvRecord(int Line, List<string> Fields, string? Error);

/// <summary>
/// An RFC 4180 record reader over a text stream, for any one-character delimiter (',' for CSV, '\t' for TSV).
/// Records end at CRLF, LF or CR. A field that starts with a double quote is quoted: it runs to the next lone quote,
/// may hold delimiters and line breaks, and writes a quote as two quotes; after its closing quote only the delimiter
/// or the end of the record may follow. A quote inside an unquoted field is kept as a character (as Python's csv
/// does). Empty lines are skipped. Line numbers are 1-based and count the line breaks inside quoted fields.
/// </summary>
internal sealed class CsvParser(TextReader reader, char delimiter)
{
    private readonly StringBuilder _field = new();
    private int _line = 1;

    /// <summary>The next record, or null at the end of the input.</summary>
    public CsvRecord? Next()
    {
        // Skip empty lines before the record.
        while (Peek() is '\r' or '\n')
        {
            ReadLineBreak();
        }
        if (Peek() == -1)
        {
            return null;
        }
        int start = _line;
        var fields = new List<string>();
        while (true)
        {
            string? error = Peek() == '"' ? ReadQuoted(fields.Count + 1) : ReadUnquoted();
            fields.Add(_field.ToString());
            if (error != null)
            {
                SkipRestOfRecord();
                return new CsvRecord(start, fields, error);
            }
            int c = Peek();
            if (c == delimiter)
            {
                reader.Read();
                continue;
            }
            if (c is '\r' or '\n')
            {
                ReadLineBreak();
            }
            return new CsvRecord(start, fields, null);
        }
    }

    private string? ReadUnquoted()
    {
        _field.Clear();
        for (int c = Peek(); c != -1 && c != delimiter && c != '\r' && c != '\n'; c = Peek())
        {
            _field.Append((char)reader.Read());
        }
        return null;
    }

    private string? ReadQuoted(int fieldNumber)
    {
        _field.Clear();
        reader.Read(); // opening quote
        int opened = _line;
        while (true)
        {
            int c = reader.Read();
            if (c == -1)
            {
                return $"quoted field {fieldNumber}, opened on line {opened}, is not closed before the end of the file";
            }
            if (c == '"')
            {
                if (Peek() == '"')
                {
                    reader.Read();
                    _field.Append('"');
                    continue;
                }
                int next = Peek();
                if (next == -1 || next == delimiter || next is '\r' or '\n')
                {
                    return null;
                }
                return $"field {fieldNumber}: unexpected '{(char)next}' after the closing quote (write a quote inside a quoted field as \"\")";
            }
            if (c == '\r' || c == '\n')
            {
                // Keep the break as written (CRLF stays CRLF) and count it once.
                _field.Append((char)c);
                if (c == '\r' && Peek() == '\n')
                {
                    _field.Append((char)reader.Read());
                }
                _line++;
                continue;
            }
            _field.Append((char)c);
        }
    }

    /// <summary>After a bad field: drop the rest of its physical line so the next record starts on a fresh line.</summary>
    private void SkipRestOfRecord()
    {
        for (int c = Peek(); c != -1 && c != '\r' && c != '\n'; c = Peek())
        {
            reader.Read();
        }
        if (Peek() != -1)
        {
            ReadLineBreak();
        }
    }

    private void ReadLineBreak()
    {
        if (reader.Read() == '\r' && Peek() == '\n')
        {
            reader.Read();
        }
        _line++;
    }

    private int Peek() => reader.Peek();
}
