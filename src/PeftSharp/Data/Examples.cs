namespace PeftSharp.Data;

/// <summary>One row of a data file, with the 1-based line it starts on (for messages about it).</summary>
public abstract record Example
{
    /// <summary>The 1-based line of the source file where this row starts (0 when built in code).</summary>
    public int Line { get; init; }
}

/// <summary>An instruction-following example (Alpaca; GSM8K's question/answer with an empty input).</summary>
/// <param name="Instruction">The task.</param>
/// <param name="Input">Context for the task; empty when there is none.</param>
/// <param name="Output">The response the model is trained to give.</param>
public sealed record InstructionExample(string Instruction, string Input, string Output) : Example;

/// <summary>One message of a conversation.</summary>
/// <param name="Role">"system", "user" or "assistant" (others are kept as given).</param>
/// <param name="Content">The message text.</param>
public sealed record ChatTurn(string Role, string Content);

/// <summary>A conversation; the assistant turns are what the model is trained to say.</summary>
public sealed record ChatExample(IReadOnlyList<ChatTurn> Messages) : Example;

/// <summary>Running text for language modelling.</summary>
public sealed record TextExample(string Text) : Example;

/// <summary>A text (or a text pair, for entailment) with its class id.</summary>
/// <param name="Text">The text, or the premise of a pair.</param>
/// <param name="TextPair">The hypothesis of a pair; null for single texts.</param>
/// <param name="Label">The class id, an index into <see cref="ClassLabels.Names"/>.</param>
public sealed record ClassificationExample(string Text, string? TextPair, int Label) : Example;
