namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Jinja's filters over sequences and mappings (list, join, map, select, sort, dictsort, ...).</summary>
internal static partial class JinjaFilters
{
    private static Dictionary<string, FilterFunction> SequenceFilters() => new()
    {
        ["list"] = (v, a) => NoArgs(a, "list", Values.Iterate(v)),
        ["first"] = (v, a) => NoArgs(a, "first", Values.Iterate(v) is { Count: > 0 } l ? l[0] : new Undefined("first of an empty sequence")),
        ["last"] = (v, a) => NoArgs(a, "last", Values.Iterate(v) is { Count: > 0 } l ? l[^1] : new Undefined("last of an empty sequence")),
        ["reverse"] = (v, a) => NoArgs(a, "reverse", v is string s ? string.Concat(PyStr.Elements(s).Reverse()) : Enumerable.Reverse(Values.Iterate(v)).ToList()),
        ["items"] = (v, a) => NoArgs(a, "items", v switch
        {
            Undefined => new List<object?>(),
            IDictionary<string, object?> d => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
            _ => throw new TemplateError($"items filter needs a mapping, got {Values.TypeName(v)}"),
        }),
        ["join"] = Join,
        ["map"] = Map,
        ["select"] = (v, a) => Select(v, a, "select", keep: true),
        ["reject"] = (v, a) => Select(v, a, "reject", keep: false),
        ["selectattr"] = (v, a) => SelectAttr(v, a, "selectattr", keep: true),
        ["rejectattr"] = (v, a) => SelectAttr(v, a, "rejectattr", keep: false),
        ["unique"] = Unique,
        ["sort"] = Sort,
        ["dictsort"] = DictSort,
        ["sum"] = Sum,
        ["min"] = (v, a) => MinMax(v, a, "min"),
        ["max"] = (v, a) => MinMax(v, a, "max"),
        ["attr"] = (v, a) => Methods.GetAttr(v, CallArgs.Str(a.Bind("attr", "name")[0], "", "name") ?? ""),
    };

    /// <summary>Jinja's <c>make_attrgetter</c>: "a.b.0" looks up a, then b, then item 0.</summary>
    private static Func<object?, object?> AttrGetter(object? attribute, string filter)
    {
        var parts = attribute switch
        {
            string s => s.Split('.').Select(p => long.TryParse(p, out var n) ? (object?)n : p).ToArray(),
            long n => [n],
            _ => throw new TemplateError($"{filter}: attribute must be a string or an integer, got {Values.TypeName(attribute)}"),
        };
        return item =>
        {
            foreach (var part in parts)
            {
                item = Methods.GetItem(item, part);
            }
            return item;
        };
    }

    private static object? Join(object? value, CallArgs args)
    {
        var a = args.Bind("join", "d", "attribute");
        var items = Values.Iterate(value);
        if (a[1] is not (Missing or null))
        {
            items = items.Select(AttrGetter(a[1], "join")).ToList();
        }
        return string.Join(a[0] is Missing ? "" : PyFormat.Str(a[0]), items.Select(PyFormat.Str));
    }

    /// <summary><c>map(attribute='x', default=...)</c> or <c>map('filter', args...)</c>.</summary>
    private static object? Map(object? value, CallArgs args)
    {
        var items = Values.Iterate(value);
        if (args.Positional.Count == 0)
        {
            var a = args.Bind("map", "attribute", "default");
            if (a[0] is Missing)
            {
                throw new TemplateError("map needs a filter name or attribute=");
            }
            var get = AttrGetter(a[0], "map");
            return items.Select(item => get(item) is var found && found is Undefined && a[1] is not Missing ? a[1] : found).ToList();
        }
        var name = args.Positional[0] as string ?? throw new TemplateError("map: the filter name must be a string");
        if (!TryGet(name, out var filter))
        {
            throw TemplateError.NotSupported($"filter '{name}' (in map)");
        }
        var rest = args.Rest(1);
        return items.Select(item => filter(item, rest)).ToList();
    }

    private static Func<object?, bool> TestFrom(CallArgs args, int skip, string filter)
    {
        if (args.Positional.Count <= skip)
        {
            return Values.IsTruthy;
        }
        var name = args.Positional[skip] as string ?? throw new TemplateError($"{filter}: the test name must be a string");
        if (!JinjaTests.TryGet(name, out var test))
        {
            throw TemplateError.NotSupported($"test '{name}' (in {filter})");
        }
        var rest = args.Rest(skip + 1);
        return item => test(item, rest);
    }

    private static object? Select(object? value, CallArgs args, string filter, bool keep)
    {
        var test = TestFrom(args, 0, filter);
        return Values.Iterate(value).Where(item => test(item) == keep).ToList();
    }

    private static object? SelectAttr(object? value, CallArgs args, string filter, bool keep)
    {
        if (args.Positional.Count == 0)
        {
            throw new TemplateError($"{filter} needs an attribute name");
        }
        var get = AttrGetter(args.Positional[0], filter);
        var test = TestFrom(args, 1, filter);
        return Values.Iterate(value).Where(item => test(get(item)) == keep).ToList();
    }

    private static object? CaseKey(object? v, bool caseSensitive) => !caseSensitive && v is string s ? s.ToLowerInvariant() : v;

    private static object? Unique(object? value, CallArgs args)
    {
        var a = args.Bind("unique", "case_sensitive", "attribute");
        var caseSensitive = a[0] is not Missing && Values.IsTruthy(a[0]);
        var get = a[1] is Missing or null ? (x => x) : AttrGetter(a[1], "unique");
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var item in Values.Iterate(value))
        {
            var key = CaseKey(get(item), caseSensitive);
            if (!seen.Any(s => Values.Eq(s, key)))
            {
                seen.Add(key);
                result.Add(item);
            }
        }
        return result;
    }

    private static IComparer<object?> Comparer(bool caseSensitive, Func<object?, object?> key) =>
        Comparer<object?>.Create((x, y) => Values.Compare(CaseKey(key(x), caseSensitive), CaseKey(key(y), caseSensitive)));

    private static object? Sort(object? value, CallArgs args)
    {
        var a = args.Bind("sort", "reverse", "case_sensitive", "attribute");
        var reverse = a[0] is not Missing && Values.IsTruthy(a[0]);
        var caseSensitive = a[1] is not Missing && Values.IsTruthy(a[1]);
        var get = a[2] is Missing or null ? (x => x) : AttrGetter(a[2], "sort");
        var items = Values.Iterate(value);
        var comparer = Comparer(caseSensitive, get);
        return (reverse ? items.OrderByDescending(x => x, comparer) : items.OrderBy(x => x, comparer)).ToList();
    }

    private static object? DictSort(object? value, CallArgs args)
    {
        var a = args.Bind("dictsort", "case_sensitive", "by", "reverse");
        var caseSensitive = a[0] is not Missing && Values.IsTruthy(a[0]);
        var by = CallArgs.Str(a[1], "key", "by");
        var index = by switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw new TemplateError("dictsort: 'by' must be 'key' or 'value'"),
        };
        var reverse = a[2] is not Missing && Values.IsTruthy(a[2]);
        if (value is not IDictionary<string, object?> d)
        {
            throw new TemplateError($"dictsort needs a mapping, got {Values.TypeName(value)}");
        }
        var pairs = d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList();
        var comparer = Comparer(caseSensitive, p => ((object?[])p!)[index]);
        return (reverse ? pairs.OrderByDescending(x => x, comparer) : pairs.OrderBy(x => x, comparer)).ToList();
    }

    private static object? Sum(object? value, CallArgs args)
    {
        var a = args.Bind("sum", "attribute", "start");
        var get = a[0] is Missing or null ? (x => x) : AttrGetter(a[0], "sum");
        var total = a[1] is Missing ? 0L : a[1];
        foreach (var item in Values.Iterate(value))
        {
            total = Operators.Binary("+", total, get(item));
        }
        return total;
    }

    private static object? MinMax(object? value, CallArgs args, string name)
    {
        var a = args.Bind(name, "case_sensitive", "attribute");
        var caseSensitive = a[0] is not Missing && Values.IsTruthy(a[0]);
        var get = a[1] is Missing or null ? (x => x) : AttrGetter(a[1], name);
        var items = Values.Iterate(value);
        if (items.Count == 0)
        {
            return new Undefined($"{name} of an empty sequence");
        }
        var comparer = Comparer(caseSensitive, get);
        var best = items[0];
        foreach (var item in items.Skip(1))
        {
            var c = comparer.Compare(item, best);
            if (name == "min" ? c < 0 : c > 0)
            {
                best = item;
            }
        }
        return best;
    }
}
