namespace PeftSharp.Data;

/// <summary>Tells a file's <see cref="DataFormat"/> from a row's fields and turns rows into examples.</summary>
internal static class RowShapes
{
    /// <summary>The format whose fields the row has, most specific first; null when none fits.</summary>
    public static DataFormat? Detect(IRow row, DataColumns c)
    {
        if (row.Has(c.Messages))
        {
            return DataFormat.Chat;
        }
        if (row.Has(c.Instruction) && row.Has(c.Output))
        {
            return DataFormat.Instruction;
        }
        if (row.Has(c.Question) && row.Has(c.Answer))
        {
            return DataFormat.QuestionAnswer;
        }
        if (row.Has(c.Premise) && row.Has(c.Hypothesis))
        {
            return DataFormat.SentencePair;
        }
        if (row.Has(c.Text))
        {
            return row.Has(c.Label) ? DataFormat.Classification : DataFormat.Text;
        }
        return null;
    }

    /// <summary>The fields each format needs, for the "cannot tell the format" message.</summary>
    public static string Expected(DataColumns c) =>
        $"'{c.Messages}' (chat), '{c.Instruction}'+'{c.Output}' (instruction), '{c.Question}'+'{c.Answer}' (question/answer), " +
        $"'{c.Premise}'+'{c.Hypothesis}'+'{c.Label}' (sentence pair), '{c.Text}'+'{c.Label}' (classification) or '{c.Text}' (text)";

    /// <summary>The example of one row; a classification label is resolved through <paramref name="labels"/>.</summary>
    /// <exception cref="BadRowException">A field is missing or of the wrong type.</exception>
    public static Example Build(IRow row, DataFormat format, DataColumns c, LabelCollector labels, int line) => format switch
    {
        DataFormat.Instruction => new InstructionExample(row.String(c.Instruction), row.OptionalString(c.Input), row.String(c.Output)) { Line = line },
        DataFormat.QuestionAnswer => new InstructionExample(row.String(c.Question), "", row.String(c.Answer)) { Line = line },
        DataFormat.Chat => new ChatExample(row.Messages(c.Messages, c.Role, c.Content)) { Line = line },
        DataFormat.Text => new TextExample(row.String(c.Text)) { Line = line },
        DataFormat.Classification => Classified(row.String(c.Text), null, row.Label(c.Label), labels, line),
        DataFormat.SentencePair => Classified(row.String(c.Premise), row.String(c.Hypothesis), row.Label(c.Label), labels, line),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    private static ClassificationExample Classified(string text, string? pair, RawLabel label, LabelCollector labels, int line) =>
        new(text, pair, labels.Add(label)) { Line = line };
}

/// <summary>
/// Gives class ids to labels as rows are read: integers are their own ids; names get ids in ordinal order at the end
/// (<see cref="Resolve"/>), or from fixed names. A file mixing integers and names is bad from the first row that
/// differs from the first label's kind.
/// </summary>
internal sealed class LabelCollector(IReadOnlyList<string>? fixedNames, string labelField)
{
    private readonly ClassLabels? _fixed = fixedNames == null ? null : new ClassLabels(fixedNames, false);
    private readonly SortedSet<string> _names = new(StringComparer.Ordinal);
    private readonly List<string> _pending = [];
    private bool? _numeric;
    private int _maxId = -1;

    /// <summary>
    /// The id of the label, or -1 for a name whose id <see cref="Resolve"/> gives. Each successful call belongs to
    /// exactly one example, in order (nothing after it in <see cref="RowShapes.Build"/> can fail).
    /// </summary>
    public int Add(RawLabel label)
    {
        if (_fixed != null)
        {
            if (label.Id is int id)
            {
                return id < _fixed.Count ? id : throw new BadRowException($"'{labelField}' {id} is not a class id below {_fixed.Count} ({string.Join(", ", _fixed.Names)})");
            }
            return _fixed.IdOf(label.Name!) ?? throw new BadRowException($"'{labelField}' \"{label.Name}\" is not one of the classes {string.Join(", ", _fixed.Names)}");
        }
        bool numeric = label.Id != null;
        if (_numeric is bool kind && kind != numeric)
        {
            throw new BadRowException(kind
                ? $"'{labelField}' \"{label.Name}\" is a name but the file's labels are integers"
                : $"'{labelField}' {label.Id} is an integer but the file's labels are names");
        }
        _numeric = numeric;
        if (label.Id is int n)
        {
            _maxId = Math.Max(_maxId, n);
            return n;
        }
        _names.Add(label.Name!);
        _pending.Add(label.Name!);
        return -1;
    }

    /// <summary>The classes seen (or the fixed ones), and the examples with their final ids.</summary>
    public (ClassLabels Labels, List<Example> Examples) Resolve(List<Example> examples)
    {
        if (_fixed != null)
        {
            return (_fixed, examples);
        }
        if (_numeric != false)
        {
            return (ClassLabels.Numbered(_maxId + 1), examples);
        }
        var labels = new ClassLabels(_names.ToArray(), false);
        var ids = labels.Names.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i, StringComparer.Ordinal);
        var resolved = new List<Example>(examples.Count);
        for (int i = 0; i < examples.Count; i++)
        {
            var e = (ClassificationExample)examples[i];
            resolved.Add(e with { Label = ids[_pending[i]] });
        }
        return (labels, resolved);
    }
}
