using PeftSharp.Tokenization;

namespace PeftSharp.Data;

/// <summary>A piece of a rendered training example; <see cref="Train"/> pieces are the ones the loss is taken on.</summary>
public sealed record PromptSegment(string Text, bool Train);

/// <summary>An example as text to tokenize, split into prompt and response pieces.</summary>
/// <param name="Segments">The pieces in order; their concatenation is tokenized as one text.</param>
/// <param name="AddSpecialTokens">Whether the tokenizer's post-processor adds its tokens (BOS); false when the text already holds them (chat templates).</param>
/// <param name="AppendEos">Whether an EOS token is appended after the text (true when the format has no end-of-turn token of its own).</param>
public sealed record RenderedExample(IReadOnlyList<PromptSegment> Segments, bool AddSpecialTokens, bool AppendEos);

/// <summary>Turns an instruction or chat example into prompt and response text for supervised fine-tuning.</summary>
public interface IPromptFormat
{
    /// <summary>The example's text pieces.</summary>
    /// <exception cref="PeftException">The example is of a kind the format does not render.</exception>
    RenderedExample Render(Example example);
}

/// <summary>
/// The Alpaca prompt without its preamble: "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
/// (the Input block only when the input is not empty), then the response; an EOS token follows. This is the format
/// for models without a chat template (<see cref="PromptFormats.For"/>). A conversation is written as the same blocks: a system message first as a
/// paragraph, each user turn as an Instruction block with its Response header, each assistant turn as the response;
/// every assistant turn is trained on.
/// </summary>
public sealed class AlpacaPromptFormat : IPromptFormat
{
    /// <summary>The shared instance (the format has no settings).</summary>
    public static AlpacaPromptFormat Instance { get; } = new();

    /// <summary>The prompt of one instruction: everything before the response.</summary>
    public static string Prompt(string instruction, string input) => input.Length == 0
        ? $"### Instruction:\n{instruction}\n\n### Response:\n"
        : $"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";

    /// <inheritdoc/>
    public RenderedExample Render(Example example) => example switch
    {
        InstructionExample e => new RenderedExample([new(Prompt(e.Instruction, e.Input), false), new(e.Output, true)], true, true),
        ChatExample c => new RenderedExample(RenderChat(c), true, true),
        _ => throw new PeftException($"line {example.Line}: supervised fine-tuning needs instruction or chat rows, found {example.GetType().Name}"),
    };

    private static List<PromptSegment> RenderChat(ChatExample chat)
    {
        var segments = new List<PromptSegment>();
        for (int i = 0; i < chat.Messages.Count; i++)
        {
            var m = chat.Messages[i];
            bool last = i == chat.Messages.Count - 1;
            switch (m.Role)
            {
                case "assistant":
                    segments.Add(new PromptSegment(m.Content, true));
                    if (!last)
                    {
                        segments.Add(new PromptSegment("\n\n", false));
                    }
                    break;
                case "user":
                    segments.Add(new PromptSegment($"### Instruction:\n{m.Content}\n\n### Response:\n", false));
                    break;
                default:
                    segments.Add(new PromptSegment(m.Content + "\n\n", false));
                    break;
            }
        }
        return segments;
    }
}

/// <summary>Chooses the prompt format for a tokenizer.</summary>
public static class PromptFormats
{
    /// <summary>
    /// The format SFT uses with <paramref name="tokenizer"/>: its chat template (<see cref="ChatTemplateFormat"/>) when
    /// it has one, else <see cref="AlpacaPromptFormat"/>.
    /// </summary>
    /// <exception cref="ConfigException">The chat template uses Jinja that PeftSharp does not render.</exception>
    public static IPromptFormat For(HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.ChatTemplate is string source
            ? new ChatTemplateFormat(Tokenization.ChatTemplates.ChatTemplate.Parse(source), tokenizer)
            : AlpacaPromptFormat.Instance;
    }
}
