using PeftSharp.Data;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Tokenization;
using PeftSharp.Tokenization;

namespace PeftSharp.Tests.Data;

/// <summary>Sentence and sentence-pair encoding for classification (BERT pair template, type ids, longest_first truncation).</summary>
public sealed class ClassificationEncoderTests
{
    private static HfTokenizer MiniLm => TokenizerFixtures.Model("all-MiniLM-L6-v2");

    // reference_outputs.json of the MiniLM asset: ids of each text with [CLS] … [SEP] (Hugging Face tokenizers).
    private static (string Text, int[] Ids) ReferenceCase(int k)
    {
        var json = TokenizerFixtures.ReadJson(SharedPaths.Asset("models", "all-MiniLM-L6-v2", "reference_outputs.json"));
        var c = json.GetProperty("cases")[k];
        return (c.GetProperty("text").GetString()!, TokenizerFixtures.Ints(c.GetProperty("input_ids")));
    }

    [Fact]
    public void Pair_is_cls_a_sep_b_sep_with_type_ids_0_then_1()
    {
        var (a, aIds) = ReferenceCase(0);
        var (b, bIds) = ReferenceCase(1);
        var pair = MiniLm.EncodePair(a, b);
        // [CLS] a [SEP] from case 0, then b [SEP] from case 1 without its [CLS].
        Assert.Equal(aIds.Concat(bIds[1..]), pair.InputIds);
        Assert.Equal(Enumerable.Repeat(0, aIds.Length).Concat(Enumerable.Repeat(1, bIds.Length - 1)), pair.TokenTypeIds);
    }

    [Fact]
    public void Single_text_has_type_ids_0_and_matches_reference_ids()
    {
        var (text, ids) = ReferenceCase(4);
        var single = MiniLm.EncodeTyped(text);
        Assert.Equal(ids, single.InputIds);
        Assert.All(single.TokenTypeIds, t => Assert.Equal(0, t));
    }

    // tokenizers' own truncation tests (utils/truncation.rs, test_longest_first_pair): max length 7, sequences of
    // 0 (empty), 2 (short), 4 (medium) and 8 (long) tokens.
    [Theory]
    [InlineData(0, 8, 0, 7)]
    [InlineData(2, 2, 2, 2)]
    [InlineData(2, 8, 2, 5)]
    [InlineData(4, 4, 3, 4)]
    [InlineData(4, 8, 3, 4)]
    [InlineData(8, 2, 5, 2)]
    [InlineData(8, 4, 4, 3)]
    [InlineData(8, 8, 3, 4)]
    [InlineData(8, 0, 7, 0)]
    public void Longest_first_matches_tokenizers_truncation_table(int first, int second, int keepFirst, int keepSecond) =>
        Assert.Equal((keepFirst, keepSecond), HfTokenizer.LongestFirst(first, second, 7));

    [Fact]
    public void Truncated_pair_keeps_its_three_special_tokens_and_fits()
    {
        var (a, aIds) = ReferenceCase(4); // 25 tokens with [CLS]/[SEP]
        var (b, bIds) = ReferenceCase(0); // 11 tokens
        var pair = MiniLm.EncodePair(a, b, maxLength: 20);
        Assert.Equal(20, pair.InputIds.Count);
        // 17 content tokens for 23 + 9: tokenizers gives the longer max(9, 17 - 9) = 9, and as 9 + 9 > 17 both fall
        // back to halves: the longer (a) keeps 9, the shorter (b) 8.
        Assert.Equal((9, 8), HfTokenizer.LongestFirst(aIds.Length - 2, bIds.Length - 2, 17));
        Assert.Equal([101, .. aIds[1..10], 102, .. bIds[1..9], 102], pair.InputIds);
        Assert.Equal(Enumerable.Repeat(0, 11).Concat(Enumerable.Repeat(1, 9)), pair.TokenTypeIds);
        Assert.Throws<PeftException>(() => MiniLm.EncodePair(a, b, maxLength: 2));
    }

    [Fact]
    public void Encoder_counts_truncation_and_keeps_class_ids()
    {
        var rte = DataReader.Read(DataTestFiles.Shared("rte", "validation.jsonl"));
        var result = ClassificationEncoder.Encode(rte.Examples.Take(20), MiniLm, maxLength: 48);
        Assert.Equal(20, result.Count);
        var untruncated = rte.Examples.Take(20).Cast<ClassificationExample>().Select(c => MiniLm.EncodePair(c.Text, c.TextPair!).InputIds.Count).ToList();
        Assert.Equal(untruncated.Count(n => n > 48), result.Truncated);
        Assert.InRange(result.Truncated, 1, 19);
        Assert.All(result.Examples, e => Assert.InRange(e.Length, 1, 48));
        Assert.Equal(rte.Examples.Take(20).Cast<ClassificationExample>().Select(c => (int?)c.Label), result.Examples.Select(e => e.ClassLabel));
        Assert.All(result.Examples, e => Assert.Null(e.Labels));
        Assert.All(result.Examples, e => Assert.Equal(1, e.TokenTypeIds![^1]));
    }

    [Fact]
    public void Stories260K_pair_template_repeats_bos_with_type_1()
    {
        // LlamaTokenizerFast with add_bos_token: pair = <s>:0 A:0 <s>:1 B:1.
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var a = tokenizer.Encode("Hi", addSpecialTokens: false);
        var b = tokenizer.Encode("Yo", addSpecialTokens: false);
        var pair = tokenizer.EncodePair("Hi", "Yo");
        Assert.Equal([1, .. a, 1, .. b], pair.InputIds);
        Assert.Equal([0, .. a.Select(_ => 0), 1, .. b.Select(_ => 1)], pair.TokenTypeIds);
    }
}
