using System.Globalization;
using System.Numerics;
using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Jinja's filters that chat templates use, with Jinja's signatures and Python semantics. <c>tojson</c> is the one
/// transformers installs: <c>json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)</c>.
/// Sequence filters are in JinjaFilters.Sequences.cs.
/// </summary>
internal static partial class JinjaFilters
{
    private static readonly Dictionary<string, FilterFunction> s_filters = new(SequenceFilters())
    {
        ["trim"] = (v, a) => PyStr.Strip(PyFormat.Str(v), CallArgs.Str(a.Bind("trim", "chars")[0], null, "chars"), true, true),
        ["upper"] = (v, a) => NoArgs(a, "upper", PyFormat.Str(v).ToUpperInvariant()),
        ["lower"] = (v, a) => NoArgs(a, "lower", PyFormat.Str(v).ToLowerInvariant()),
        ["title"] = (v, a) => NoArgs(a, "title", PyStr.TitleFilter(PyFormat.Str(v))),
        ["capitalize"] = (v, a) => NoArgs(a, "capitalize", PyStr.Capitalize(PyFormat.Str(v))),
        ["string"] = (v, a) => NoArgs(a, "string", PyFormat.Str(v)),
        ["safe"] = (v, a) => NoArgs(a, "safe", v),
        ["wordcount"] = (v, a) => NoArgs(a, "wordcount", PyStr.WordCount(PyFormat.Str(v))),
        ["escape"] = (v, a) => NoArgs(a, "escape", Escape(v)),
        ["e"] = (v, a) => NoArgs(a, "e", Escape(v)),
        ["replace"] = Replace,
        ["indent"] = Indent,
        ["center"] = Center,
        ["tojson"] = ToJson,
        ["length"] = (v, a) => NoArgs(a, "length", Values.Length(v)),
        ["count"] = (v, a) => NoArgs(a, "count", Values.Length(v)),
        ["default"] = Default,
        ["d"] = Default,
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = (v, a) => NoArgs(a, "abs", v switch
        {
            long l => (object?)checked(Math.Abs(l)),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw new TemplateError($"bad operand type for abs(): '{Values.TypeName(v)}'"),
        }),
        ["round"] = Round,
        ["format"] = (v, a) => a.Positional.Count > 0 && a.Named.Count > 0
            ? throw new TemplateError("format: use positional or keyword arguments, not both")
            : PercentFormat.Format(PyFormat.Str(v), a.Named.Count > 0 ? KeywordDict(a) : a.Positional.ToArray()),
    };

    public static bool TryGet(string name, out FilterFunction filter) => s_filters.TryGetValue(name, out filter!);

    private static OrderedDictionary<string, object?> KeywordDict(CallArgs args)
    {
        var dict = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in args.Named)
        {
            dict[key] = value;
        }
        return dict;
    }

    private static object? NoArgs(CallArgs args, string name, object? result)
    {
        args.Bind(name);
        return result;
    }

    private static object? Replace(object? value, CallArgs args)
    {
        var a = args.Bind("replace", "old", "new", "count");
        var count = a[2] is Missing or null ? -1 : CallArgs.Int(a[2], -1, "count");
        return PyStr.Replace(PyFormat.Str(value), PyFormat.Str(a[0] is Missing ? "" : a[0]), PyFormat.Str(a[1] is Missing ? "" : a[1]), count);
    }

    /// <summary>Jinja <c>indent(width=4, first=False, blank=False)</c>: indents every line but the first, skipping blank lines.</summary>
    private static object? Indent(object? value, CallArgs args)
    {
        var a = args.Bind("indent", "width", "first", "blank");
        var indentation = a[0] is string s ? s : new string(' ', (int)CallArgs.Int(a[0], 4, "width"));
        var first = a[1] is not Missing && Values.IsTruthy(a[1]);
        var blank = a[2] is not Missing && Values.IsTruthy(a[2]);
        var lines = PyStr.SplitLines(PyFormat.Str(value) + "\n");
        var sb = new StringBuilder(lines.Count > 0 ? lines[0] : "");
        for (var i = 1; i < lines.Count; i++)
        {
            sb.Append('\n');
            if (blank || lines[i].Length > 0)
            {
                sb.Append(indentation);
            }
            sb.Append(lines[i]);
        }
        return first ? indentation + sb : sb.ToString();
    }

    private static object? Center(object? value, CallArgs args)
    {
        var width = (int)CallArgs.Int(args.Bind("center", "width")[0], 80, "width");
        var s = PyFormat.Str(value);
        var pad = width - PyStr.Length(s);
        if (pad <= 0)
        {
            return s;
        }
        // CPython's str.center splits an odd padding by this rule.
        var left = pad / 2 + (pad & width & 1);
        return new string(' ', left) + s + new string(' ', pad - left);
    }

    private static object? ToJson(object? value, CallArgs args)
    {
        var a = args.Bind("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
        var ascii = a[0] is not Missing && Values.IsTruthy(a[0]);
        var indent = a[1] switch
        {
            Missing or null => null,
            string s => s,
            long n => new string(' ', (int)Math.Max(0, n)),
            _ => throw new TemplateError($"tojson indent must be an integer or a string, got {Values.TypeName(a[1])}"),
        };
        (string, string)? separators = a[2] switch
        {
            Missing or null => null,
            IList<object?> { Count: 2 } pair when pair[0] is string item && pair[1] is string key => (item, key),
            _ => throw new TemplateError("tojson separators must be a pair of strings"),
        };
        var sortKeys = a[3] is not Missing && Values.IsTruthy(a[3]);
        return PyFormat.Json(value, ascii, indent, separators, sortKeys);
    }

    private static object? Default(object? value, CallArgs args)
    {
        var a = args.Bind("default", "default_value", "boolean");
        var boolean = a[1] is not Missing && Values.IsTruthy(a[1]);
        if (value is Undefined || (boolean && !Values.IsTruthy(value)))
        {
            return a[0] is Missing ? "" : a[0];
        }
        return value;
    }

    /// <summary>Jinja <c>int(default=0, base=10)</c>: strings parse in the base, else via float ("42.23" gives 42).</summary>
    private static object? ToInt(object? value, CallArgs args)
    {
        var a = args.Bind("int", "default", "base");
        var fallback = a[0] is Missing ? 0L : a[0];
        var radix = (int)CallArgs.Int(a[1], 10, "base");
        switch (value)
        {
            case long:
                return value;
            case bool b:
                return b ? 1L : 0L;
            case double d:
                return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var text = PyStr.Strip(s, null, true, true).Replace("_", "");
                try
                {
                    if (radix == 10 && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                    {
                        return l;
                    }
                    if (radix != 10)
                    {
                        var negative = text.StartsWith('-');
                        var digits = text.TrimStart('+', '-');
                        if (radix == 16 && digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
                        {
                            digits = digits[2..];
                        }
                        var parsed = Convert.ToInt64(digits, radix);
                        return negative ? -parsed : parsed;
                    }
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
                {
                    return fallback;
                }
                return ParsePythonFloat(s) is double f && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
            default:
                return fallback;
        }
    }

    private static object? ToFloat(object? value, CallArgs args)
    {
        var fallback = args.Bind("float", "default")[0] is var d && d is Missing ? 0.0 : d;
        return value switch
        {
            double => value,
            long l => (double)l,
            bool b => b ? 1.0 : 0.0,
            string s => ParsePythonFloat(s) ?? fallback,
            _ => fallback,
        };
    }

    private static double? ParsePythonFloat(string s)
    {
        var text = PyStr.Strip(s, null, true, true).Replace("_", "").ToLowerInvariant();
        switch (text.TrimStart('+', '-'))
        {
            case "inf" or "infinity":
                return text.StartsWith('-') ? double.NegativeInfinity : double.PositiveInfinity;
            case "nan":
                return double.NaN;
        }
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) ? f : null;
    }

    /// <summary>Jinja <c>round(precision=0, method='common')</c>; 'common' is Python's round (half to even).</summary>
    private static object? Round(object? value, CallArgs args)
    {
        var a = args.Bind("round", "precision", "method");
        var precision = (int)CallArgs.Int(a[0], 0, "precision");
        var method = CallArgs.Str(a[1], "common", "method");
        if (!Values.IsNumber(value))
        {
            throw new TemplateError($"round needs a number, got {Values.TypeName(value)}");
        }
        var x = Values.ToDouble(value);
        var scale = Math.Pow(10, precision);
        switch (method)
        {
            case "common":
                if (value is long or bool)
                {
                    return precision >= 0 ? (value is bool b ? (b ? 1L : 0L) : value) : (long)(Math.Round(x / Math.Pow(10, -precision), MidpointRounding.ToEven) * Math.Pow(10, -precision));
                }
                return RoundHalfEven(x, Math.Clamp(precision, -400, 400));
            case "ceil":
                return Math.Ceiling(x * scale) / scale;
            case "floor":
                return Math.Floor(x * scale) / scale;
            default:
                throw new TemplateError("round method must be common, ceil or floor");
        }
    }

    /// <summary>
    /// Python's <c>round(x, n)</c>: half to even on the exact binary value (so 2.675 gives 2.67, since the double is
    /// 2.67499999...), computed with exact integers and parsed back correctly rounded.
    /// </summary>
    internal static double RoundHalfEven(double x, int n)
    {
        if (!double.IsFinite(x) || x == 0)
        {
            return x;
        }
        var bits = BitConverter.DoubleToInt64Bits(x);
        var exponent = (int)((bits >> 52) & 0x7FF);
        var mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0)
        {
            exponent = 1;
        }
        else
        {
            mantissa |= 1L << 52;
        }
        exponent -= 1075;
        // |x| * 10^n = num / den exactly.
        BigInteger num = mantissa;
        BigInteger den = BigInteger.One;
        num = exponent >= 0 ? num << exponent : num;
        den = exponent < 0 ? den << -exponent : den;
        num = n >= 0 ? num * BigInteger.Pow(10, n) : num;
        den = n < 0 ? den * BigInteger.Pow(10, -n) : den;
        var q = BigInteger.DivRem(num, den, out var r);
        var twice = r * 2;
        if (twice > den || (twice == den && !q.IsEven))
        {
            q += 1;
        }
        var result = double.Parse(q.ToString(CultureInfo.InvariantCulture) + "e" + (-n).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        return x < 0 ? -result : result;
    }

    private static string Escape(object? value) => PyFormat.Str(value)
        .Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
}
