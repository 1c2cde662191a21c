using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Python's printf-style <c>'%s and %d' % args</c>, behind Jinja's <c>format</c> filter and the <c>%</c> operator on
/// strings: conversions s r d i f F e E x X o c and %%, flags "-+ 0#", width, precision, and <c>%(name)s</c> with a dict.
/// </summary>
internal static class PercentFormat
{
    public static string Format(string format, object? args)
    {
        var positional = args is object?[] tuple ? tuple : args is IDictionary<string, object?> ? [] : [args];
        var mapping = args as IDictionary<string, object?>;
        var next = 0;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%')
            {
                sb.Append(format[i]);
                continue;
            }
            if (++i >= format.Length)
            {
                throw new TemplateError("incomplete format");
            }
            object? value = Missing.Value;
            if (format[i] == '(')
            {
                var close = format.IndexOf(')', i);
                if (close < 0 || mapping == null)
                {
                    throw new TemplateError("format requires a mapping for %(name)");
                }
                var key = format[(i + 1)..close];
                value = mapping.TryGetValue(key, out var v) ? v : throw new TemplateError($"format: no key '{key}'");
                i = close + 1;
            }
            var flagsStart = i;
            while (i < format.Length && "-+ 0#".Contains(format[i]))
            {
                i++;
            }
            var flags = format[flagsStart..i];
            var width = ReadNumber(format, ref i);
            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = ReadNumber(format, ref i) ?? 0;
            }
            if (i >= format.Length)
            {
                throw new TemplateError("incomplete format");
            }
            var conversion = format[i];
            if (conversion == '%')
            {
                sb.Append('%');
                continue;
            }
            if (value is Missing)
            {
                value = next < positional.Length ? positional[next++] : throw new TemplateError("not enough arguments for format string");
            }
            sb.Append(Pad(Convert(conversion, value, flags, precision), width ?? 0, flags));
        }
        if (mapping == null && next < positional.Length)
        {
            throw new TemplateError("not all arguments converted during string formatting");
        }
        return sb.ToString();
    }

    private static int? ReadNumber(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && char.IsDigit(s[i]))
        {
            i++;
        }
        return i > start ? int.Parse(s[start..i], CultureInfo.InvariantCulture) : null;
    }

    private static string Convert(char conversion, object? value, string flags, int? precision)
    {
        var c = CultureInfo.InvariantCulture;
        string Signed(string digits, bool negative) =>
            negative ? "-" + digits : flags.Contains('+') ? "+" + digits : flags.Contains(' ') ? " " + digits : digits;
        switch (conversion)
        {
            case 's':
                var s = PyFormat.Str(value);
                return precision is int p && p < s.Length ? s[..p] : s;
            case 'r':
                return PyFormat.Repr(value);
            case 'd' or 'i':
                var n = value is double d ? (long)Math.Truncate(d) : Integer(value, conversion);
                return Signed(Math.Abs((decimal)n).ToString(c), n < 0);
            case 'x' or 'X' or 'o':
                var m = Integer(value, conversion);
                var digits = conversion == 'o' ? System.Convert.ToString(Math.Abs(m), 8) : Math.Abs(m).ToString(conversion == 'x' ? "x" : "X", c);
                var prefix = flags.Contains('#') ? (conversion == 'o' ? "0o" : "0" + conversion) : "";
                return Signed(prefix + digits, m < 0);
            case 'f' or 'F' or 'e' or 'E':
                var x = Values.IsNumber(value) ? Values.ToDouble(value) : throw new TemplateError($"%{conversion} format: a real number is required, not {Values.TypeName(value)}");
                var body = conversion is 'f' or 'F'
                    ? Math.Abs(x).ToString("F" + (precision ?? 6), c)
                    : Math.Abs(x).ToString((conversion == 'e' ? "e" : "E") + (precision ?? 6), c).Replace("e+0", "e+").Replace("e-0", "e-").Replace("E+0", "E+").Replace("E-0", "E-");
                return Signed(body, x < 0 || (x == 0 && double.IsNegative(x)));
            case 'c':
                return value is string ch && PyStr.Length(ch) == 1 ? ch : char.ConvertFromUtf32((int)Integer(value, conversion));
            default:
                throw TemplateError.NotSupported($"format conversion '%{conversion}'");
        }
    }

    private static long Integer(object? value, char conversion) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new TemplateError($"%{conversion} format: an integer is required, not {Values.TypeName(value)}"),
    };

    private static string Pad(string text, int width, string flags)
    {
        if (text.Length >= width)
        {
            return text;
        }
        if (flags.Contains('-'))
        {
            return text.PadRight(width);
        }
        if (flags.Contains('0') && text.Length > 0 && (char.IsDigit(text[^1]) || text.EndsWith("inf", StringComparison.Ordinal)))
        {
            var sign = text[0] is '-' or '+' or ' ' ? text[..1] : "";
            return sign + text[sign.Length..].PadLeft(width - sign.Length, '0');
        }
        return text.PadLeft(width);
    }
}
