using System.Collections.Concurrent;
using System.Text.Json;
using PeftSharp.Tokenization;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Tokenization;

/// <summary>The bundled tokenizers, each loaded once per test run (Qwen3's tokenizer.json is 11 MB).</summary>
internal static class TokenizerFixtures
{
    private static readonly ConcurrentDictionary<string, Lazy<HfTokenizer>> s_cache = new();

    /// <summary>fixtures/tokenizers/&lt;name&gt;: tokenizer.json + tokenizer_config.json.</summary>
    public static HfTokenizer Fixture(string name) => s_cache.GetOrAdd("fixture:" + name, _ => new Lazy<HfTokenizer>(
        () => HfTokenizer.FromFolder(SharedPaths.Fixture("tokenizers", name)))).Value;

    /// <summary>assets/models/&lt;name&gt;: a whole model folder.</summary>
    public static HfTokenizer Model(string name) => s_cache.GetOrAdd("model:" + name, _ => new Lazy<HfTokenizer>(
        () => HfTokenizer.FromFolder(SharedPaths.Asset("models", name)))).Value;

    public static JsonElement ReadJson(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }

    public static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();

    /// <summary>A short, printable label for a test row.</summary>
    public static string Label(string text)
    {
        var flat = text.Replace("\n", "\\n").Replace("\t", "\\t");
        return flat.Length <= 40 ? flat : flat[..40] + "…";
    }
}
