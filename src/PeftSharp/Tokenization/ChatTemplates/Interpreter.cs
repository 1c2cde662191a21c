using System.Text;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Variables visible at one point: a for-loop iteration, a macro call and a with block each get a child scope.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _variables = [];

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s != null; s = s.Parent)
        {
            if (s._variables.TryGetValue(name, out value))
            {
                return true;
            }
        }
        value = null;
        return false;
    }

    public Scope? Parent { get; } = parent;

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>A <c>{% macro %}</c> bound to the scope it was defined in.</summary>
internal sealed class Macro(MacroNode node, Scope closure, Interpreter interpreter) : ICallable
{
    public string Name => node.Name;

    public object? Call(CallArgs args) => interpreter.CallMacro(node, closure, args);
}

/// <summary>
/// Executes the statement tree: output, if, for (fresh scope per iteration, as Jinja), set, namespace attributes,
/// macros, filter and with blocks, break/continue. Expressions are in Interpreter.Expressions.cs.
/// </summary>
internal sealed partial class Interpreter(SourceMap map)
{
    private const int MaxMacroDepth = 256;

    private StringBuilder _out = new();
    private int _macroDepth;

    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    public string Render(IReadOnlyList<Node> body, Scope scope)
    {
        _out = new StringBuilder();
        ExecBody(body, scope);
        return _out.ToString();
    }

    /// <summary>Gives an error raised below the interpreter the template position of the innermost node that saw it.</summary>
    private PeftException Located(TemplateError error, int pos)
    {
        if (error.RaisedByTemplate)
        {
            return new ChatTemplateException(error.Message) { RaisedByTemplate = true };
        }
        var message = $"{map.Describe(pos)}: {error.Message}";
        return error.Unsupported ? new ConfigException(message) : new ChatTemplateException(message);
    }

    private Flow ExecBody(IReadOnlyList<Node> body, Scope scope)
    {
        foreach (var node in body)
        {
            var flow = Exec(node, scope);
            if (flow != Flow.Normal)
            {
                return flow;
            }
        }
        return Flow.Normal;
    }

    private Flow Exec(Node node, Scope scope)
    {
        try
        {
            return ExecCore(node, scope);
        }
        catch (TemplateError e)
        {
            throw Located(e, node.Pos);
        }
    }

    private Flow ExecCore(Node node, Scope scope)
    {
        switch (node)
        {
            case TextNode text:
                _out.Append(text.Text);
                return Flow.Normal;
            case OutputNode output:
                _out.Append(PyFormat.Str(Eval(output.Value, scope)));
                return Flow.Normal;
            case IfNode ifNode:
                foreach (var branch in ifNode.Branches)
                {
                    if (Values.IsTruthy(Eval(branch.Test, scope)))
                    {
                        return ExecBody(branch.Body, scope);
                    }
                }
                return ifNode.Else != null ? ExecBody(ifNode.Else, scope) : Flow.Normal;
            case ForNode forNode:
                ExecFor(forNode, scope);
                return Flow.Normal;
            case SetNode set:
                Assign(set.Target, Eval(set.Value, scope), scope);
                return Flow.Normal;
            case SetBlockNode setBlock:
                Assign(setBlock.Target, ApplyFilters(setBlock.Filters, Capture(setBlock.Body, scope), scope), scope);
                return Flow.Normal;
            case MacroNode macro:
                scope.Set(macro.Name, new Macro(macro, scope, this));
                return Flow.Normal;
            case LoopControlNode control:
                return control.IsBreak ? Flow.Break : Flow.Continue;
            case FilterBlockNode filterBlock:
                _out.Append(PyFormat.Str(ApplyFilters(filterBlock.Filters, Capture(filterBlock.Body, scope), scope)));
                return Flow.Normal;
            case WithNode with:
                var inner = new Scope(scope);
                var values = with.Assignments.Select(a => Eval(a.Value, scope)).ToList();
                for (var i = 0; i < values.Count; i++)
                {
                    Assign(with.Assignments[i].Target, values[i], inner);
                }
                return ExecBody(with.Body, inner);
            case BlockNode block:
                return ExecBody(block.Body, scope);
            default:
                throw new TemplateError($"cannot execute {node.GetType().Name}");
        }
    }

    private void ExecFor(ForNode node, Scope scope)
    {
        var iterable = Eval(node.Iterable, scope);
        if (iterable == null)
        {
            throw new TemplateError("'NoneType' object is not iterable");
        }
        var items = Values.Iterate(iterable);
        if (node.Filter != null)
        {
            items = items.Where(item =>
            {
                var test = new Scope(scope);
                Assign(node.Target, item, test);
                return Values.IsTruthy(Eval(node.Filter, test));
            }).ToList();
        }
        if (items.Count == 0)
        {
            if (node.Else != null)
            {
                ExecBody(node.Else, scope);
            }
            return;
        }
        var loop = new LoopInfo(items);
        for (var i = 0; i < items.Count; i++)
        {
            // Jinja gives each iteration its own scope: a set inside the body is gone on the next iteration.
            var iteration = new Scope(scope);
            loop.Index0 = i;
            iteration.Set("loop", loop);
            Assign(node.Target, items[i], iteration);
            if (ExecBody(node.Body, iteration) == Flow.Break)
            {
                break;
            }
        }
    }

    private void Assign(Target target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameTarget name:
                scope.Set(name.Name, value);
                break;
            case TupleTarget tuple:
                var items = value is IList<object?> list ? list : Values.Iterate(value);
                if (items.Count != tuple.Items.Count)
                {
                    throw new TemplateError(items.Count < tuple.Items.Count
                        ? $"not enough values to unpack (expected {tuple.Items.Count}, got {items.Count})"
                        : $"too many values to unpack (expected {tuple.Items.Count})");
                }
                for (var i = 0; i < items.Count; i++)
                {
                    Assign(tuple.Items[i], items[i], scope);
                }
                break;
            case AttrTarget attr:
                if (!scope.TryGet(attr.Object, out var obj) || obj is not Namespace ns)
                {
                    throw new TemplateError($"cannot assign attribute '{attr.Attribute}' on '{attr.Object}': only a namespace() object takes attribute assignment");
                }
                ns.Attributes[attr.Attribute] = value;
                break;
        }
    }

    private string Capture(IReadOnlyList<Node> body, Scope scope)
    {
        var saved = _out;
        _out = new StringBuilder();
        try
        {
            ExecBody(body, scope);
            return _out.ToString();
        }
        finally
        {
            _out = saved;
        }
    }

    private object? ApplyFilters(IReadOnlyList<FilterCall> filters, object? value, Scope scope)
    {
        foreach (var filter in filters)
        {
            value = ApplyFilter(filter, value, scope);
        }
        return value;
    }

    private object? ApplyFilter(FilterCall filter, object? value, Scope scope)
    {
        try
        {
            return filter.Function(value, EvalArgs(filter.Args, scope));
        }
        catch (TemplateError e)
        {
            throw Located(e, filter.Pos);
        }
    }

    /// <summary>Binds a macro call's arguments (positional, keyword, then defaults) and renders its body to a string.</summary>
    public object? CallMacro(MacroNode node, Scope closure, CallArgs args)
    {
        if (_macroDepth >= MaxMacroDepth)
        {
            throw new TemplateError($"macro '{node.Name}' nested more than {MaxMacroDepth} calls deep");
        }
        var scope = new Scope(closure);
        for (var i = 0; i < node.Parameters.Count; i++)
        {
            var name = node.Parameters[i];
            var named = args.Named.FindIndex(kv => kv.Key == name);
            if (i < args.Positional.Count)
            {
                if (named >= 0)
                {
                    throw new TemplateError($"macro '{node.Name}' got multiple values for argument '{name}'");
                }
                scope.Set(name, args.Positional[i]);
            }
            else if (named >= 0)
            {
                scope.Set(name, args.Named[named].Value);
            }
            else
            {
                scope.Set(name, node.Defaults[i] is { } fallback ? Eval(fallback, scope) : Undefined.Named(name));
            }
        }
        scope.Set("varargs", args.Positional.Skip(node.Parameters.Count).ToArray());
        var extra = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in args.Named.Where(kv => !node.Parameters.Contains(kv.Key)))
        {
            extra[key] = value;
        }
        scope.Set("kwargs", extra);
        _macroDepth++;
        try
        {
            return Capture(node.Body, scope);
        }
        finally
        {
            _macroDepth--;
        }
    }
}
