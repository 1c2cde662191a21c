using System.Text.Json;

namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// A Hugging Face chat template (the Jinja <c>chat_template</c> of tokenizer_config.json), compiled once and rendered
/// like transformers' <c>apply_chat_template(..., tokenize=False)</c>: Jinja2 with <c>trim_blocks</c> and
/// <c>lstrip_blocks</c>, the loopcontrols extension, transformers' <c>tojson</c>, <c>raise_exception</c> and
/// <c>strftime_now</c>, and Jinja's default undefined (prints "", is falsy; attributes of it are undefined too).
/// </summary>
/// <remarks>
/// The subset covers what real chat templates use (see the folder's tests). A tag, filter or test outside it is a
/// <see cref="ConfigException"/> from <see cref="Parse"/>; an unknown method is one from Render. Both name the
/// construct and its line and column. Errors while rendering are <see cref="ChatTemplateException"/>.
/// </remarks>
public sealed class ChatTemplate
{
    private readonly IReadOnlyList<Node> _body;
    private readonly SourceMap _map;

    private ChatTemplate(string source, IReadOnlyList<Node> body, SourceMap map)
    {
        Source = source;
        _body = body;
        _map = map;
    }

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    /// <summary>Compiles <paramref name="source"/>; syntax errors and unsupported tags, filters or tests throw <see cref="ConfigException"/>.</summary>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var normalized = Lexer.NormalizeSource(source);
        var map = new SourceMap(normalized);
        return new ChatTemplate(source, Parser.Parse(Lexer.Tokenize(normalized, map), map), map);
    }

    /// <summary>
    /// Reads <c>chat_template</c> from a tokenizer_config.json. When it is a list of named templates (as in some
    /// models: "default", "tool_use", ...), <paramref name="name"/> picks one (default "default").
    /// </summary>
    public static ChatTemplate FromTokenizerConfig(string path, string? name = null)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        if (!doc.RootElement.TryGetProperty("chat_template", out var template) || template.ValueKind == JsonValueKind.Null)
        {
            throw new ConfigException($"{path}: no 'chat_template'");
        }
        if (template.ValueKind == JsonValueKind.String)
        {
            return Parse(template.GetString()!);
        }
        var wanted = name ?? "default";
        if (template.ValueKind == JsonValueKind.Array)
        {
            foreach (var entry in template.EnumerateArray())
            {
                if (entry.TryGetProperty("name", out var n) && n.GetString() == wanted && entry.TryGetProperty("template", out var t))
                {
                    return Parse(t.GetString() ?? "");
                }
            }
            throw new ConfigException($"{path}: 'chat_template' has no template named '{wanted}'");
        }
        throw new ConfigException($"{path}: 'chat_template' is a {template.ValueKind}, expected a string or a list of {{name, template}}");
    }

    /// <summary>
    /// Renders with the given variables. Values are string, bool, int/long, float/double, null, lists
    /// (<see cref="IList{T}"/>, any sequence) and string-keyed dictionaries, nested freely; <see cref="JsonElement"/>s
    /// are taken as their JSON value.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> context) => Render(context, () => DateTime.Now);

    /// <summary>
    /// Renders a conversation the way transformers does: <c>messages</c> (role, content and each message's
    /// <see cref="ChatMessage.Extra"/> fields), <c>tools</c> and <c>documents</c> (none unless given),
    /// <c>add_generation_prompt</c>, then every entry of <paramref name="extra"/> (e.g. <c>tools</c>,
    /// <c>bos_token</c>, <c>eos_token</c>, <c>enable_thinking</c>).
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null) =>
        Render(BuildContext(messages, addGenerationPrompt, extra), () => DateTime.Now);

    internal static Dictionary<string, object?> BuildContext(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var context = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => (object?)m.ToDictionary()).ToList(),
            ["tools"] = null,
            ["documents"] = null,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        foreach (var kv in extra ?? new Dictionary<string, object?>())
        {
            if (kv.Key is "messages" or "add_generation_prompt")
            {
                throw new ConfigException($"chat template extra variables: '{kv.Key}' is set by Render's own parameter");
            }
            context[kv.Key] = kv.Value;
        }
        return context;
    }

    /// <summary>Renders with a fixed clock for <c>strftime_now</c> (tests).</summary>
    internal string Render(IReadOnlyDictionary<string, object?> context, Func<DateTime> now)
    {
        ArgumentNullException.ThrowIfNull(context);
        var scope = new Scope(Builtins.CreateGlobals(now));
        foreach (var kv in context)
        {
            scope.Set(kv.Key, Values.FromClr(kv.Value, kv.Key));
        }
        return new Interpreter(_map).Render(_body, scope);
    }
}
