namespace PeftSharp.Data;

/// <summary>The shape of the rows of a data file, detected from its first row's fields (or set by the caller).</summary>
public enum DataFormat
{
    /// <summary>Alpaca: <c>instruction</c>, optional <c>input</c>, <c>output</c> → <see cref="InstructionExample"/>.</summary>
    Instruction,

    /// <summary>GSM8K: <c>question</c>, <c>answer</c> → <see cref="InstructionExample"/> with an empty input.</summary>
    QuestionAnswer,

    /// <summary>Chat: <c>messages</c>, a list of <c>{role, content}</c> → <see cref="ChatExample"/> (JSON Lines only).</summary>
    Chat,

    /// <summary>Plain text: <c>text</c> → <see cref="TextExample"/>.</summary>
    Text,

    /// <summary>Text classification: <c>text</c>, <c>label</c> → <see cref="ClassificationExample"/>.</summary>
    Classification,

    /// <summary>Sentence pairs (RTE, MNLI): <c>premise</c>, <c>hypothesis</c>, <c>label</c> → <see cref="ClassificationExample"/> with a pair.</summary>
    SentencePair,
}

/// <summary>
/// The field (JSON) or column (CSV/TSV header) names each format reads; override them for files that name them
/// otherwise, e.g. <c>new DataColumns { Premise = "sentence1", Hypothesis = "sentence2" }</c> for GLUE's RTE TSV.
/// </summary>
public sealed record DataColumns
{
    public string Instruction { get; init; } = "instruction";

    public string Input { get; init; } = "input";

    public string Output { get; init; } = "output";

    public string Question { get; init; } = "question";

    public string Answer { get; init; } = "answer";

    public string Messages { get; init; } = "messages";

    /// <summary>The role key inside each message.</summary>
    public string Role { get; init; } = "role";

    /// <summary>The content key inside each message.</summary>
    public string Content { get; init; } = "content";

    public string Text { get; init; } = "text";

    public string Label { get; init; } = "label";

    public string Premise { get; init; } = "premise";

    public string Hypothesis { get; init; } = "hypothesis";
}

/// <summary>How to read a data file.</summary>
public sealed record DataReadOptions
{
    /// <summary>The row shape; null (the default) detects it from the first readable row.</summary>
    public DataFormat? Format { get; init; }

    /// <summary>Field and column names (defaults: the lower-case names of <see cref="DataFormat"/>).</summary>
    public DataColumns Columns { get; init; } = new();

    /// <summary>
    /// When false (the default) the first bad row throws a <see cref="DataFileException"/> naming file and line; when
    /// true bad rows are skipped and counted in <see cref="Dataset.SkippedRows"/>.
    /// </summary>
    public bool SkipBadRows { get; init; }

    /// <summary>
    /// Fixed class names (index = class id), e.g. the training file's labels when reading its validation file; a label
    /// outside them is a bad row. Null: collected from the file (see <see cref="ClassLabels"/>).
    /// </summary>
    public IReadOnlyList<string>? LabelNames { get; init; }
}
