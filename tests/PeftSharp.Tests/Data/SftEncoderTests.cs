using PeftSharp.Data;
using PeftSharp.Tests.Tokenization;
using PeftSharp.Training;

namespace PeftSharp.Tests.Data;

/// <summary>
/// Prompt masking on hand-checked examples: the ids below were read token by token against each tokenizer's
/// vocabulary (stories260K: byte-fallback BPE, "###" = 3 × &lt;0x23&gt;; MiniLM: WordPiece, lower-cased).
/// </summary>
public sealed class SftEncoderTests
{
    private const int Ignore = (int)Losses.IgnoreIndex;

    private static readonly InstructionExample s_sayHi = new("Say hi.", "", "Hi!");

    [Fact]
    public void Alpaca_prompt_text_is_the_documented_format()
    {
        Assert.Equal("### Instruction:\nSay hi.\n\n### Response:\n", AlpacaPromptFormat.Prompt("Say hi.", ""));
        Assert.Equal("### Instruction:\nAdd.\n\n### Input:\n2 3\n\n### Response:\n", AlpacaPromptFormat.Prompt("Add.", "2 3"));
    }

    [Fact]
    public void Stories260K_labels_mask_the_prompt_and_keep_response_and_eos()
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var (ids, labels) = SftEncoder.Tokenize(AlpacaPromptFormat.Instance.Render(s_sayHi), tokenizer);
        int[] expectedIds =
        [
            1,                                                  // <s>
            410, 38, 38, 38, 359, 416, 356, 420, 425, 429, 413, 417, 289, 467, 13, // ▁ # # # ▁I n st r u c t i on : \n
            437, 283, 270, 417, 426, 13, 13,                    // S ay ▁h i . \n \n
            38, 38, 38, 410, 461, 406, 427, 289, 372, 467, 13,  // # # # ▁ R es p on se : \n
            440, 417, 443,                                      // H i !   (no ▁: it follows a line break)
            2,                                                  // </s>
        ];
        Assert.Equal(expectedIds, ids);
        Assert.Equal(Enumerable.Repeat(Ignore, 34).Concat([440, 417, 443, 2]), labels);
    }

    [Fact]
    public void MiniLM_labels_mask_cls_and_prompt_and_train_on_the_final_sep()
    {
        // No eos_token: nothing is appended; BERT's [SEP] ends the response and is its last target.
        var tokenizer = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        var (ids, labels) = SftEncoder.Tokenize(AlpacaPromptFormat.Instance.Render(s_sayHi), tokenizer);
        Assert.Equal([101, 1001, 1001, 1001, 7899, 1024, 2360, 7632, 1012, 1001, 1001, 1001, 3433, 1024, 7632, 999, 102], ids);
        Assert.Equal(Enumerable.Repeat(Ignore, 14).Concat([7632, 999, 102]), labels);
    }

    [Fact]
    public void Response_ids_are_those_of_the_whole_text_not_of_the_response_alone()
    {
        // Alone, "Hi!" starts with "▁H" (320); after the prompt's line break it is "H" (440).
        var tokenizer = TokenizerFixtures.Model("stories260K");
        Assert.Equal(320, tokenizer.Encode("Hi!", addSpecialTokens: false)[0]);
        var example = SftEncoder.Encode([s_sayHi], tokenizer).Examples.Single();
        Assert.Equal(440, example.InputIds[34]);
        Assert.Null(example.TokenTypeIds);
        Assert.Null(example.ClassLabel);
    }

    [Fact]
    public void Truncation_keeps_the_prompt_and_cuts_the_response_on_the_right()
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var result = SftEncoder.Encode([s_sayHi], tokenizer, new SftOptions { MaxLength = 36 });
        var e = result.Examples.Single();
        Assert.Equal(1, result.Truncated);
        Assert.Equal(36, e.Length);
        Assert.Equal(Enumerable.Repeat(Ignore, 34).Concat([440, 417]), e.Labels!);
    }

    [Theory]
    [InlineData(34, 1)] // "Say hi."'s 34 prompt tokens fill the limit: no response token would remain; "x" fits
    [InlineData(35, 0)]
    [InlineData(10, 2)]
    public void An_example_whose_prompt_fills_the_limit_is_dropped_and_counted(int maxLength, int dropped)
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var result = SftEncoder.Encode([s_sayHi, new InstructionExample("x", "", "y")], tokenizer, new SftOptions { MaxLength = maxLength });
        Assert.Equal(dropped, result.Dropped);
        Assert.Equal(2 - dropped, result.Count);
    }

    [Fact]
    public void Input_block_is_part_of_the_masked_prompt()
    {
        var tokenizer = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        var (ids, labels) = SftEncoder.Tokenize(AlpacaPromptFormat.Instance.Render(new InstructionExample("Add.", "2 3", "5")), tokenizer);
        // [CLS] # # # instruction : add . # # # input : 2 3 # # # response : 5 [SEP]
        Assert.Equal([101, 1001, 1001, 1001, 7899, 1024, 5587, 1012, 1001, 1001, 1001, 7953, 1024, 1016, 1017, 1001, 1001, 1001, 3433, 1024, 1019, 102], ids);
        Assert.Equal(Enumerable.Repeat(Ignore, 20).Concat([1019, 102]), labels);
    }

    [Fact]
    public void Chat_trains_on_every_assistant_turn_only()
    {
        var tokenizer = TokenizerFixtures.Model("all-MiniLM-L6-v2");
        var chat = new ChatExample([new("user", "hi"), new("assistant", "hello"), new("user", "bye"), new("assistant", "ciao")]);
        var (ids, labels) = SftEncoder.Tokenize(AlpacaPromptFormat.Instance.Render(chat), tokenizer);
        // [CLS] ###instruction: hi ###response: hello ###instruction: bye ###response: ciao [SEP]
        int hello = tokenizer.StringToId("hello")!.Value, bye = tokenizer.StringToId("bye")!.Value;
        int helloAt = Array.IndexOf(ids, hello), byeAt = Array.IndexOf(ids, bye);
        Assert.Equal(12, helloAt);
        Assert.Equal(hello, labels[helloAt]);
        Assert.All(labels[..helloAt], l => Assert.Equal(Ignore, l));
        Assert.All(labels[(helloAt + 1)..(ids.Length - 3)], l => Assert.Equal(Ignore, l)); // the second prompt, "bye" included
        Assert.Equal(Ignore, labels[byeAt]);
        Assert.Equal(ids[^3..], labels[^3..]); // "cia" "##o" [SEP]
        Assert.Equal(102, ids[^1]);
    }

    [Fact]
    public void Rows_of_other_kinds_are_rejected_with_their_line()
    {
        var tokenizer = TokenizerFixtures.Model("stories260K");
        var e = Assert.ThrowsAny<PeftException>(() => SftEncoder.Encode([new TextExample("x") { Line = 9 }], tokenizer));
        Assert.Contains("line 9", e.Message);
    }
}
