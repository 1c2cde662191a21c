using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Jinja's lexer with Hugging Face's settings: <c>trim_blocks</c> (drop the newline after a block or comment tag),
/// <c>lstrip_blocks</c> (drop spaces and tabs before a block or comment tag that starts its line), the <c>-</c> and
/// <c>+</c> whitespace modifiers, <c>{% raw %}</c>, and Jinja's removal of one trailing newline.
/// </summary>
internal sealed partial class Lexer
{
    private static readonly string[] s_operators =
    [
        "**", "//", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";",
    ];

    private readonly string _src;
    private readonly SourceMap _map;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private bool _lineStarting = true;

    private Lexer(string src, SourceMap map)
    {
        _src = src;
        _map = map;
    }

    /// <summary>Jinja normalises newlines to "\n" and, without keep_trailing_newline, drops one at the end.</summary>
    public static string NormalizeSource(string source)
    {
        var s = source.Replace("\r\n", "\n").Replace('\r', '\n');
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    public static List<Token> Tokenize(string normalizedSource, SourceMap map)
    {
        var lexer = new Lexer(normalizedSource, map);
        lexer.Run();
        return lexer._tokens;
    }

    [GeneratedRegex(@"\G\{%[-+]?\s*raw\s*(-%\}\s*|%\})")]
    private static partial Regex RawBegin();

    [GeneratedRegex(@"\{%([-+]?)\s*endraw\s*(\+%\}|-%\}\s*|%\}\n?)")]
    private static partial Regex RawEnd();

    private ConfigException Error(int offset, string message) => new($"{_map.Describe(offset)}: {message}");

    private void Run()
    {
        while (_pos < _src.Length)
        {
            var start = FindTagStart(_pos);
            if (start < 0)
            {
                AddText(_src[_pos..], _pos);
                break;
            }
            var kind = _src[start + 1];
            var modifier = start + 2 < _src.Length && _src[start + 2] is '-' or '+' ? _src[start + 2] : '\0';
            AddText(ApplyLeftModifier(_src[_pos..start], modifier, kind != '{'), _pos);
            var raw = kind == '%' ? RawBegin().Match(_src, start) : Match.Empty;
            if (raw.Success)
            {
                LexRaw(start, raw);
            }
            else if (kind == '#')
            {
                LexComment(start, modifier);
            }
            else
            {
                _pos = start + 2 + (modifier != '\0' ? 1 : 0);
                _tokens.Add(new Token(kind == '%' ? TokenKind.BlockBegin : TokenKind.VariableBegin, _src[start.._pos], start));
                LexTag(kind == '%', start);
            }
        }
        _tokens.Add(new Token(TokenKind.Eof, "", _src.Length));
    }

    private int FindTagStart(int from)
    {
        for (var i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
        {
            if (_src[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The text before a tag: all trailing whitespace goes with '-'; with lstrip_blocks, the line's indent before a block.</summary>
    private string ApplyLeftModifier(string text, char modifier, bool isBlockOrComment)
    {
        if (modifier == '-')
        {
            var end = text.Length;
            while (end > 0 && PyStr.IsSpace(text[end - 1]))
            {
                end--;
            }
            return text[..end];
        }
        if (modifier != '+' && isBlockOrComment)
        {
            var lineStart = text.LastIndexOf('\n') + 1;
            if ((lineStart > 0 || _lineStarting) && PyStr.IsAllSpace(text, lineStart))
            {
                return text[..lineStart];
            }
        }
        return text;
    }

    private void AddText(string text, int offset)
    {
        if (text.Length > 0)
        {
            _tokens.Add(new Token(TokenKind.Text, text, offset));
        }
    }

    /// <summary>After a tag end: '-' eats all following whitespace, trim_blocks one newline (not after '+' or '}}').</summary>
    private void ConsumeRightModifier(char modifier, bool trimNewline)
    {
        var tagEnd = _pos;
        if (modifier == '-')
        {
            while (_pos < _src.Length && PyStr.IsSpace(_src[_pos]))
            {
                _pos++;
            }
        }
        else if (modifier != '+' && trimNewline && _pos < _src.Length && _src[_pos] == '\n')
        {
            _pos++;
        }
        _lineStarting = _pos > tagEnd && _src[_pos - 1] == '\n';
    }

    private void LexComment(int start, char modifier)
    {
        var bodyStart = start + 2 + (modifier != '\0' ? 1 : 0);
        var end = _src.IndexOf("#}", bodyStart, StringComparison.Ordinal);
        if (end < 0)
        {
            throw Error(start, "comment '{#' is never closed with '#}'");
        }
        var closing = end > bodyStart && _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
        _pos = end + 2;
        ConsumeRightModifier(closing, trimNewline: true);
    }

    private void LexRaw(int start, Match begin)
    {
        _pos = start + begin.Length;
        _lineStarting = begin.Value.EndsWith('\n');
        var end = RawEnd().Match(_src, _pos);
        if (!end.Success)
        {
            throw Error(start, "'{% raw %}' is never closed with '{% endraw %}'");
        }
        var modifier = end.Groups[1].Value.Length > 0 ? end.Groups[1].Value[0] : '\0';
        AddText(ApplyLeftModifier(_src[_pos..end.Index], modifier, true), _pos);
        _pos = end.Index + end.Length;
        _lineStarting = end.Value.EndsWith('\n');
    }

    private void LexTag(bool block, int tagStart)
    {
        var open = new Stack<(char Bracket, int Offset)>();
        while (true)
        {
            while (_pos < _src.Length && PyStr.IsSpace(_src[_pos]))
            {
                _pos++;
            }
            if (_pos >= _src.Length)
            {
                throw Error(tagStart, block ? "block tag '{%' is never closed with '%}'" : "expression '{{' is never closed with '}}'");
            }
            if (open.Count == 0 && TryEndTag(block))
            {
                return;
            }
            var c = _src[_pos];
            var at = _pos;
            if (char.IsDigit(c))
            {
                _tokens.Add(LexNumber());
            }
            else if (char.IsLetter(c) || c == '_')
            {
                while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_'))
                {
                    _pos++;
                }
                _tokens.Add(new Token(TokenKind.Name, _src[at.._pos], at));
            }
            else if (c is '\'' or '"')
            {
                _tokens.Add(LexString());
            }
            else
            {
                var op = s_operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0)
                    ?? throw Error(at, $"unexpected character '{c}'");
                _pos += op.Length;
                TrackBracket(open, op, at);
                _tokens.Add(new Token(TokenKind.Operator, op, at));
            }
        }
    }

    private bool TryEndTag(bool block)
    {
        var closer = block ? "%}" : "}}";
        foreach (var modifier in block ? "-+\0" : "-\0")
        {
            var text = modifier == '\0' ? closer : modifier + closer;
            if (string.CompareOrdinal(_src, _pos, text, 0, text.Length) == 0)
            {
                var at = _pos;
                _tokens.Add(new Token(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, text, at));
                _pos += text.Length;
                ConsumeRightModifier(modifier, trimNewline: block);
                return true;
            }
        }
        return false;
    }

    private void TrackBracket(Stack<(char Bracket, int Offset)> open, string op, int at)
    {
        switch (op)
        {
            case "(" or "[" or "{":
                open.Push((op[0], at));
                break;
            case ")" or "]" or "}":
                var expected = op == ")" ? '(' : op == "]" ? '[' : '{';
                if (open.Count == 0 || open.Peek().Bracket != expected)
                {
                    throw Error(at, $"unexpected '{op}'");
                }
                open.Pop();
                break;
        }
    }

    private Token LexNumber()
    {
        var at = _pos;
        if (_src[_pos] == '0' && _pos + 1 < _src.Length && char.ToLowerInvariant(_src[_pos + 1]) is 'x' or 'o' or 'b')
        {
            var radix = char.ToLowerInvariant(_src[_pos + 1]) switch { 'x' => 16, 'o' => 8, _ => 2 };
            _pos += 2;
            var digitsStart = _pos;
            while (_pos < _src.Length && (Uri.IsHexDigit(_src[_pos]) || _src[_pos] == '_'))
            {
                _pos++;
            }
            var digits = _src[digitsStart.._pos].Replace("_", "");
            try
            {
                return new Token(TokenKind.Integer, _src[at.._pos], at, Convert.ToInt64(digits, radix));
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
            {
                throw Error(at, $"invalid number '{_src[at.._pos]}'");
            }
        }
        SkipDigits();
        var isFloat = false;
        if (_pos + 1 < _src.Length && _src[_pos] == '.' && char.IsDigit(_src[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            SkipDigits();
        }
        if (_pos < _src.Length && _src[_pos] is 'e' or 'E')
        {
            var save = _pos;
            _pos++;
            if (_pos < _src.Length && _src[_pos] is '+' or '-')
            {
                _pos++;
            }
            if (_pos < _src.Length && char.IsDigit(_src[_pos]))
            {
                isFloat = true;
                SkipDigits();
            }
            else
            {
                _pos = save;
            }
        }
        var text = _src[at.._pos];
        var clean = text.Replace("_", "");
        if (isFloat)
        {
            return new Token(TokenKind.Float, text, at, double.Parse(clean, NumberStyles.Float, CultureInfo.InvariantCulture));
        }
        if (!long.TryParse(clean, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            throw Error(at, $"integer '{text}' does not fit in 64 bits");
        }
        return new Token(TokenKind.Integer, text, at, value);
    }

    private void SkipDigits()
    {
        while (_pos < _src.Length && (char.IsDigit(_src[_pos]) || (_src[_pos] == '_' && _pos + 1 < _src.Length && char.IsDigit(_src[_pos + 1]))))
        {
            _pos++;
        }
    }

    /// <summary>A quoted string with Python's escapes (\n, \t, \xHH, \uHHHH, ...); unknown escapes stay as written.</summary>
    private Token LexString()
    {
        var at = _pos;
        var quote = _src[_pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length)
            {
                throw Error(at, "string literal is never closed");
            }
            var c = _src[_pos++];
            if (c == quote)
            {
                break;
            }
            if (c != '\\' || _pos >= _src.Length)
            {
                sb.Append(c);
                continue;
            }
            var e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'a': sb.Append('\a'); break;
                case '0': sb.Append('\0'); break;
                case '\n': break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                case 'x' or 'u' or 'U':
                    var width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (_pos + width > _src.Length || !int.TryParse(_src.AsSpan(_pos, width), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code))
                    {
                        throw Error(_pos - 2, $"bad \\{e} escape in string literal");
                    }
                    sb.Append(char.ConvertFromUtf32(code));
                    _pos += width;
                    break;
                default:
                    sb.Append('\\').Append(e);
                    break;
            }
        }
        return new Token(TokenKind.String, _src[at.._pos], at, sb.ToString());
    }
}
