namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Python's binary and unary operators on template values (int arithmetic stays integral, / gives float).</summary>
internal static class Operators
{
    public static bool Compare(string op, object? a, object? b) => op switch
    {
        "==" => Values.Eq(a, b),
        "!=" => !Values.Eq(a, b),
        "<" => Values.Compare(a, b, op) < 0,
        "<=" => Values.Compare(a, b, op) <= 0,
        ">" => Values.Compare(a, b, op) > 0,
        ">=" => Values.Compare(a, b, op) >= 0,
        "in" => Values.Contains(b, a),
        "notin" => !Values.Contains(b, a),
        _ => throw new TemplateError($"unknown comparison '{op}'"),
    };

    public static object? Binary(string op, object? a, object? b)
    {
        if (a is Undefined ua)
        {
            throw new TemplateError(ua.Describe());
        }
        if (b is Undefined ub)
        {
            throw new TemplateError(ub.Describe());
        }
        try
        {
            return op switch
            {
                "+" => Add(a, b),
                "-" => Numeric(op, a, b, (x, y) => checked(x - y), (x, y) => x - y),
                "*" => Multiply(a, b),
                "/" => Divide(a, b),
                "//" => Numeric(op, a, b, FloorDiv, (x, y) => Math.Floor(NonZero(x, y) / y)),
                "%" when a is string format => PercentFormat.Format(format, b),
                "%" => Numeric(op, a, b, Mod, (x, y) => x - y * Math.Floor(NonZero(x, y) / y)),
                "**" => Power(a, b),
                _ => throw new TemplateError($"unknown operator '{op}'"),
            };
        }
        catch (OverflowException)
        {
            throw new TemplateError($"integer overflow in '{op}'");
        }
    }

    public static object? Negate(object? v) => v switch
    {
        long l => (object?)checked(-l),
        bool b => b ? -1L : 0L,
        double d => -d,
        Undefined u => throw new TemplateError(u.Describe()),
        _ => throw new TemplateError($"bad operand type for unary -: '{Values.TypeName(v)}'"),
    };

    public static object? Plus(object? v) => v switch
    {
        long or double => v,
        bool b => b ? 1L : 0L,
        Undefined u => throw new TemplateError(u.Describe()),
        _ => throw new TemplateError($"bad operand type for unary +: '{Values.TypeName(v)}'"),
    };

    private static TemplateError Unsupported(string op, object? a, object? b) =>
        new($"unsupported operand type(s) for {op}: '{Values.TypeName(a)}' and '{Values.TypeName(b)}'");

    private static object? Numeric(string op, object? a, object? b, Func<long, long, long> ints, Func<double, double, double> floats)
    {
        if (!Values.IsNumber(a) || !Values.IsNumber(b))
        {
            throw Unsupported(op, a, b);
        }
        if (a is double || b is double)
        {
            return floats(Values.ToDouble(a), Values.ToDouble(b));
        }
        return ints(AsLong(a), AsLong(b));
    }

    private static long AsLong(object? v) => v is bool b ? (b ? 1 : 0) : (long)v!;

    private static object? Add(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => x + y,
        (object?[] x, object?[] y) => x.Concat(y).ToArray(),
        (IList<object?> x, IList<object?> y) when !Values.IsTuple(x) && !Values.IsTuple(y) => x.Concat(y).ToList(),
        _ when Values.IsNumber(a) && Values.IsNumber(b) => Numeric("+", a, b, (x, y) => checked(x + y), (x, y) => x + y),
        (string, _) => throw new TemplateError($"can only concatenate str (not \"{Values.TypeName(b)}\") to str"),
        _ => throw Unsupported("+", a, b),
    };

    private static object? Multiply(object? a, object? b)
    {
        if (Values.IsNumber(a) && Values.IsNumber(b))
        {
            return Numeric("*", a, b, (x, y) => checked(x * y), (x, y) => x * y);
        }
        var (sequence, count) = a is long or bool ? (b, a) : (a, b);
        if (count is not (long or bool))
        {
            throw Unsupported("*", a, b);
        }
        var n = Math.Max(0, AsLong(count));
        return sequence switch
        {
            string s => string.Concat(Enumerable.Repeat(s, (int)n)),
            object?[] t => Enumerable.Repeat(t, (int)n).SelectMany(x => x).ToArray(),
            IList<object?> l => Enumerable.Repeat(l, (int)n).SelectMany(x => x).ToList(),
            _ => throw Unsupported("*", a, b),
        };
    }

    private static object? Divide(object? a, object? b)
    {
        if (!Values.IsNumber(a) || !Values.IsNumber(b))
        {
            throw Unsupported("/", a, b);
        }
        var x = Values.ToDouble(a);
        var y = Values.ToDouble(b);
        return NonZero(x, y) / y;
    }

    private static double NonZero(double x, double y) => y == 0 ? throw new TemplateError("division by zero") : x;

    private static long FloorDiv(long x, long y)
    {
        if (y == 0)
        {
            throw new TemplateError("integer division or modulo by zero");
        }
        var q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static long Mod(long x, long y)
    {
        if (y == 0)
        {
            throw new TemplateError("integer division or modulo by zero");
        }
        var r = x % y;
        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
    }

    private static object? Power(object? a, object? b)
    {
        if (!Values.IsNumber(a) || !Values.IsNumber(b))
        {
            throw Unsupported("**", a, b);
        }
        if (a is double || b is double || AsLong(b) < 0)
        {
            return Math.Pow(Values.ToDouble(a), Values.ToDouble(b));
        }
        long result = 1;
        var bas = AsLong(a);
        for (var e = AsLong(b); e > 0; e >>= 1)
        {
            if ((e & 1) == 1)
            {
                result = checked(result * bas);
            }
            if (e > 1)
            {
                bas = checked(bas * bas);
            }
        }
        return result;
    }
}
