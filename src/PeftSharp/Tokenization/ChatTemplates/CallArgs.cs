namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Evaluated arguments of a call, filter or test: positional, then keyword, as Python binds them.</summary>
internal sealed class CallArgs
{
    public static readonly CallArgs Empty = new([], []);

    public CallArgs(List<object?> positional, List<KeyValuePair<string, object?>> named)
    {
        Positional = positional;
        Named = named;
    }

    public List<object?> Positional { get; }

    public List<KeyValuePair<string, object?>> Named { get; }

    /// <summary>
    /// Binds the arguments to <paramref name="names"/> like a Python signature; absent ones are
    /// <see cref="Missing.Value"/>. Too many positional arguments or an unknown keyword is an error naming the function.
    /// </summary>
    public object?[] Bind(string function, params string[] names)
    {
        if (Positional.Count > names.Length)
        {
            throw new TemplateError($"{function}() takes {names.Length} argument(s) or fewer, got {Positional.Count}");
        }
        var bound = new object?[names.Length];
        Array.Fill(bound, Missing.Value);
        for (var i = 0; i < Positional.Count; i++)
        {
            bound[i] = Positional[i];
        }
        foreach (var (key, value) in Named)
        {
            var at = Array.IndexOf(names, key);
            if (at < 0)
            {
                throw new TemplateError($"{function}() got an unexpected keyword argument '{key}'");
            }
            if (bound[at] is not Missing)
            {
                throw new TemplateError($"{function}() got multiple values for argument '{key}'");
            }
            bound[at] = value;
        }
        return bound;
    }

    /// <summary>The arguments from <paramref name="skip"/> on, for functions taking <c>*args</c> (select, map...).</summary>
    public CallArgs Rest(int skip) => new(Positional.Skip(skip).ToList(), Named);

    public static T Or<T>(object? value, T fallback) => value is Missing ? fallback : (T)value!;

    public static long Int(object? value, long fallback, string what) => value switch
    {
        Missing => fallback,
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new TemplateError($"{what} must be an integer, got {Values.TypeName(value)}"),
    };

    public static string? Str(object? value, string? fallback, string what) => value switch
    {
        Missing => fallback,
        null => null,
        string s => s,
        _ => throw new TemplateError($"{what} must be a string, got {Values.TypeName(value)}"),
    };
}

/// <summary>The <c>loop</c> variable inside a <c>for</c> block.</summary>
internal sealed class LoopInfo(List<object?> items)
{
    private object? _lastChanged = Missing.Value;

    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new Undefined("loop.previtem is undefined on the first iteration"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : new Undefined("loop.nextitem is undefined on the last iteration"),
        "cycle" or "changed" => new BoundMethod(this, name),
        _ => new Undefined($"loop has no attribute '{name}'"),
    };

    public object? Cycle(CallArgs args)
    {
        if (args.Positional.Count == 0)
        {
            throw new TemplateError("loop.cycle() needs one argument or more");
        }
        return args.Positional[Index0 % args.Positional.Count];
    }

    public bool Changed(CallArgs args)
    {
        object? value = args.Positional.ToArray();
        if (_lastChanged is not Missing && Values.Eq(_lastChanged, value))
        {
            return false;
        }
        _lastChanged = value;
        return true;
    }
}
