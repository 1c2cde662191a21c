using PeftSharp.Tokenization;

namespace PeftSharp.Tests.Tokenization;

/// <summary>EncodeBatch: padding side, attention masks, pad id choice and truncation that keeps special tokens.</summary>
public class BatchEncodingTests
{
    // Ids from fixtures/tokenizers/gpt2/expected.json.
    private static readonly int[] s_helloWorld = [15496, 995];
    private static readonly int[] s_helloDog = [15496, 11, 616, 3290, 318, 13779];
    private const int Gpt2Eos = 50256;

    [Fact]
    public void Right_padding_appends_pad_ids_and_zero_mask()
    {
        var batch = TokenizerFixtures.Fixture("gpt2").EncodeBatch(["Hello world", "Hello, my dog is cute"]);
        // GPT-2 has no pad token, so the eos id pads.
        Assert.Equal([.. s_helloWorld, Gpt2Eos, Gpt2Eos, Gpt2Eos, Gpt2Eos], batch.InputIds[0]);
        Assert.Equal(s_helloDog, batch.InputIds[1]);
        Assert.Equal([1, 1, 0, 0, 0, 0], batch.AttentionMask[0]);
        Assert.Equal([1, 1, 1, 1, 1, 1], batch.AttentionMask[1]);
        Assert.Equal(2, batch.BatchSize);
        Assert.Equal(6, batch.SequenceLength);
    }

    [Fact]
    public void Left_padding_prepends_pad_ids_and_zero_mask()
    {
        var batch = TokenizerFixtures.Fixture("gpt2").EncodeBatch(["Hello world", "Hello, my dog is cute"], side: PaddingSide.Left);
        Assert.Equal([Gpt2Eos, Gpt2Eos, Gpt2Eos, Gpt2Eos, .. s_helloWorld], batch.InputIds[0]);
        Assert.Equal([0, 0, 0, 0, 1, 1], batch.AttentionMask[0]);
        Assert.Equal(s_helloDog, batch.InputIds[1]);
    }

    [Fact]
    public void Qwen3_pads_with_its_pad_token_not_eos()
    {
        var tok = TokenizerFixtures.Fixture("qwen3");
        Assert.Equal(151643, tok.PadTokenId); // <|endoftext|>
        Assert.Equal(151645, tok.EosTokenId); // <|im_end|>
        Assert.Null(tok.BosTokenId);
        var batch = tok.EncodeBatch(["Hello world", "Hello, my dog is cute"], side: PaddingSide.Left);
        Assert.Equal([151643, 151643, 151643, 151643, 9707, 1879], batch.InputIds[0]);
        Assert.Equal([0, 0, 0, 0, 1, 1], batch.AttentionMask[0]);
    }

    [Fact]
    public void Truncation_cuts_the_text_and_keeps_cls_and_sep()
    {
        var tok = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        // Full ids (fixtures/bases/minilm-seqcls/inputs.json): 101 1996 4248 2829 4419 ... 1012 102
        var batch = tok.EncodeBatch(["The quick brown fox jumps over the lazy dog.", "the"], maxLength: 5, truncate: true);
        Assert.Equal([101, 1996, 4248, 2829, 102], batch.InputIds[0]);
        Assert.Equal([101, 1996, 102, 0, 0], batch.InputIds[1]);
        Assert.Equal([1, 1, 1, 0, 0], batch.AttentionMask[1]);
    }

    [Fact]
    public void Row_longer_than_max_length_without_truncation_is_an_error()
    {
        var tok = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        var e = Assert.Throws<PeftException>(() => tok.EncodeBatch(["The quick brown fox jumps over the lazy dog."], maxLength: 5));
        Assert.Contains("maxLength 5", e.Message);
    }

    [Fact]
    public void Batch_without_special_tokens_matches_single_encodes()
    {
        var tok = TokenizerFixtures.Model("stories260K");
        string[] texts = ["Once upon a time", "Hello world", ""];
        var batch = tok.EncodeBatch(texts, addSpecialTokens: false);
        for (int i = 0; i < texts.Length; i++)
        {
            var ids = tok.Encode(texts[i], addSpecialTokens: false);
            Assert.Equal(ids, batch.InputIds[i].Take(ids.Count));
            Assert.Equal(ids.Count, batch.AttentionMask[i].Sum());
            // stories260K has no pad token; its eos (2) pads.
            Assert.All(batch.InputIds[i].Skip(ids.Count), id => Assert.Equal(2, id));
        }
    }
}
