using System.Text.Json;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Tokenization;

/// <summary>
/// The tokenizers of the bundled models: stories260K (SentencePiece-style BPE with byte fallback, llama2.c) against
/// tokenizer_check.json, and all-MiniLM-L6-v2 (BERT WordPiece) against the ids its fixtures were built from.
/// </summary>
public class ModelFolderTokenizerTests
{
    public static TheoryData<int, string> StoriesCases()
    {
        var data = new TheoryData<int, string>();
        var cases = StoriesCheck();
        for (int i = 0; i < cases.Length; i++)
        {
            data.Add(i, TokenizerFixtures.Label(cases[i].GetProperty("text").GetString()!));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(StoriesCases))]
    public void Stories260K_encode_with_bos_gives_the_llama2c_ids(int index, string label)
    {
        _ = label;
        var c = StoriesCheck()[index];
        var ids = TokenizerFixtures.Model("stories260K").Encode(c.GetProperty("text").GetString()!);
        Assert.Equal(TokenizerFixtures.Ints(c.GetProperty("ids")), ids);
    }

    [Theory]
    [MemberData(nameof(StoriesCases))]
    public void Stories260K_decode_returns_the_text(int index, string label)
    {
        _ = label;
        var c = StoriesCheck()[index];
        var tok = TokenizerFixtures.Model("stories260K");
        var ids = TokenizerFixtures.Ints(c.GetProperty("ids"));
        Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids, skipSpecialTokens: true));
        // Without skipping, "<s>" comes first, so the Strip decoder no longer meets the "▁" that Prepend added and
        // it decodes to a space: "<s> Once upon a time", as transformers' Llama tokenizers do.
        var text = c.GetProperty("decoded").GetString()!;
        Assert.Equal(text.Length == 0 ? "<s>" : "<s> " + text, tok.Decode(ids));
    }

    [Fact]
    public void Stories260K_special_ids_come_from_the_folder_files()
    {
        var tok = TokenizerFixtures.Model("stories260K");
        Assert.Equal(1, tok.BosTokenId);
        Assert.Equal(2, tok.EosTokenId);
        Assert.Null(tok.PadTokenId);
        // tokenizer eos first, then generation_config.json's [1, 2].
        Assert.Equal([2, 1], tok.EosTokenIds);
        Assert.Equal(512, tok.VocabSize);
        Assert.Null(tok.ChatTemplate);
    }

    public static TheoryData<string, int[]> MiniLmSentences()
    {
        var data = new TheoryData<string, int[]>();
        var inputs = TokenizerFixtures.ReadJson(SharedPaths.Fixture("bases", "minilm-seqcls", "inputs.json"));
        var texts = inputs.GetProperty("texts").EnumerateArray().ToArray();
        var rows = inputs.GetProperty("input_ids").EnumerateArray().ToArray();
        var masks = inputs.GetProperty("attention_mask").EnumerateArray().ToArray();
        for (int i = 0; i < texts.Length; i++)
        {
            var ids = TokenizerFixtures.Ints(rows[i]);
            int length = TokenizerFixtures.Ints(masks[i]).Sum();
            data.Add(texts[i].GetString()!, ids[..length]);
        }
        var reference = TokenizerFixtures.ReadJson(SharedPaths.Asset("models", "all-MiniLM-L6-v2", "reference_outputs.json"));
        foreach (var c in reference.GetProperty("cases").EnumerateArray())
        {
            data.Add(c.GetProperty("text").GetString()!, TokenizerFixtures.Ints(c.GetProperty("input_ids")));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(MiniLmSentences))]
    public void MiniLm_encode_gives_the_bert_uncased_ids(string text, int[] expected)
    {
        Assert.Equal(expected, TokenizerFixtures.Model("all-MiniLM-L6-v2").Encode(text));
    }

    [Fact]
    public void MiniLm_batch_reproduces_the_fixture_padding_and_mask()
    {
        var inputs = TokenizerFixtures.ReadJson(SharedPaths.Fixture("bases", "minilm-seqcls", "inputs.json"));
        var texts = inputs.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToArray();
        var batch = TokenizerFixtures.Model("all-MiniLM-L6-v2").EncodeBatch(texts);
        Assert.Equal(inputs.GetProperty("input_ids").EnumerateArray().Select(TokenizerFixtures.Ints).ToArray(), batch.InputIds);
        Assert.Equal(inputs.GetProperty("attention_mask").EnumerateArray().Select(TokenizerFixtures.Ints).ToArray(), batch.AttentionMask);
    }

    [Fact]
    public void MiniLm_strips_accents_and_lowercases_as_bert_uncased()
    {
        var tok = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        var ids = tok.Encode("Café prices in Zürich aren't cheap.", addSpecialTokens: false);
        Assert.Equal(new string?[] { "cafe", "prices", "in", "zurich", "aren", "'", "t", "cheap", "." }, ids.Select(tok.TokenToString).ToArray());
        Assert.Equal(0, tok.PadTokenId);
        Assert.Equal(30522, tok.VocabSize);
    }

    [Fact]
    public void MiniLm_decode_joins_wordpieces_and_cleans_punctuation()
    {
        var tok = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        // [CLS] hello , world ! token ##ization [SEP]
        int[] ids = [101, 7592, 1010, 2088, 999, 19204, 3989, 102];
        Assert.Equal("hello, world! tokenization", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("[CLS] hello, world! tokenization [SEP]", tok.Decode(ids));
    }

    [Fact]
    public void MiniLm_word_over_max_input_chars_is_one_unk()
    {
        var tok = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        Assert.Equal([100], tok.Encode(new string('a', 101), addSpecialTokens: false));
        Assert.NotEqual([100], tok.Encode(new string('a', 100), addSpecialTokens: false));
    }

    private static JsonElement[] StoriesCheck() =>
        TokenizerFixtures.ReadJson(SharedPaths.Asset("models", "stories260K", "tokenizer_check.json")).GetProperty("cases").EnumerateArray().ToArray();
}
