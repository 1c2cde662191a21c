namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// Builds the statement tree of a template (if/elif/else, for/else, set, block set, macro, filter, with, break,
/// continue, transformers' generation block). Expressions are in ExpressionParser.cs and PostfixParser.cs. Unknown tags, filters and
/// tests are a <see cref="ConfigException"/> naming them and their line and column.
/// </summary>
internal sealed partial class Parser
{
    private readonly List<Token> _tokens;
    private readonly SourceMap _map;
    private int _index;
    private int _loopDepth;

    private Parser(List<Token> tokens, SourceMap map)
    {
        _tokens = tokens;
        _map = map;
    }

    public static IReadOnlyList<Node> Parse(List<Token> tokens, SourceMap map) =>
        new Parser(tokens, map).ParseBody([], "", 0, out _);

    private Token Current => _tokens[_index];

    private Token Peek(int ahead) => _tokens[Math.Min(_index + ahead, _tokens.Count - 1)];

    private Token Advance() => _tokens[_index++];

    private ConfigException Error(int offset, string message) => new($"{_map.Describe(offset)}: {message}");

    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.BlockEnd or TokenKind.VariableEnd => $"end of tag '{t.Value}'",
        _ => $"'{t.Value}'",
    };

    private Token Expect(TokenKind kind, string? value, string what)
    {
        var t = Current;
        if (t.Kind != kind || (value != null && t.Value != value))
        {
            throw Error(t.Offset, $"expected {what}, found {Describe(t)}");
        }
        return Advance();
    }

    private void ExpectBlockEnd(string tag) => Expect(TokenKind.BlockEnd, null, $"'%}}' to close '{{% {tag} %}}'");

    /// <summary>Parses nodes until a block tag named in <paramref name="endTags"/>; the stream is left after that tag's name.</summary>
    private List<Node> ParseBody(string[] endTags, string opener, int openerPos, out string endTag)
    {
        var nodes = new List<Node>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    if (endTags.Length > 0)
                    {
                        throw Error(openerPos, $"'{{% {opener} %}}' is never closed; expected '{{% {endTags[^1]} %}}'");
                    }
                    endTag = "";
                    return nodes;
                case TokenKind.Text:
                    nodes.Add(new TextNode(t.Offset, t.Value));
                    Advance();
                    break;
                case TokenKind.VariableBegin:
                    Advance();
                    var value = ParseTuple(withCondExpr: true, explicitParens: false);
                    Expect(TokenKind.VariableEnd, null, "'}}'");
                    nodes.Add(new OutputNode(t.Offset, value));
                    break;
                case TokenKind.BlockBegin:
                    var name = Peek(1);
                    if (name.Kind != TokenKind.Name)
                    {
                        throw Error(name.Offset, $"expected a tag name after '{{%', found {Describe(name)}");
                    }
                    Advance();
                    Advance();
                    if (endTags.Contains(name.Value))
                    {
                        endTag = name.Value;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(name));
                    break;
                default:
                    throw Error(t.Offset, $"unexpected {Describe(t)}");
            }
        }
    }

    private Node ParseStatement(Token tag)
    {
        var pos = tag.Offset;
        switch (tag.Value)
        {
            case "if":
                return ParseIf(pos);
            case "for":
                return ParseFor(pos);
            case "set":
                return ParseSet(pos);
            case "macro":
                return ParseMacro(pos);
            case "break" or "continue":
                if (_loopDepth == 0)
                {
                    throw Error(pos, $"'{{% {tag.Value} %}}' outside a for loop");
                }
                ExpectBlockEnd(tag.Value);
                return new LoopControlNode(pos, tag.Value == "break");
            case "filter":
                var filters = ParseFilterChain(startInline: true);
                ExpectBlockEnd("filter");
                var filtered = ParseBody(["endfilter"], "filter", pos, out _);
                ExpectBlockEnd("endfilter");
                return new FilterBlockNode(pos, filters, filtered);
            case "with":
                return ParseWith(pos);
            case "generation":
                ExpectBlockEnd("generation");
                var generated = ParseBody(["endgeneration"], "generation", pos, out _);
                ExpectBlockEnd("endgeneration");
                return new BlockNode(pos, generated);
            case "elif" or "else" or "endif" or "endfor" or "endset" or "endmacro" or "endfilter" or "endwith" or "endgeneration":
                throw Error(pos, $"unexpected '{{% {tag.Value} %}}' with no matching opening tag");
            default:
                throw Error(pos, $"unsupported tag '{{% {tag.Value} %}}'");
        }
    }

    private IfNode ParseIf(int pos)
    {
        var branches = new List<IfBranch>();
        var test = ParseExpression();
        ExpectBlockEnd("if");
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], "if", pos, out var end);
            branches.Add(new IfBranch(test, body));
            if (end == "elif")
            {
                test = ParseExpression();
                ExpectBlockEnd("elif");
                continue;
            }
            ExpectBlockEnd(end);
            if (end == "endif")
            {
                return new IfNode(pos, branches, null);
            }
            var otherwise = ParseBody(["endif"], "if", pos, out _);
            ExpectBlockEnd("endif");
            return new IfNode(pos, branches, otherwise);
        }
    }

    private ForNode ParseFor(int pos)
    {
        var target = ParseAssignTarget(allowAttribute: false);
        Expect(TokenKind.Name, "in", "'in' in the for tag");
        var iterable = ParseTuple(withCondExpr: false, explicitParens: false);
        Expr? filter = null;
        if (Current.IsName("if"))
        {
            Advance();
            filter = ParseExpression();
        }
        if (Current.IsName("recursive"))
        {
            throw Error(Current.Offset, "unsupported recursive for loop ('{% for ... recursive %}')");
        }
        ExpectBlockEnd("for");
        _loopDepth++;
        var body = ParseBody(["else", "endfor"], "for", pos, out var end);
        _loopDepth--;
        ExpectBlockEnd(end);
        if (end == "endfor")
        {
            return new ForNode(pos, target, iterable, filter, body, null);
        }
        var otherwise = ParseBody(["endfor"], "for", pos, out _);
        ExpectBlockEnd("endfor");
        return new ForNode(pos, target, iterable, filter, body, otherwise);
    }

    private Node ParseSet(int pos)
    {
        var target = ParseAssignTarget(allowAttribute: true);
        if (Current.IsOperator("="))
        {
            Advance();
            var value = ParseTuple(withCondExpr: true, explicitParens: false);
            ExpectBlockEnd("set");
            return new SetNode(pos, target, value);
        }
        if (target is TupleTarget)
        {
            throw Error(target.Pos, "a block set ('{% set x %}...{% endset %}') assigns one name");
        }
        var filters = ParseFilterChain(startInline: false);
        ExpectBlockEnd("set");
        var body = ParseBody(["endset"], "set", pos, out _);
        ExpectBlockEnd("endset");
        return new SetBlockNode(pos, target, filters, body);
    }

    private MacroNode ParseMacro(int pos)
    {
        var name = Expect(TokenKind.Name, null, "the macro's name").Value;
        Expect(TokenKind.Operator, "(", "'(' after the macro name");
        var parameters = new List<string>();
        var defaults = new List<Expr?>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0)
            {
                Expect(TokenKind.Operator, ",", "',' between macro parameters");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }
            parameters.Add(Expect(TokenKind.Name, null, "a parameter name").Value);
            Expr? fallback = null;
            if (Current.IsOperator("="))
            {
                Advance();
                fallback = ParseExpression();
            }
            else if (defaults.Count > 0 && defaults[^1] != null)
            {
                throw Error(Current.Offset, $"macro '{name}': parameter '{parameters[^1]}' without a default follows one with a default");
            }
            defaults.Add(fallback);
        }
        Advance();
        ExpectBlockEnd("macro");
        var savedDepth = _loopDepth;
        _loopDepth = 0;
        var body = ParseBody(["endmacro"], "macro", pos, out _);
        _loopDepth = savedDepth;
        ExpectBlockEnd("endmacro");
        return new MacroNode(pos, name, parameters, defaults, body);
    }

    private WithNode ParseWith(int pos)
    {
        var assignments = new List<(Target, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0)
            {
                Expect(TokenKind.Operator, ",", "',' between with assignments");
            }
            var target = ParseAssignTarget(allowAttribute: false);
            Expect(TokenKind.Operator, "=", "'=' in the with tag");
            assignments.Add((target, ParseExpression()));
        }
        ExpectBlockEnd("with");
        var body = ParseBody(["endwith"], "with", pos, out _);
        ExpectBlockEnd("endwith");
        return new WithNode(pos, assignments, body);
    }

    /// <summary>A name, <c>a, b</c> (for unpacking) or, for set, <c>ns.attr</c>.</summary>
    private Target ParseAssignTarget(bool allowAttribute)
    {
        var first = Expect(TokenKind.Name, null, "a variable name");
        if (Current.IsOperator("."))
        {
            if (!allowAttribute)
            {
                throw Error(Current.Offset, "only 'set' can assign an attribute (ns.attr)");
            }
            Advance();
            var attribute = Expect(TokenKind.Name, null, "an attribute name");
            return new AttrTarget(first.Offset, first.Value, attribute.Value);
        }
        var names = new List<Target> { new NameTarget(first.Offset, first.Value) };
        var isTuple = false;
        while (Current.IsOperator(","))
        {
            Advance();
            isTuple = true;
            if (Current.Kind != TokenKind.Name || Current.IsName("in"))
            {
                break;
            }
            var next = Advance();
            names.Add(new NameTarget(next.Offset, next.Value));
        }
        return isTuple ? new TupleTarget(first.Offset, names) : names[0];
    }
}
