using PeftSharp.Tokenization.ChatTemplates;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

internal static class TemplateAssert
{
    public static string Render(string template, Dictionary<string, object?>? context = null) =>
        ChatTemplate.Parse(template).Render(context ?? []);

    public static Dictionary<string, object?> Context(params (string Key, object? Value)[] entries) =>
        entries.ToDictionary(e => e.Key, e => e.Value);

    public static Dictionary<string, object?> Message(string role, string content) => new() { ["role"] = role, ["content"] = content };
}
