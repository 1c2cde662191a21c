using System.Text.Json.Nodes;
using PeftSharp.Tokenization;

namespace PeftSharp.Tests.Tokenization;

/// <summary>A throw-away folder holding a hand-written tokenizer.json (and optional side files).</summary>
internal sealed class TempTokenizerFolder : IDisposable
{
    public TempTokenizerFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "peftsharp-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string TokenizerJson => System.IO.Path.Combine(Path, "tokenizer.json");

    /// <summary>A tokenizer.json with the given model and optional components (JSON object literals).</summary>
    public static JsonObject Document(string model, string? normalizer = null, string? preTokenizer = null,
        string? postProcessor = null, string? decoder = null, string addedTokens = "[]") => new()
    {
        ["version"] = "1.0",
        ["truncation"] = null,
        ["padding"] = null,
        ["added_tokens"] = JsonNode.Parse(addedTokens),
        ["normalizer"] = normalizer == null ? null : JsonNode.Parse(normalizer),
        ["pre_tokenizer"] = preTokenizer == null ? null : JsonNode.Parse(preTokenizer),
        ["post_processor"] = postProcessor == null ? null : JsonNode.Parse(postProcessor),
        ["decoder"] = decoder == null ? null : JsonNode.Parse(decoder),
        ["model"] = JsonNode.Parse(model),
    };

    public static HfTokenizer Load(JsonObject document)
    {
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", document.ToJsonString());
        return HfTokenizer.FromFile(folder.TokenizerJson);
    }

    public void Write(string name, string content) => File.WriteAllText(System.IO.Path.Combine(Path, name), content);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // best effort: a leftover temp folder is harmless
        }
    }
}
