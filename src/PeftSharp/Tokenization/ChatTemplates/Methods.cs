using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Attribute and item access (Jinja's <c>getattr</c>-then-item for <c>.x</c>, item-then-attribute for <c>[x]</c>) and
/// the Python methods templates call on strings, dicts and lists.
/// </summary>
internal static class Methods
{
    private static readonly HashSet<string> s_stringMethods =
    [
        "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "upper", "lower", "title",
        "capitalize", "swapcase", "replace", "format", "find", "rfind", "index", "rindex", "count", "join", "isdigit",
        "isalpha", "isalnum", "isspace", "islower", "isupper", "removeprefix", "removesuffix",
    ];

    private static readonly HashSet<string> s_dictMethods = ["get", "items", "keys", "values"];

    private static readonly HashSet<string> s_listMethods = ["index", "count"];

    public static object? GetAttr(object? obj, string name) => obj switch
    {
        Undefined u => u,
        Namespace ns => ns.Attributes.TryGetValue(name, out var v) ? v : new Undefined($"namespace has no attribute '{name}'"),
        LoopInfo loop => loop.Get(name),
        IDictionary<string, object?> d when s_dictMethods.Contains(name) => new BoundMethod(d, name),
        IDictionary<string, object?> d => d.TryGetValue(name, out var v) ? v : new Undefined($"'dict object' has no attribute '{name}'"),
        string s when s_stringMethods.Contains(name) => new BoundMethod(s, name),
        IList<object?> l when s_listMethods.Contains(name) => new BoundMethod(l, name),
        _ => new Undefined($"'{Values.TypeName(obj)} object' has no attribute '{name}'"),
    };

    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined u:
                return u;
            case IDictionary<string, object?> d:
                var k = key as string ?? PyFormat.Str(key);
                if (d.TryGetValue(k, out var v))
                {
                    return v;
                }
                return key is string name && s_dictMethods.Contains(name) ? new BoundMethod(d, name) : new Undefined($"'dict object' has no key '{k}'");
            case IList<object?> l when key is long or bool:
                var i = Index(key, l.Count);
                return i >= 0 && i < l.Count ? l[i] : new Undefined("list index out of range");
            case IList<object?> l when key is SliceValue slice:
                var picked = Values.SliceIndices(l.Count, slice).Select(j => l[j]);
                return Values.IsTuple(l) ? picked.ToArray() : picked.ToList();
            case string s when key is long or bool:
                var chars = PyStr.Elements(s);
                var c = Index(key, chars.Length);
                return c >= 0 && c < chars.Length ? chars[c] : new Undefined("string index out of range");
            case string s when key is SliceValue slice:
                var elements = PyStr.Elements(s);
                return string.Concat(Values.SliceIndices(elements.Length, slice).Select(j => elements[j]));
        }
        return key is string attr ? GetAttr(obj, attr) : new Undefined($"'{Values.TypeName(obj)} object' has no item {PyFormat.Repr(key)}");
    }

    private static int Index(object? key, int count)
    {
        var i = key is bool b ? (b ? 1 : 0) : (long)key!;
        return (int)Math.Clamp(i < 0 ? i + count : i, -1, int.MaxValue);
    }

    public static object? Invoke(BoundMethod method, CallArgs args) => method.Target switch
    {
        string s => StringMethod(s, method.Name, args),
        IDictionary<string, object?> d => DictMethod(d, method.Name, args),
        LoopInfo loop => method.Name == "cycle" ? loop.Cycle(args) : loop.Changed(args),
        IList<object?> l => ListMethod(l, method.Name, args),
        _ => throw TemplateError.NotSupported($"method '{method.Name}' on {Values.TypeName(method.Target)}"),
    };

    private static object? DictMethod(IDictionary<string, object?> d, string name, CallArgs args)
    {
        switch (name)
        {
            case "get":
                var a = args.Bind("dict.get", "key", "default");
                var key = a[0] is Missing ? throw new TemplateError("dict.get() needs a key") : a[0] as string ?? PyFormat.Str(a[0]);
                return d.TryGetValue(key, out var v) ? v : CallArgs.Or<object?>(a[1], null);
            case "items":
                args.Bind("dict.items");
                return d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList();
            case "keys":
                args.Bind("dict.keys");
                return d.Keys.Select(k => (object?)k).ToList();
            default:
                args.Bind("dict.values");
                return d.Values.ToList();
        }
    }

    private static object? ListMethod(IList<object?> l, string name, CallArgs args)
    {
        var x = args.Bind("list." + name, "value")[0];
        if (name == "count")
        {
            return (long)l.Count(item => Values.Eq(item, x));
        }
        for (var i = 0; i < l.Count; i++)
        {
            if (Values.Eq(l[i], x))
            {
                return (long)i;
            }
        }
        throw new TemplateError($"{PyFormat.Repr(x)} is not in list");
    }

    private static object? StringMethod(string s, string name, CallArgs args)
    {
        object?[] a;
        switch (name)
        {
            case "startswith" or "endswith":
                a = args.Bind("str." + name, "prefix", "start", "end");
                var sub = Substring(s, a[1], a[2]);
                var candidates = a[0] is IList<object?> many ? many : [a[0]];
                return candidates.Any(c => c is string p
                    ? (name == "startswith" ? sub.StartsWith(p, StringComparison.Ordinal) : sub.EndsWith(p, StringComparison.Ordinal))
                    : throw new TemplateError($"str.{name}() needs a string or tuple of strings, got {Values.TypeName(c)}"));
            case "strip" or "lstrip" or "rstrip":
                var chars = CallArgs.Str(args.Bind("str." + name, "chars")[0], null, "chars");
                return PyStr.Strip(s, chars, name != "rstrip", name != "lstrip");
            case "split" or "rsplit":
                a = args.Bind("str." + name, "sep", "maxsplit");
                return PyStr.Split(s, CallArgs.Str(a[0], null, "sep"), CallArgs.Int(a[1], -1, "maxsplit"), name == "rsplit");
            case "splitlines":
                args.Bind("str.splitlines");
                return PyStr.SplitLines(s).Select(x => (object?)x).ToList();
            case "upper" or "lower" or "title" or "capitalize" or "swapcase":
                args.Bind("str." + name);
                return name switch
                {
                    "upper" => s.ToUpperInvariant(),
                    "lower" => s.ToLowerInvariant(),
                    "title" => PyStr.TitleMethod(s),
                    "capitalize" => PyStr.Capitalize(s),
                    _ => string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c))),
                };
            case "replace":
                a = args.Bind("str.replace", "old", "new", "count");
                return PyStr.Replace(s, CallArgs.Str(a[0], null, "old") ?? "", CallArgs.Str(a[1], null, "new") ?? "", CallArgs.Int(a[2], -1, "count"));
            case "format":
                return Format(s, args);
            case "find" or "rfind" or "index" or "rindex":
                a = args.Bind("str." + name, "sub");
                var at = PyStr.Find(s, CallArgs.Str(a[0], null, "sub") ?? "", last: name.StartsWith('r'));
                return at < 0 && name.EndsWith("index", StringComparison.Ordinal) ? throw new TemplateError("substring not found") : at;
            case "count":
                return PyStr.Count(s, CallArgs.Str(args.Bind("str.count", "sub")[0], null, "sub") ?? "");
            case "join":
                return string.Join(s, Values.Iterate(args.Bind("str.join", "iterable")[0]).Select(x =>
                    x as string ?? throw new TemplateError($"str.join() expects strings, found {Values.TypeName(x)}")));
            case "removeprefix" or "removesuffix":
                var affix = CallArgs.Str(args.Bind("str." + name, "affix")[0], null, "affix") ?? "";
                if (name == "removeprefix")
                {
                    return s.StartsWith(affix, StringComparison.Ordinal) ? s[affix.Length..] : s;
                }
                return affix.Length > 0 && s.EndsWith(affix, StringComparison.Ordinal) ? s[..^affix.Length] : s;
            default:
                args.Bind("str." + name);
                return Predicate(s, name);
        }
    }

    private static bool Predicate(string s, string name)
    {
        if (s.Length == 0)
        {
            return false;
        }
        return name switch
        {
            "isdigit" => s.All(char.IsDigit),
            "isalpha" => s.All(char.IsLetter),
            "isalnum" => s.All(char.IsLetterOrDigit),
            "isspace" => s.All(PyStr.IsSpace),
            "islower" => s.Any(char.IsLower) && !s.Any(char.IsUpper),
            _ => s.Any(char.IsUpper) && !s.Any(char.IsLower),
        };
    }

    private static string Substring(string s, object? start, object? end)
    {
        if (start is Missing && end is Missing)
        {
            return s;
        }
        var elements = PyStr.Elements(s);
        var slice = new SliceValue(start is Missing or null ? null : CallArgs.Int(start, 0, "start"), end is Missing or null ? null : CallArgs.Int(end, 0, "end"), null);
        return string.Concat(Values.SliceIndices(elements.Length, slice).Select(j => elements[j]));
    }

    /// <summary>Python <c>str.format</c> for plain fields: <c>{}</c>, <c>{0}</c>, <c>{name}</c>, <c>!r</c>/<c>!s</c>; no format specs.</summary>
    private static string Format(string s, CallArgs args)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if ((c == '{' || c == '}') && i + 1 < s.Length && s[i + 1] == c)
            {
                sb.Append(c);
                i++;
                continue;
            }
            if (c == '}')
            {
                throw new TemplateError("single '}' encountered in format string");
            }
            if (c != '{')
            {
                sb.Append(c);
                continue;
            }
            var close = s.IndexOf('}', i);
            if (close < 0)
            {
                throw new TemplateError("single '{' encountered in format string");
            }
            var field = s[(i + 1)..close];
            i = close;
            var conversion = 's';
            var bang = field.IndexOf('!');
            if (bang >= 0)
            {
                conversion = field.Length > bang + 1 ? field[bang + 1] : 's';
                field = field[..bang];
            }
            if (field.Contains(':'))
            {
                throw TemplateError.NotSupported($"format spec in str.format field '{{{field}}}'");
            }
            object? value;
            if (field.Length == 0 || field.All(char.IsDigit))
            {
                var n = field.Length == 0 ? auto++ : int.Parse(field, System.Globalization.CultureInfo.InvariantCulture);
                value = n < args.Positional.Count ? args.Positional[n] : throw new TemplateError($"str.format(): no positional argument {n}");
            }
            else
            {
                var named = args.Named.FirstOrDefault(kv => kv.Key == field);
                value = named.Key != null ? named.Value : throw new TemplateError($"str.format(): no argument named '{field}'");
            }
            sb.Append(conversion == 'r' ? PyFormat.Repr(value) : PyFormat.Str(value));
        }
        return sb.ToString();
    }
}
