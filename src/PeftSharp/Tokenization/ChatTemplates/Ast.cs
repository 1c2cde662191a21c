namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>A template statement or expression; <see cref="Pos"/> is its offset in the normalised source.</summary>
internal abstract record Node(int Pos);

internal sealed record TextNode(int Pos, string Text) : Node(Pos);

internal sealed record OutputNode(int Pos, Expr Value) : Node(Pos);

internal sealed record IfBranch(Expr Test, IReadOnlyList<Node> Body);

internal sealed record IfNode(int Pos, IReadOnlyList<IfBranch> Branches, IReadOnlyList<Node>? Else) : Node(Pos);

internal sealed record ForNode(int Pos, Target Target, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else) : Node(Pos);

internal sealed record SetNode(int Pos, Target Target, Expr Value) : Node(Pos);

/// <summary><c>{% set x | filters %}body{% endset %}</c>.</summary>
internal sealed record SetBlockNode(int Pos, Target Target, IReadOnlyList<FilterCall> Filters, IReadOnlyList<Node> Body) : Node(Pos);

internal sealed record MacroNode(int Pos, string Name, IReadOnlyList<string> Parameters, IReadOnlyList<Expr?> Defaults, IReadOnlyList<Node> Body) : Node(Pos);

internal sealed record LoopControlNode(int Pos, bool IsBreak) : Node(Pos);

/// <summary><c>{% filter f %}body{% endfilter %}</c>.</summary>
internal sealed record FilterBlockNode(int Pos, IReadOnlyList<FilterCall> Filters, IReadOnlyList<Node> Body) : Node(Pos);

/// <summary><c>{% with a = 1 %}body{% endwith %}</c>: assignments visible only inside the body.</summary>
internal sealed record WithNode(int Pos, IReadOnlyList<(Target Target, Expr Value)> Assignments, IReadOnlyList<Node> Body) : Node(Pos);

/// <summary>A body rendered as is, e.g. transformers' <c>{% generation %}</c> marker block.</summary>
internal sealed record BlockNode(int Pos, IReadOnlyList<Node> Body) : Node(Pos);

/// <summary>Left side of <c>set</c>, <c>for</c> and <c>with</c>.</summary>
internal abstract record Target(int Pos);

internal sealed record NameTarget(int Pos, string Name) : Target(Pos);

internal sealed record TupleTarget(int Pos, IReadOnlyList<Target> Items) : Target(Pos);

/// <summary><c>ns.attr</c> on a namespace object.</summary>
internal sealed record AttrTarget(int Pos, string Object, string Attribute) : Target(Pos);

internal abstract record Expr(int Pos) : Node(Pos);

internal sealed record ConstExpr(int Pos, object? Value) : Expr(Pos);

internal sealed record NameExpr(int Pos, string Name) : Expr(Pos);

internal sealed record ListExpr(int Pos, IReadOnlyList<Expr> Items) : Expr(Pos);

internal sealed record TupleExpr(int Pos, IReadOnlyList<Expr> Items) : Expr(Pos);

internal sealed record DictExpr(int Pos, IReadOnlyList<(Expr Key, Expr Value)> Items) : Expr(Pos);

internal sealed record AttrExpr(int Pos, Expr Object, string Name) : Expr(Pos);

internal sealed record ItemExpr(int Pos, Expr Object, Expr Key) : Expr(Pos);

internal sealed record SliceExpr(int Pos, Expr? Start, Expr? Stop, Expr? Step) : Expr(Pos);

/// <summary>Arguments as written: positional then keyword.</summary>
internal sealed record ArgList(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Named)
{
    public static readonly ArgList None = new([], []);
}

internal sealed record CallExpr(int Pos, Expr Callee, ArgList Args) : Expr(Pos);

internal delegate object? FilterFunction(object? value, CallArgs args);

internal delegate bool TestFunction(object? value, CallArgs args);

/// <summary>A filter resolved at parse time, so an unknown filter fails when the template is compiled.</summary>
internal sealed record FilterCall(int Pos, string Name, ArgList Args, FilterFunction Function);

internal sealed record FilterExpr(int Pos, Expr Value, FilterCall Filter) : Expr(Pos);

internal sealed record TestExpr(int Pos, Expr Value, string Name, bool Negated, ArgList Args, TestFunction Function) : Expr(Pos);

/// <summary>Unary "-", "+" or "not".</summary>
internal sealed record UnaryExpr(int Pos, string Op, Expr Operand) : Expr(Pos);

/// <summary>Arithmetic ("+", "-", "*", "/", "//", "%", "**") and the short-circuit "and"/"or".</summary>
internal sealed record BinaryExpr(int Pos, string Op, Expr Left, Expr Right) : Expr(Pos);

/// <summary><c>a ~ b ~ c</c>: string concatenation of every operand's <c>str()</c>.</summary>
internal sealed record ConcatExpr(int Pos, IReadOnlyList<Expr> Items) : Expr(Pos);

/// <summary>Chained comparison <c>a &lt; b &lt;= c</c>, Python style; ops are "==", "!=", "&lt;", ..., "in", "notin".</summary>
internal sealed record CompareExpr(int Pos, Expr First, IReadOnlyList<(string Op, Expr Operand)> Rest) : Expr(Pos);

/// <summary><c>then if test else otherwise</c>; a missing else gives undefined.</summary>
internal sealed record CondExpr(int Pos, Expr Test, Expr Then, Expr? Else) : Expr(Pos);
