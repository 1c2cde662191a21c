using System.Collections;
using System.Text.Json;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Jinja's default <c>Undefined</c>: prints as "", is falsy, iterates as empty; its attributes are undefined too.</summary>
internal sealed class Undefined
{
    private readonly string? _reason;

    public Undefined(string? reason)
    {
        _reason = reason;
    }

    public static Undefined Named(string name) => new($"'{name}' is undefined");

    /// <summary>Why the value is undefined, for error messages ("'foo' is undefined").</summary>
    public string Describe() => _reason ?? "value is undefined";
}

/// <summary>Jinja's <c>namespace(...)</c>: the one object whose attributes a template may assign.</summary>
internal sealed class Namespace
{
    public OrderedDictionary<string, object?> Attributes { get; } = new();
}

/// <summary>An argument a caller left out (distinct from an explicit <c>none</c>).</summary>
internal sealed class Missing
{
    public static readonly Missing Value = new();
}

/// <summary>A method looked up on a value but not yet called, e.g. <c>message.content.startswith</c>.</summary>
internal sealed record BoundMethod(object Target, string Name);

/// <summary>The evaluated key of <c>x[a:b:c]</c>.</summary>
internal sealed record SliceValue(long? Start, long? Stop, long? Step);

/// <summary>Anything a template can call: macros and global functions.</summary>
internal interface ICallable
{
    string Name { get; }

    object? Call(CallArgs args);
}

/// <summary>A global function (<c>range</c>, <c>namespace</c>, <c>raise_exception</c>, ...).</summary>
internal sealed class BuiltinFunction(string name, Func<CallArgs, object?> body) : ICallable
{
    public string Name { get; } = name;

    public object? Call(CallArgs args) => body(args);
}

/// <summary>Python value semantics for the template's values: truthiness, equality, ordering, iteration, membership.</summary>
/// <remarks>
/// Values are null (None), bool, long, double, string, <see cref="IList{T}"/> of object? (an <c>object?[]</c> is a
/// tuple, anything else a list), <see cref="IDictionary{TKey,TValue}"/> of string to object?, and the internal types
/// above.
/// </remarks>
internal static class Values
{
    public static bool IsTuple(object? v) => v is object?[];

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static bool IsTruthy(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        IList<object?> list => list.Count > 0,
        IDictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        object?[] => "tuple",
        IList<object?> => "list",
        IDictionary<string, object?> => "dict",
        Namespace => "Namespace",
        LoopInfo => "LoopContext",
        ICallable => "function",
        BoundMethod => "builtin_function_or_method",
        _ => v.GetType().Name,
    };

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new TemplateError($"expected a number, got {TypeName(v)}"),
    };

    /// <summary>Python <c>==</c>: numbers across int/float/bool, lists and tuples never equal each other.</summary>
    public static bool Eq(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                return ToDouble(a) == ToDouble(b);
            }
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case null:
                return b == null;
            case Undefined:
                return b is Undefined;
            case string s:
                return b is string t && s == t;
            case IList<object?> x when b is IList<object?> y:
                if (IsTuple(x) != IsTuple(y) || x.Count != y.Count)
                {
                    return false;
                }
                for (var i = 0; i < x.Count; i++)
                {
                    if (!Eq(x[i], y[i]))
                    {
                        return false;
                    }
                }
                return true;
            case IDictionary<string, object?> x when b is IDictionary<string, object?> y:
                if (x.Count != y.Count)
                {
                    return false;
                }
                foreach (var kv in x)
                {
                    if (!y.TryGetValue(kv.Key, out var other) || !Eq(kv.Value, other))
                    {
                        return false;
                    }
                }
                return true;
            default:
                return ReferenceEquals(a, b) || (a != null && a.Equals(b));
        }
    }

    private static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new TemplateError($"expected an integer, got {TypeName(v)}"),
    };

    /// <summary>Python ordering (<c>&lt;</c> and friends); mismatched types are a TypeError, as in Python.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string s && b is string t)
        {
            return PyStr.CompareOrdinal(s, t);
        }
        if (a is IList<object?> x && b is IList<object?> y && IsTuple(x) == IsTuple(y))
        {
            for (var i = 0; i < Math.Min(x.Count, y.Count); i++)
            {
                if (!Eq(x[i], y[i]))
                {
                    return Compare(x[i], y[i], op);
                }
            }
            return x.Count.CompareTo(y.Count);
        }
        if (a is Undefined || b is Undefined)
        {
            throw new TemplateError((a as Undefined ?? (Undefined)b!).Describe());
        }
        throw new TemplateError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    /// <summary>Python <c>in</c>: substring, list element, dict key.</summary>
    public static bool Contains(object? container, object? item) => container switch
    {
        string s when item is string t => s.Contains(t, StringComparison.Ordinal),
        string => throw new TemplateError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        IList<object?> list => list.Any(x => Eq(x, item)),
        IDictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        Undefined => false,
        _ => throw new TemplateError($"argument of type '{TypeName(container)}' is not iterable"),
    };

    /// <summary>The items a <c>for</c> loop or a filter visits: list items, dict keys, string characters.</summary>
    public static List<object?> Iterate(object? v) => v switch
    {
        string s => PyStr.Elements(s).Select(c => (object?)c).ToList(),
        IList<object?> list => [.. list],
        IDictionary<string, object?> dict => dict.Keys.Select(k => (object?)k).ToList(),
        Undefined => [],
        _ => throw new TemplateError($"'{TypeName(v)}' object is not iterable"),
    };

    public static long Length(object? v) => v switch
    {
        string s => PyStr.Length(s),
        IList<object?> list => list.Count,
        IDictionary<string, object?> dict => dict.Count,
        Undefined => 0,
        _ => throw new TemplateError($"object of type '{TypeName(v)}' has no len()"),
    };

    /// <summary>Python slice semantics (negative indices, clamping, negative steps) over a sequence of length n.</summary>
    public static IEnumerable<int> SliceIndices(int n, SliceValue slice)
    {
        var step = slice.Step ?? 1;
        if (step == 0)
        {
            throw new TemplateError("slice step cannot be zero");
        }
        long Clamp(long? value, long fallback, long low, long high)
        {
            if (value == null)
            {
                return fallback;
            }
            var x = value.Value < 0 ? value.Value + n : value.Value;
            return Math.Clamp(x, low, high);
        }
        if (step > 0)
        {
            var start = Clamp(slice.Start, 0, 0, n);
            var stop = Clamp(slice.Stop, n, 0, n);
            for (var i = start; i < stop; i += step)
            {
                yield return (int)i;
            }
        }
        else
        {
            var start = Clamp(slice.Start, n - 1, -1, n - 1);
            var stop = Clamp(slice.Stop, -1, -1, n - 1);
            for (var i = start; i > stop; i += step)
            {
                yield return (int)i;
            }
        }
    }

    /// <summary>
    /// Copies a caller's value into the template's value model: ints become long, floats double, sequences lists,
    /// dictionaries insertion-ordered string-keyed dictionaries, <see cref="JsonElement"/> its JSON value.
    /// </summary>
    public static object? FromClr(object? v, string path) => v switch
    {
        null or string or bool or long or double => v,
        int or short or byte or sbyte or uint or ushort => Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture),
        ulong u => u <= long.MaxValue ? (object?)(long)u : (double)u,
        float or decimal => Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture),
        char c => c.ToString(),
        JsonElement e => FromJson(e, path),
        ChatMessage m => FromClr(m.ToDictionary(), path),
        IEnumerable<KeyValuePair<string, object?>> pairs => CopyDict(pairs, path),
        IDictionary dict => CopyDict(dict.Keys.Cast<object>().Select(k => new KeyValuePair<string, object?>(k.ToString() ?? "", dict[k])), path),
        IEnumerable seq => seq.Cast<object?>().Select((x, i) => FromClr(x, $"{path}[{i}]")).ToList(),
        _ => throw new ConfigException($"chat template context: '{path}' has type {v.GetType().Name}; use string, bool, long, double, null, lists or string-keyed dictionaries"),
    };

    private static OrderedDictionary<string, object?> CopyDict(IEnumerable<KeyValuePair<string, object?>> pairs, string path)
    {
        var copy = new OrderedDictionary<string, object?>();
        foreach (var kv in pairs)
        {
            copy[kv.Key] = FromClr(kv.Value, $"{path}.{kv.Key}");
        }
        return copy;
    }

    private static object? FromJson(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var l) && !e.GetRawText().Contains('.') && !e.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase) ? (object?)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select((x, i) => FromJson(x, $"{path}[{i}]")).ToList(),
        _ => CopyDict(e.EnumerateObject().Select(p => new KeyValuePair<string, object?>(p.Name, FromJson(p.Value, $"{path}.{p.Name}"))), path),
    };
}
