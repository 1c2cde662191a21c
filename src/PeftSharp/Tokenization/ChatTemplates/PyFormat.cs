using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Python's <c>str()</c>, <c>repr()</c> and <c>json.dumps</c> for template values.</summary>
internal static class PyFormat
{
    /// <summary>What <c>{{ value }}</c> prints: Python <c>str(value)</c>, with "" for undefined.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? v)
    {
        switch (v)
        {
            case null:
                sb.Append("None");
                break;
            case Undefined:
                break;
            case bool b:
                sb.Append(b ? "True" : "False");
                break;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                sb.Append(FloatRepr(d));
                break;
            case string s:
                AppendStringRepr(sb, s);
                break;
            case object?[] tuple:
                sb.Append('(');
                AppendItems(sb, tuple);
                sb.Append(tuple.Length == 1 ? ",)" : ")");
                break;
            case IList<object?> list:
                sb.Append('[');
                AppendItems(sb, list);
                sb.Append(']');
                break;
            case IDictionary<string, object?> dict:
                sb.Append('{');
                var first = true;
                foreach (var kv in dict)
                {
                    sb.Append(first ? "" : ", ");
                    first = false;
                    AppendStringRepr(sb, kv.Key);
                    sb.Append(": ");
                    AppendRepr(sb, kv.Value);
                }
                sb.Append('}');
                break;
            case Namespace ns:
                sb.Append("<Namespace ");
                AppendRepr(sb, new Dictionary<string, object?>(ns.Attributes));
                sb.Append('>');
                break;
            case ICallable f:
                sb.Append($"<function {f.Name}>");
                break;
            case BoundMethod m:
                sb.Append($"<built-in method {m.Name} of {Values.TypeName(m.Target)} object>");
                break;
            default:
                sb.Append($"<{Values.TypeName(v)} object>");
                break;
        }
    }

    private static void AppendItems(StringBuilder sb, IList<object?> items)
    {
        for (var i = 0; i < items.Count; i++)
        {
            sb.Append(i == 0 ? "" : ", ");
            AppendRepr(sb, items[i]);
        }
    }

    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote)
                    {
                        sb.Append('\\').Append(c);
                    }
                    else if (c < 0x20 || (c >= 0x7f && c <= 0xa0))
                    {
                        sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        sb.Append(quote);
    }

    /// <summary>Python <c>repr(float)</c>: shortest round-trip digits, scientific below 1e-4 and from 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }
        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }
        var sign = d < 0 || (d == 0 && double.IsNegative(d)) ? "-" : "";
        // "R" gives the shortest digits that round-trip; split them into digits and a decimal exponent.
        var shortest = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        var ePos = shortest.IndexOfAny(['E', 'e']);
        var mantissa = ePos < 0 ? shortest : shortest[..ePos];
        var exp10 = ePos < 0 ? 0 : int.Parse(shortest[(ePos + 1)..], CultureInfo.InvariantCulture);
        var dot = mantissa.IndexOf('.');
        var intPart = dot < 0 ? mantissa : mantissa[..dot];
        var fracPart = dot < 0 ? "" : mantissa[(dot + 1)..];
        var digits = (intPart + fracPart).TrimStart('0');
        var decpt = intPart.TrimStart('0').Length + exp10;
        if (intPart.TrimStart('0').Length == 0)
        {
            var leadingZeros = fracPart.Length - fracPart.TrimStart('0').Length;
            decpt = exp10 - leadingZeros;
        }
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            return sign + "0.0";
        }
        var exp = decpt - 1;
        if (exp < -4 || exp >= 16)
        {
            var m = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return sign + m + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
        }
        if (decpt <= 0)
        {
            return sign + "0." + new string('0', -decpt) + digits;
        }
        if (decpt >= digits.Length)
        {
            return sign + digits + new string('0', decpt - digits.Length) + ".0";
        }
        return sign + digits[..decpt] + "." + digits[decpt..];
    }

    /// <summary>
    /// Python <c>json.dumps(v, ensure_ascii, indent, separators, sort_keys)</c>, which transformers installs as the
    /// <c>tojson</c> filter (HF passes <c>ensure_ascii=False</c>). Without indent the separators are ", " and ": ";
    /// with indent "," and ": ".
    /// </summary>
    public static string Json(object? v, bool ensureAscii, string? indent, (string Item, string Key)? separators, bool sortKeys)
    {
        var seps = separators ?? (indent == null ? (", ", ": ") : (",", ": "));
        var sb = new StringBuilder();
        AppendJson(sb, v, ensureAscii, indent, seps, sortKeys, 0);
        return sb.ToString();
    }

    private static void AppendJson(StringBuilder sb, object? v, bool ascii, string? indent, (string Item, string Key) seps, bool sortKeys, int depth)
    {
        switch (v)
        {
            case null:
                sb.Append("null");
                return;
            case bool b:
                sb.Append(b ? "true" : "false");
                return;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                return;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d));
                return;
            case string s:
                AppendJsonString(sb, s, ascii);
                return;
            case IList<object?> list:
                AppendContainer(sb, '[', ']', list.Count, depth, indent, seps, i => AppendJson(sb, list[i], ascii, indent, seps, sortKeys, depth + 1));
                return;
            case IDictionary<string, object?> dict:
                var pairs = sortKeys ? dict.OrderBy(kv => kv.Key, Comparer<string>.Create(PyStr.CompareOrdinal)).ToList() : dict.ToList();
                AppendContainer(sb, '{', '}', pairs.Count, depth, indent, seps, i =>
                {
                    AppendJsonString(sb, pairs[i].Key, ascii);
                    sb.Append(seps.Key);
                    AppendJson(sb, pairs[i].Value, ascii, indent, seps, sortKeys, depth + 1);
                });
                return;
            default:
                throw new TemplateError($"Object of type {Values.TypeName(v)} is not JSON serializable");
        }
    }

    private static void AppendContainer(StringBuilder sb, char open, char close, int count, int depth, string? indent, (string Item, string Key) seps, Action<int> item)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }
        for (var i = 0; i < count; i++)
        {
            if (i > 0)
            {
                sb.Append(seps.Item);
            }
            if (indent != null)
            {
                sb.Append('\n');
                for (var k = 0; k <= depth; k++)
                {
                    sb.Append(indent);
                }
            }
            item(i);
        }
        if (indent != null)
        {
            sb.Append('\n');
            for (var k = 0; k < depth; k++)
            {
                sb.Append(indent);
            }
        }
        sb.Append(close);
    }

    private static void AppendJsonString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7e))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        sb.Append('"');
    }
}
