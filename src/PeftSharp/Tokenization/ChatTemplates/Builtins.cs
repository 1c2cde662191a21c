using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// The global functions a chat template can call: Jinja's <c>range</c>, <c>namespace</c> and <c>dict</c>, and the
/// two transformers adds, <c>raise_exception(msg)</c> and <c>strftime_now(fmt)</c>.
/// </summary>
internal static class Builtins
{
    private const int MaxRange = 1_000_000;

    public static Scope CreateGlobals(Func<DateTime> now)
    {
        var globals = new Scope(null);
        foreach (var f in new ICallable[]
        {
            new BuiltinFunction("range", Range),
            new BuiltinFunction("namespace", NewNamespace),
            new BuiltinFunction("dict", NewDict),
            new BuiltinFunction("raise_exception", RaiseException),
            new BuiltinFunction("strftime_now", args => Strftime.Format(now(), CallArgs.Str(args.Bind("strftime_now", "format")[0], null, "format")
                ?? throw new TemplateError("strftime_now() needs a format string"))),
        })
        {
            globals.Set(f.Name, f);
        }
        return globals;
    }

    private static object? Range(CallArgs args)
    {
        if (args.Named.Count > 0 || args.Positional.Count is 0 or > 3)
        {
            throw new TemplateError("range() takes 1 to 3 positional arguments");
        }
        var n = args.Positional.Select(x => CallArgs.Int(x, 0, "range() argument")).ToArray();
        var (start, stop, step) = n.Length == 1 ? (0, n[0], 1) : (n[0], n[1], n.Length == 3 ? n[2] : 1);
        if (step == 0)
        {
            throw new TemplateError("range() arg 3 must not be zero");
        }
        var result = new List<object?>();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (result.Count >= MaxRange)
            {
                throw new TemplateError($"range() longer than {MaxRange} items");
            }
            result.Add(i);
        }
        return result;
    }

    /// <summary><c>namespace(a=1)</c> or <c>namespace(some_dict, a=1)</c>.</summary>
    private static object? NewNamespace(CallArgs args)
    {
        var ns = new Namespace();
        foreach (var positional in args.Positional)
        {
            if (positional is not IDictionary<string, object?> initial)
            {
                throw new TemplateError($"namespace() takes a mapping or keyword arguments, got {Values.TypeName(positional)}");
            }
            foreach (var kv in initial)
            {
                ns.Attributes[kv.Key] = kv.Value;
            }
        }
        foreach (var (key, value) in args.Named)
        {
            ns.Attributes[key] = value;
        }
        return ns;
    }

    private static object? NewDict(CallArgs args)
    {
        var dict = new OrderedDictionary<string, object?>();
        foreach (var positional in args.Positional)
        {
            if (positional is not IDictionary<string, object?> initial)
            {
                throw new TemplateError($"dict() takes a mapping or keyword arguments, got {Values.TypeName(positional)}");
            }
            foreach (var kv in initial)
            {
                dict[kv.Key] = kv.Value;
            }
        }
        foreach (var (key, value) in args.Named)
        {
            dict[key] = value;
        }
        return dict;
    }

    private static object? RaiseException(CallArgs args)
    {
        var message = args.Bind("raise_exception", "message")[0];
        throw new TemplateError(message is Missing ? "" : PyFormat.Str(message)) { RaisedByTemplate = true };
    }
}

/// <summary>Python's <c>datetime.strftime</c> directives (C locale), for transformers' <c>strftime_now</c>.</summary>
internal static class Strftime
{
    public static string Format(DateTime t, string format)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var d = format[++i];
            // glibc's "%-d" style drops the zero padding (Llama 3.x templates use "%d %b %Y"; others "%-d").
            var noPad = d == '-' && i + 1 < format.Length;
            if (noPad)
            {
                d = format[++i];
            }
            string Num(int value, int width) => noPad ? value.ToString(c) : value.ToString(new string('0', width), c);
            sb.Append(d switch
            {
                'Y' => t.Year.ToString(c),
                'y' => Num(t.Year % 100, 2),
                'm' => Num(t.Month, 2),
                'd' => Num(t.Day, 2),
                'e' => t.Day.ToString(c).PadLeft(2),
                'H' => Num(t.Hour, 2),
                'I' => Num(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Num(t.Minute, 2),
                'S' => Num(t.Second, 2),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", c),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => Num(t.DayOfYear, 3),
                'a' => t.ToString("ddd", c),
                'A' => t.ToString("dddd", c),
                'b' or 'h' => t.ToString("MMM", c),
                'B' => t.ToString("MMMM", c),
                'w' => ((int)t.DayOfWeek).ToString(c),
                'u' => (t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek).ToString(c),
                'F' => t.ToString("yyyy-MM-dd", c),
                'D' => t.ToString("MM/dd/yy", c),
                'T' => t.ToString("HH:mm:ss", c),
                'R' => t.ToString("HH:mm", c),
                'c' => t.ToString("ddd MMM ", c) + t.Day.ToString(c).PadLeft(2) + t.ToString(" HH:mm:ss yyyy", c),
                'x' => t.ToString("MM/dd/yy", c),
                'X' => t.ToString("HH:mm:ss", c),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => throw TemplateError.NotSupported($"strftime directive '%{d}'"),
            });
        }
        return sb.ToString();
    }
}
