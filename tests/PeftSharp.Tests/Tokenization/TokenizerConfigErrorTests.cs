using PeftSharp.Tokenization;

namespace PeftSharp.Tests.Tokenization;

/// <summary>Unsupported or broken tokenizer files fail with a ConfigException that names the file and the culprit.</summary>
public class TokenizerConfigErrorTests
{
    private const string WordLevel = """{"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}""";

    public static TheoryData<string, string, string> UnsupportedComponents() => new()
    {
        // component json field, JSON, words the message must contain
        { "model", """{"type": "Unigram", "unk_id": 0, "vocab": [["a", 0.0]]}""", "model type 'Unigram'" },
        { "normalizer", """{"type": "Frobnicate"}""", "normalizer type 'Frobnicate'" },
        { "pre_tokenizer", """{"type": "UnicodeScripts"}""", "pre_tokenizer type 'UnicodeScripts'" },
        { "pre_tokenizer", """{"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Nope"}]}""", "pretokenizers[1]" },
        { "decoder", """{"type": "Mystery"}""", "decoder type 'Mystery'" },
        { "post_processor", """{"type": "Shuffle"}""", "post_processor type 'Shuffle'" },
        { "normalizer", """{"type": "Precompiled", "precompiled_charsmap": "AAEC"}""", "Precompiled" },
    };

    [Theory]
    [MemberData(nameof(UnsupportedComponents))]
    public void Unsupported_component_names_the_file_and_the_type(string field, string json, string expected)
    {
        var doc = TempTokenizerFolder.Document(WordLevel);
        doc[field] = System.Text.Json.Nodes.JsonNode.Parse(json);
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", doc.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFile(folder.TokenizerJson));
        Assert.Contains(folder.TokenizerJson, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Garbage_file_is_a_config_exception_naming_the_file()
    {
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", "this is not json {");
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFile(folder.TokenizerJson));
        Assert.Contains(folder.TokenizerJson, e.Message);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void Json_without_a_model_is_not_a_tokenizer()
    {
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", """{"version": "1.0", "vocab": {"a": 0}}""");
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFile(folder.TokenizerJson));
        Assert.Contains(folder.TokenizerJson, e.Message);
        Assert.Contains("no \"model\"", e.Message);
    }

    [Fact]
    public void Folder_without_tokenizer_json_is_a_config_exception()
    {
        using var folder = new TempTokenizerFolder();
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFolder(folder.Path));
        Assert.Contains("no tokenizer.json", e.Message);
    }

    [Fact]
    public void Merge_of_tokens_outside_the_vocabulary_is_named()
    {
        var doc = TempTokenizerFolder.Document("""{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}""");
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", doc.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFile(folder.TokenizerJson));
        Assert.Contains("merges[0]", e.Message);
        Assert.Contains("\"ab\"", e.Message);
    }

    [Fact]
    public void Special_token_missing_from_the_vocabulary_names_the_config_file()
    {
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", TempTokenizerFolder.Document(WordLevel).ToJsonString());
        folder.Write("tokenizer_config.json", """{"eos_token": "</s>"}""");
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFolder(folder.Path));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("eos_token \"</s>\"", e.Message);
    }

    [Fact]
    public void Regex_that_dotnet_cannot_compile_is_named()
    {
        var doc = TempTokenizerFolder.Document(WordLevel,
            preTokenizer: """{"type": "Split", "pattern": {"Regex": "(?<!a"}, "behavior": "Isolated", "invert": false}""");
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", doc.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => HfTokenizer.FromFile(folder.TokenizerJson));
        Assert.Contains("pre_tokenizer.pattern", e.Message);
        Assert.Contains("(?<!a", e.Message);
    }
}
