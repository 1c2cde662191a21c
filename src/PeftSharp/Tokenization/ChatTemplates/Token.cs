namespace PeftSharp.Tokenization.ChatTemplates;

internal enum TokenKind
{
    Text,
    BlockBegin,
    BlockEnd,
    VariableBegin,
    VariableEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

/// <summary>One lexed token; <see cref="Literal"/> holds the value of integer, float and string tokens.</summary>
internal readonly record struct Token(TokenKind Kind, string Value, int Offset, object? Literal = null)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsName(string value) => Is(TokenKind.Name, value);

    public bool IsOperator(string value) => Is(TokenKind.Operator, value);
}

/// <summary>Turns offsets into "line L, column C" for error messages.</summary>
internal sealed class SourceMap
{
    private readonly List<int> _lineStarts = [0];

    public SourceMap(string source)
    {
        for (var i = 0; i < source.Length; i++)
        {
            if (source[i] == '\n')
            {
                _lineStarts.Add(i + 1);
            }
        }
    }

    public string Describe(int offset)
    {
        var line = _lineStarts.BinarySearch(offset);
        if (line < 0)
        {
            line = ~line - 1;
        }
        return $"chat template line {line + 1}, column {offset - _lineStarts[line] + 1}";
    }
}
