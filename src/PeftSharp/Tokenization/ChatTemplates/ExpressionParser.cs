namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Jinja's expression grammar, loosest to tightest: <c>x if c else y</c>, or, and, not, comparisons (chained, in,
/// not in), + -, ~, * / // %, **, unary - +, then primaries with postfix <c>.attr</c>, <c>[key]</c>, <c>[a:b:c]</c>,
/// calls, and filters/tests (<c>|f</c>, <c>is t</c>), which bind tighter than every binary operator.
/// </summary>
internal sealed partial class Parser
{
    private static readonly HashSet<string> s_compareOps = ["==", "!=", "<", "<=", ">", ">="];

    private Expr ParseExpression() => ParseCondExpr();

    /// <summary>Comma-separated expressions; more than one (or a trailing comma) makes a tuple.</summary>
    private Expr ParseTuple(bool withCondExpr, bool explicitParens)
    {
        var pos = Current.Offset;
        var items = new List<Expr>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0)
            {
                if (!Current.IsOperator(","))
                {
                    break;
                }
                Advance();
                isTuple = true;
            }
            if (Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || Current.IsOperator(")") || (items.Count > 0 && Current.IsName("if")))
            {
                break;
            }
            items.Add(withCondExpr ? ParseCondExpr() : ParseOr());
        }
        if (!isTuple)
        {
            if (items.Count == 0)
            {
                if (explicitParens)
                {
                    return new TupleExpr(pos, items);
                }
                throw Error(Current.Offset, $"expected an expression, found {Describe(Current)}");
            }
            return items[0];
        }
        return new TupleExpr(pos, items);
    }

    private Expr ParseCondExpr()
    {
        var pos = Current.Offset;
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            Advance();
            var test = ParseOr();
            Expr? otherwise = null;
            if (Current.IsName("else"))
            {
                Advance();
                otherwise = ParseCondExpr();
            }
            expr = new CondExpr(pos, test, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var pos = Advance().Offset;
            left = new BinaryExpr(pos, "or", left, ParseAnd());
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var pos = Advance().Offset;
            left = new BinaryExpr(pos, "and", left, ParseNot());
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var pos = Advance().Offset;
            return new UnaryExpr(pos, "not", ParseNot());
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var pos = Current.Offset;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && s_compareOps.Contains(Current.Value))
            {
                var op = Advance().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (Current.IsName("in"))
            {
                Advance();
                rest.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Peek(1).IsName("in"))
            {
                Advance();
                Advance();
                rest.Add(("notin", ParseMath1()));
            }
            else
            {
                break;
            }
        }
        return rest.Count == 0 ? first : new CompareExpr(pos, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var op = Advance();
            left = new BinaryExpr(op.Offset, op.Value, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var pos = Current.Offset;
        var items = new List<Expr> { ParseMath2() };
        while (Current.IsOperator("~"))
        {
            Advance();
            items.Add(ParseMath2());
        }
        return items.Count == 1 ? items[0] : new ConcatExpr(pos, items);
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var op = Advance();
            left = new BinaryExpr(op.Offset, op.Value, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Current.IsOperator("**"))
        {
            var op = Advance();
            left = new BinaryExpr(op.Offset, "**", left, ParseUnary(withFilter: true));
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (Current.IsOperator("-") || Current.IsOperator("+"))
        {
            var op = Advance();
            node = new UnaryExpr(op.Offset, op.Value, ParseUnary(withFilter: false));
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var t = Current;
        switch (t.Kind)
        {
            case TokenKind.Name:
                Advance();
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(t.Offset, true),
                    "false" or "False" => new ConstExpr(t.Offset, false),
                    "none" or "None" => new ConstExpr(t.Offset, null),
                    _ => new NameExpr(t.Offset, t.Value),
                };
            case TokenKind.String:
                var text = (string)Advance().Literal!;
                while (Current.Kind == TokenKind.String)
                {
                    text += (string)Advance().Literal!;
                }
                return new ConstExpr(t.Offset, text);
            case TokenKind.Integer or TokenKind.Float:
                Advance();
                return new ConstExpr(t.Offset, t.Literal);
        }
        if (t.IsOperator("("))
        {
            Advance();
            var inner = ParseTuple(withCondExpr: true, explicitParens: true);
            Expect(TokenKind.Operator, ")", "')'");
            return inner;
        }
        if (t.IsOperator("["))
        {
            Advance();
            var items = new List<Expr>();
            while (!Current.IsOperator("]"))
            {
                if (items.Count > 0)
                {
                    Expect(TokenKind.Operator, ",", "',' or ']' in a list");
                    if (Current.IsOperator("]"))
                    {
                        break;
                    }
                }
                items.Add(ParseExpression());
            }
            Advance();
            return new ListExpr(t.Offset, items);
        }
        if (t.IsOperator("{"))
        {
            Advance();
            var pairs = new List<(Expr, Expr)>();
            while (!Current.IsOperator("}"))
            {
                if (pairs.Count > 0)
                {
                    Expect(TokenKind.Operator, ",", "',' or '}' in a dict");
                    if (Current.IsOperator("}"))
                    {
                        break;
                    }
                }
                var key = ParseExpression();
                Expect(TokenKind.Operator, ":", "':' after a dict key");
                pairs.Add((key, ParseExpression()));
            }
            Advance();
            return new DictExpr(t.Offset, pairs);
        }
        throw Error(t.Offset, $"expected an expression, found {Describe(t)}");
    }
}
