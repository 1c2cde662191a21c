namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// One message of a conversation, as transformers passes it to a chat template (<c>{"role": ..., "content": ...}</c>).
/// </summary>
/// <param name="Role">"system", "user", "assistant" or "tool" (templates may accept others).</param>
/// <param name="Content">The message text.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>
    /// More fields of the message dict, e.g. <c>tool_calls</c>, <c>reasoning_content</c>, <c>name</c>,
    /// <c>tool_call_id</c>. Values are strings, bools, numbers, null, lists and string-keyed dictionaries. They are
    /// added after role and content, so an extra "content" (null, or a list of parts) replaces <see cref="Content"/>.
    /// </summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    internal OrderedDictionary<string, object?> ToDictionary()
    {
        var dict = new OrderedDictionary<string, object?> { ["role"] = Role, ["content"] = Content };
        if (Extra != null)
        {
            foreach (var kv in Extra)
            {
                dict[kv.Key] = kv.Value;
            }
        }
        return dict;
    }
}
