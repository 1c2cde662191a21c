using PeftSharp.Tokenization;
using PeftSharp.Tokenization.ChatTemplates;

namespace PeftSharp.Data;

/// <summary>
/// Renders examples with the model's Jinja chat template (transformers' <c>apply_chat_template</c>), training on what
/// each assistant turn adds: the text between the render of the conversation up to that turn with
/// <c>add_generation_prompt</c> and the render that includes the turn (its content and end-of-turn tokens such as
/// <c>&lt;|im_end|&gt;</c>). An instruction row becomes a user message (instruction, a blank line, the input when
/// there is one) and an assistant message. The text is tokenized without adding special tokens (the template writes
/// them) and no EOS is appended, as transformers and TRL do for conversations.
/// </summary>
/// <remarks>
/// Templates whose earlier turns render differently once later turns follow (Qwen3 drops the reasoning of old
/// turns) are not prefix-stable; for them only the last assistant turn is trained.
/// </remarks>
public sealed class ChatTemplateFormat : IPromptFormat
{
    private readonly ChatTemplate _template;
    private readonly Dictionary<string, object?> _variables;

    /// <summary>A format over <paramref name="template"/>, with bos_token / eos_token set from <paramref name="tokenizer"/>.</summary>
    public ChatTemplateFormat(ChatTemplate template, HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(tokenizer);
        _template = template;
        _variables = new Dictionary<string, object?>
        {
            ["bos_token"] = tokenizer.BosTokenId is int bos ? tokenizer.TokenToString(bos) : "",
            ["eos_token"] = tokenizer.EosTokenId is int eos ? tokenizer.TokenToString(eos) : "",
        };
    }

    /// <inheritdoc/>
    public RenderedExample Render(Example example)
    {
        var messages = example switch
        {
            InstructionExample e => [new ChatMessage("user", e.Input.Length == 0 ? e.Instruction : $"{e.Instruction}\n\n{e.Input}"), new ChatMessage("assistant", e.Output)],
            ChatExample c => c.Messages.Select(m => new ChatMessage(m.Role, m.Content)).ToList(),
            _ => throw new PeftException($"line {example.Line}: supervised fine-tuning needs instruction or chat rows, found {example.GetType().Name}"),
        };
        var full = Apply(messages, messages.Count, false);
        var assistantTurns = Enumerable.Range(0, messages.Count).Where(i => messages[i].Role == "assistant").ToList();
        var segments = Segments(messages, full, assistantTurns)
            ?? Segments(messages, full, assistantTurns.Count == 0 ? [] : [assistantTurns[^1]])
            ?? throw new PeftException($"line {example.Line}: the chat template does not render the conversation up to its last assistant turn as a prefix of the whole; cannot tell the response apart");
        return new RenderedExample(segments, AddSpecialTokens: false, AppendEos: false);
    }

    // Null when a boundary render is not a prefix of the whole conversation's render.
    private List<PromptSegment>? Segments(List<ChatMessage> messages, string full, IReadOnlyList<int> trainedTurns)
    {
        var segments = new List<PromptSegment>();
        int done = 0;
        foreach (int turn in trainedTurns)
        {
            var prompt = Apply(messages, turn, true);
            var through = Apply(messages, turn + 1, false);
            if (prompt.Length < done || through.Length < prompt.Length
                || !full.StartsWith(prompt, StringComparison.Ordinal) || !full.StartsWith(through, StringComparison.Ordinal))
            {
                return null;
            }
            segments.Add(new PromptSegment(full[done..prompt.Length], false));
            segments.Add(new PromptSegment(full[prompt.Length..through.Length], true));
            done = through.Length;
        }
        segments.Add(new PromptSegment(full[done..], false));
        return segments;
    }

    private string Apply(List<ChatMessage> messages, int count, bool addGenerationPrompt) =>
        _template.Render(messages.GetRange(0, count), addGenerationPrompt, _variables);
}
