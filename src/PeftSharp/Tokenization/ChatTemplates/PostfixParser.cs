namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// The postfix part of Jinja's expression grammar: <c>.attr</c>, <c>.0</c>, <c>[key]</c>, <c>[a:b:c]</c>, call
/// arguments, <c>|filter(args)</c> and <c>is [not] test args</c>. Filters and tests are resolved here, so an unknown
/// one fails when the template is parsed.
/// </summary>
internal sealed partial class Parser
{
    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOperator("."))
            {
                Advance();
                var member = Advance();
                node = member.Kind switch
                {
                    TokenKind.Name => new AttrExpr(member.Offset, node, member.Value),
                    TokenKind.Integer => new ItemExpr(t.Offset, node, new ConstExpr(member.Offset, member.Literal)),
                    _ => throw Error(member.Offset, $"expected an attribute name after '.', found {Describe(member)}"),
                };
            }
            else if (t.IsOperator("["))
            {
                Advance();
                var key = ParseSubscript();
                Expect(TokenKind.Operator, "]", "']'");
                node = new ItemExpr(t.Offset, node, key);
            }
            else if (t.IsOperator("("))
            {
                node = new CallExpr(node.Pos, node, ParseCallArgs());
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript()
    {
        var pos = Current.Offset;
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            start = ParseExpression();
            if (!Current.IsOperator(":"))
            {
                return start;
            }
        }
        Advance();
        Expr? stop = null;
        Expr? step = null;
        if (!Current.IsOperator("]") && !Current.IsOperator(":"))
        {
            stop = ParseExpression();
        }
        if (Current.IsOperator(":"))
        {
            Advance();
            if (!Current.IsOperator("]"))
            {
                step = ParseExpression();
            }
        }
        return new SliceExpr(pos, start, stop, step);
    }

    private ArgList ParseCallArgs()
    {
        Expect(TokenKind.Operator, "(", "'('");
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + named.Count > 0)
            {
                Expect(TokenKind.Operator, ",", "',' or ')' in the argument list");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }
            if (Current.IsOperator("*") || Current.IsOperator("**"))
            {
                throw Error(Current.Offset, "unsupported argument unpacking ('*args' / '**kwargs') in a call");
            }
            if (Current.Kind == TokenKind.Name && Peek(1).IsOperator("="))
            {
                var name = Advance().Value;
                Advance();
                named.Add((name, ParseExpression()));
            }
            else
            {
                if (named.Count > 0)
                {
                    throw Error(Current.Offset, "positional argument follows keyword argument");
                }
                positional.Add(ParseExpression());
            }
        }
        Advance();
        return new ArgList(positional, named);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|"))
            {
                Advance();
                var filter = ParseFilterCall();
                node = new FilterExpr(filter.Pos, node, filter);
            }
            else if (Current.IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                node = new CallExpr(node.Pos, node, ParseCallArgs());
            }
            else
            {
                return node;
            }
        }
    }

    private FilterCall ParseFilterCall()
    {
        var name = Expect(TokenKind.Name, null, "a filter name");
        if (!JinjaFilters.TryGet(name.Value, out var function))
        {
            throw Error(name.Offset, $"unsupported filter '{name.Value}'");
        }
        var args = Current.IsOperator("(") ? ParseCallArgs() : ArgList.None;
        return new FilterCall(name.Offset, name.Value, args, function);
    }

    /// <summary>Filters of <c>{% filter f|g %}</c> (first without '|') or <c>{% set x | f %}</c> (each after '|').</summary>
    private List<FilterCall> ParseFilterChain(bool startInline)
    {
        var filters = new List<FilterCall>();
        if (startInline)
        {
            filters.Add(ParseFilterCall());
        }
        while (Current.IsOperator("|"))
        {
            Advance();
            filters.Add(ParseFilterCall());
        }
        return filters;
    }

    private Expr ParseTest(Expr node)
    {
        var pos = Advance().Offset;
        var negated = false;
        if (Current.IsName("not"))
        {
            Advance();
            negated = true;
        }
        var name = Expect(TokenKind.Name, null, "a test name after 'is'");
        if (!JinjaTests.TryGet(name.Value, out var function))
        {
            throw Error(name.Offset, $"unsupported test '{name.Value}'");
        }
        var args = ArgList.None;
        if (Current.IsOperator("("))
        {
            args = ParseCallArgs();
        }
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and") && !Current.IsName("if"))
        {
            // Jinja lets a test take one argument without parentheses: `x is divisibleby 3`, `x is sameas false`.
            args = new ArgList([ParsePostfix(ParsePrimary())], []);
        }
        return new TestExpr(pos, node, name.Value, negated, args, function);
    }
}
