namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>Expression evaluation: names, literals, attribute/item access, calls, filters, tests and operators.</summary>
internal sealed partial class Interpreter
{
    /// <summary>Jinja globals this engine does not provide; calling one is reported as unsupported, not as undefined.</summary>
    private static readonly HashSet<string> s_unsupportedGlobals = ["lipsum", "cycler", "joiner"];

    private object? Eval(Expr expr, Scope scope)
    {
        try
        {
            return EvalCore(expr, scope);
        }
        catch (TemplateError e)
        {
            throw Located(e, expr.Pos);
        }
    }

    private object? EvalCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var value) ? value : Undefined.Named(n.Name);
            case ListExpr list:
                return list.Items.Select(x => Eval(x, scope)).ToList();
            case TupleExpr tuple:
                return tuple.Items.Select(x => Eval(x, scope)).ToArray();
            case DictExpr dict:
                var result = new OrderedDictionary<string, object?>();
                foreach (var (k, v) in dict.Items)
                {
                    var key = Eval(k, scope);
                    result[key as string ?? PyFormat.Str(key)] = Eval(v, scope);
                }
                return result;
            case AttrExpr attr:
                return Methods.GetAttr(Eval(attr.Object, scope), attr.Name);
            case ItemExpr item:
                var obj = Eval(item.Object, scope);
                return Methods.GetItem(obj, item.Key is SliceExpr slice ? EvalSlice(slice, scope) : Eval(item.Key, scope));
            case CallExpr call:
                return EvalCall(call, scope);
            case FilterExpr filter:
                return ApplyFilter(filter.Filter, Eval(filter.Value, scope), scope);
            case TestExpr test:
                return test.Function(Eval(test.Value, scope), EvalArgs(test.Args, scope)) != test.Negated;
            case UnaryExpr unary:
                var operand = Eval(unary.Operand, scope);
                return unary.Op switch
                {
                    "not" => !Values.IsTruthy(operand),
                    "-" => Operators.Negate(operand),
                    _ => Operators.Plus(operand),
                };
            case BinaryExpr { Op: "and" } and:
                var left = Eval(and.Left, scope);
                return Values.IsTruthy(left) ? Eval(and.Right, scope) : left;
            case BinaryExpr { Op: "or" } or:
                var first = Eval(or.Left, scope);
                return Values.IsTruthy(first) ? first : Eval(or.Right, scope);
            case BinaryExpr binary:
                var a = Eval(binary.Left, scope);
                return Operators.Binary(binary.Op, a, Eval(binary.Right, scope));
            case ConcatExpr concat:
                return string.Concat(concat.Items.Select(x => PyFormat.Str(Eval(x, scope))));
            case CompareExpr compare:
                var current = Eval(compare.First, scope);
                foreach (var (op, operandExpr) in compare.Rest)
                {
                    var next = Eval(operandExpr, scope);
                    if (!Operators.Compare(op, current, next))
                    {
                        return false;
                    }
                    current = next;
                }
                return true;
            case CondExpr cond:
                if (Values.IsTruthy(Eval(cond.Test, scope)))
                {
                    return Eval(cond.Then, scope);
                }
                return cond.Else != null ? Eval(cond.Else, scope) : new Undefined("the condition was false and there is no else");
            default:
                throw new TemplateError($"cannot evaluate {expr.GetType().Name}");
        }
    }

    private SliceValue EvalSlice(SliceExpr slice, Scope scope)
    {
        long? Bound(Expr? e, string what)
        {
            if (e == null)
            {
                return null;
            }
            return Eval(e, scope) switch
            {
                null => null,
                long l => l,
                bool b => b ? 1 : 0,
                var other => throw new TemplateError($"slice {what} must be an integer or none, got {Values.TypeName(other)}"),
            };
        }
        return new SliceValue(Bound(slice.Start, "start"), Bound(slice.Stop, "stop"), Bound(slice.Step, "step"));
    }

    private CallArgs EvalArgs(ArgList args, Scope scope)
    {
        if (args.Positional.Count == 0 && args.Named.Count == 0)
        {
            return CallArgs.Empty;
        }
        return new CallArgs(
            args.Positional.Select(x => Eval(x, scope)).ToList(),
            args.Named.Select(kv => new KeyValuePair<string, object?>(kv.Name, Eval(kv.Value, scope))).ToList());
    }

    private object? EvalCall(CallExpr call, Scope scope)
    {
        object? callee;
        if (call.Callee is AttrExpr member)
        {
            var target = Eval(member.Object, scope);
            callee = Methods.GetAttr(target, member.Name);
            if (callee is Undefined && target is string or IList<object?> or IDictionary<string, object?>)
            {
                throw TemplateError.NotSupported($"method '{Values.TypeName(target)}.{member.Name}()'");
            }
        }
        else
        {
            callee = Eval(call.Callee, scope);
        }
        var args = EvalArgs(call.Args, scope);
        return callee switch
        {
            BoundMethod method => Methods.Invoke(method, args),
            ICallable function => function.Call(args),
            Undefined when call.Callee is NameExpr name && s_unsupportedGlobals.Contains(name.Name) =>
                throw TemplateError.NotSupported($"function '{name.Name}()'"),
            Undefined undefined => throw new TemplateError(undefined.Describe() + ", so it cannot be called"),
            _ => throw new TemplateError($"'{Values.TypeName(callee)}' object is not callable"),
        };
    }
}
