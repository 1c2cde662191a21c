using PeftSharp.Data;
using PeftSharp.Tests.Tokenization;

namespace PeftSharp.Tests.Data;

/// <summary>Plain-text LM examples with and without packing, on TinyStories with the stories260K tokenizer.</summary>
public sealed class TextLmEncoderTests
{
    private static readonly Lazy<List<Example>> s_stories = new(() =>
        DataReader.Read(DataTestFiles.Shared("tinystories", "validation.jsonl")).Examples.Take(40).ToList());

    [Fact]
    public void Packing_concatenates_bos_text_eos_and_cuts_full_blocks()
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var texts = s_stories.Value;
        // The stream written out from the definition: each text with <s> (id 1) first and </s> (id 2) after it.
        var stream = texts.Cast<TextExample>().SelectMany(t => tokenizer.Encode(t.Text).Append(2)).ToList();
        Assert.All(texts.Cast<TextExample>(), t => Assert.Equal(1, tokenizer.Encode(t.Text)[0]));
        var result = TextLmEncoder.Encode(texts, tokenizer, new TextLmOptions { MaxLength = 64, Packing = true });
        Assert.Equal(stream.Count / 64, result.Count);
        Assert.Equal(stream.Count % 64, result.DroppedTokens);
        Assert.All(result.Examples, e => Assert.Equal(64, e.Length));
        Assert.Equal(stream.Take(result.Count * 64), result.Examples.SelectMany(e => e.InputIds));
        Assert.All(result.Examples, e => Assert.Equal(e.InputIds, e.Labels!));
        Assert.Equal(0, result.Truncated);
    }

    [Fact]
    public void Without_packing_each_text_is_one_example_cut_on_the_right()
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var texts = s_stories.Value;
        var full = texts.Cast<TextExample>().Select(t => tokenizer.Encode(t.Text).Append(2).ToArray()).ToList();
        var result = TextLmEncoder.Encode(texts, tokenizer, new TextLmOptions { MaxLength = 100 });
        Assert.Equal(texts.Count, result.Count);
        Assert.Equal(full.Count(f => f.Length > 100), result.Truncated);
        Assert.InRange(result.Truncated, 1, texts.Count - 1);
        for (int i = 0; i < full.Count; i++)
        {
            Assert.Equal(full[i].Take(100), result.Examples[i].InputIds);
            Assert.Equal(result.Examples[i].InputIds, result.Examples[i].Labels!);
        }
        Assert.Equal(0, result.DroppedTokens);
    }

    [Fact]
    public void Non_text_rows_are_rejected()
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        Assert.ThrowsAny<PeftException>(() => TextLmEncoder.Encode([new InstructionExample("a", "", "b")], tokenizer));
    }
}
