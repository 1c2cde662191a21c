namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Jinja's tests (<c>x is defined</c>, <c>x is not none</c>, <c>x is divisibleby 3</c>, ...).</summary>
internal static class JinjaTests
{
    private static readonly Dictionary<string, TestFunction> s_tests = new()
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v == null,
        ["string"] = (v, _) => v is string,
        ["mapping"] = (v, _) => v is IDictionary<string, object?>,
        // Python's iter() and len()+__getitem__ succeed on Jinja's Undefined too.
        ["iterable"] = (v, _) => v is string or IList<object?> or IDictionary<string, object?> or Undefined,
        ["sequence"] = (v, _) => v is string or IList<object?> or IDictionary<string, object?> or Undefined,
        // bool is a subclass of int in Python, so True is a number (but not an "integer" for Jinja).
        ["number"] = (v, _) => v is long or double or bool,
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["callable"] = (v, _) => v is ICallable or BoundMethod,
        ["odd"] = (v, _) => Integer(v, "odd") % 2 != 0,
        ["even"] = (v, _) => Integer(v, "even") % 2 == 0,
        ["divisibleby"] = (v, a) => Integer(v, "divisibleby") % Integer(One(a, "divisibleby"), "divisibleby") == 0,
        ["lower"] = (v, _) => v is string s && s == s.ToLowerInvariant(),
        ["upper"] = (v, _) => v is string s && s == s.ToUpperInvariant(),
        ["in"] = (v, a) => Values.Contains(One(a, "in"), v),
        ["sameas"] = (v, a) => SameAs(v, One(a, "sameas")),
        ["escaped"] = (_, _) => false,
    };

    static JinjaTests()
    {
        foreach (var (names, op) in new (string[], string)[]
        {
            (["eq", "equalto", "=="], "=="), (["ne", "!="], "!="), (["lt", "lessthan", "<"], "<"),
            (["le", "<="], "<="), (["gt", "greaterthan", ">"], ">"), (["ge", ">="], ">="),
        })
        {
            foreach (var name in names)
            {
                s_tests[name] = (v, a) => Operators.Compare(op, v, One(a, name));
            }
        }
    }

    public static bool TryGet(string name, out TestFunction test) => s_tests.TryGetValue(name, out test!);

    private static object? One(CallArgs args, string test)
    {
        if (args.Positional.Count != 1 || args.Named.Count != 0)
        {
            throw new TemplateError($"test '{test}' takes exactly one argument");
        }
        return args.Positional[0];
    }

    private static long Integer(object? v, string test) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d when d == Math.Floor(d) => (long)d,
        _ => throw new TemplateError($"test '{test}' needs an integer, got {Values.TypeName(v)}"),
    };

    /// <summary>Python <c>is</c>: identity for objects, value for the interned singletons None/True/False.</summary>
    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y,
        (string x, string y) => ReferenceEquals(x, y) || x == y,
        _ => ReferenceEquals(a, b),
    };
}
