using PeftSharp.Tokenization;

namespace PeftSharp.Tests.Tokenization;

/// <summary>Special ids, chat template and Llama's add_bos/add_eos from the files beside tokenizer.json.</summary>
public class TokenizerSideFilesTests
{
    private const string Model = """{"type": "WordLevel", "vocab": {"a": 0, "b": 1, "[UNK]": 2, "<s>": 3, "</s>": 4, "<pad>": 5}, "unk_token": "[UNK]"}""";
    private const string Added = """
        [{"id": 3, "content": "<s>", "special": true, "normalized": false},
         {"id": 4, "content": "</s>", "special": true, "normalized": false},
         {"id": 5, "content": "<pad>", "special": true, "normalized": false}]
        """;

    private static HfTokenizer Folder(params (string Name, string Content)[] files)
    {
        using var folder = new TempTokenizerFolder();
        folder.Write("tokenizer.json", TempTokenizerFolder.Document(Model, preTokenizer: """{"type": "WhitespaceSplit"}""",
            postProcessor: """{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]}}}""",
            addedTokens: Added).ToJsonString());
        foreach (var (name, content) in files)
        {
            folder.Write(name, content);
        }
        return HfTokenizer.FromFolder(folder.Path);
    }

    [Fact]
    public void Token_objects_and_generation_config_eos_list_are_read()
    {
        var tok = Folder(("tokenizer_config.json", """{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": "<pad>"}"""),
            ("generation_config.json", """{"eos_token_id": [4, 1]}"""));
        Assert.Equal(3, tok.BosTokenId);
        Assert.Equal(4, tok.EosTokenId);
        Assert.Equal(5, tok.PadTokenId);
        Assert.Equal([4, 1], tok.EosTokenIds);
    }

    [Fact]
    public void Explicit_null_token_is_not_replaced_by_the_model_config()
    {
        // Qwen's tokenizer_config says "bos_token": null while config.json carries a bos_token_id.
        var tok = Folder(("tokenizer_config.json", """{"bos_token": null, "eos_token": "</s>"}"""),
            ("config.json", """{"bos_token_id": 3, "eos_token_id": 4, "pad_token_id": 5}"""));
        Assert.Null(tok.BosTokenId);
        Assert.Equal(5, tok.PadTokenId); // absent from tokenizer_config, so config.json's
    }

    [Fact]
    public void Chat_template_list_gives_the_default_entry()
    {
        var tok = Folder(("tokenizer_config.json", """{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"""));
        Assert.Equal("D", tok.ChatTemplate);
    }

    [Fact]
    public void Chat_template_jinja_file_is_used_when_the_config_has_none()
    {
        var tok = Folder(("chat_template.jinja", "{{ messages }}"));
        Assert.Equal("{{ messages }}", tok.ChatTemplate);
    }

    [Fact]
    public void Qwen3_chat_template_comes_from_tokenizer_config()
    {
        Assert.Contains("<|im_start|>", TokenizerFixtures.Fixture("qwen3").ChatTemplate);
    }

    [Fact]
    public void Llama_tokenizer_class_rebuilds_the_template_from_add_bos_and_add_eos()
    {
        // transformers' LlamaTokenizerFast.update_post_processor ignores tokenizer.json's template.
        var tok = Folder(("tokenizer_config.json", """{"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false, "add_eos_token": true}"""));
        Assert.Equal([0, 1, 4], tok.Encode("a b"));
        var plain = Folder(("tokenizer_config.json", """{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "add_eos_token": true}"""));
        Assert.Equal([3, 0, 1], plain.Encode("a b"));
    }

    [Fact]
    public void Padding_without_pad_or_eos_is_an_error_only_when_needed()
    {
        var tok = Folder();
        Assert.Null(tok.PadTokenId);
        Assert.Equal([[3, 0], [3, 1]], tok.EncodeBatch(["a", "b"]).InputIds);
        Assert.Throws<PeftException>(() => tok.EncodeBatch(["a", "a b"]));
    }

    [Fact]
    public void Decode_skips_special_tokens_on_request()
    {
        var tok = Folder(("tokenizer_config.json", """{"eos_token": "</s>"}"""));
        // No decoder: tokens are joined with spaces, as tokenizers does.
        Assert.Equal("<s> a b </s>", tok.Decode([3, 0, 1, 4]));
        Assert.Equal("a b", tok.Decode([3, 0, 1, 4], skipSpecialTokens: true));
        Assert.Equal(6, tok.VocabSize);
    }
}
