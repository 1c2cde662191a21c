using PeftSharp.Data;
using PeftSharp.Tests.Tokenization;
using PeftSharp.Tokenization;
using PeftSharp.Tokenization.ChatTemplates;
using PeftSharp.Training;

namespace PeftSharp.Tests.Data;

/// <summary>SFT through a model's chat template: the trained text is what each assistant turn adds, written out by hand from the template.</summary>
public sealed class ChatTemplateSftTests
{
    private const string ChatMl =
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    private static HfTokenizer Qwen3 => TokenizerFixtures.Fixture("qwen3");

    private static (string Prompt, string Trained) Split(HfTokenizer tokenizer, int[] ids, int[] labels)
    {
        var trained = ids.Where((_, i) => labels[i] != Losses.IgnoreIndex);
        var untrained = ids.Where((_, i) => labels[i] == Losses.IgnoreIndex);
        return (tokenizer.Decode(untrained), tokenizer.Decode(trained));
    }

    [Fact]
    public void A_tokenizer_with_a_template_uses_it_and_one_without_uses_Alpaca()
    {
        Assert.IsType<ChatTemplateFormat>(PromptFormats.For(Qwen3));
        Assert.IsType<AlpacaPromptFormat>(PromptFormats.For(TokenizerFixtures.Model("stories260K")));
    }

    [Fact]
    public void Qwen3_instruction_trains_on_the_assistant_turn_with_its_end_token()
    {
        var rendered = PromptFormats.For(Qwen3).Render(new InstructionExample("Add.", "2 3", "5"));
        var (ids, labels) = SftEncoder.Tokenize(rendered, Qwen3);
        // Qwen3's template: the last assistant turn gets an empty think block.
        const string prompt = "<|im_start|>user\nAdd.\n\n2 3<|im_end|>\n<|im_start|>assistant\n";
        const string response = "<think>\n\n</think>\n\n5<|im_end|>\n";
        Assert.Equal(Qwen3.Encode(prompt + response, addSpecialTokens: false), ids);
        Assert.Equal((prompt, response), Split(Qwen3, ids, labels));
        Assert.Equal(Qwen3.Encode(prompt, addSpecialTokens: false).Count, Array.FindIndex(labels, l => l != Losses.IgnoreIndex));
        Assert.NotEqual(Qwen3.EosTokenId, ids[^1]); // the template ends with "\n"; no EOS appended
    }

    [Fact]
    public void Prefix_stable_template_trains_every_assistant_turn()
    {
        var format = new ChatTemplateFormat(ChatTemplate.Parse(ChatMl), Qwen3);
        var chat = new ChatExample([new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello!"), new("user", "Bye"), new("assistant", "Ciao.")]);
        var (ids, labels) = SftEncoder.Tokenize(format.Render(chat), Qwen3);
        var trainedRuns = new List<string>();
        for (int i = 0; i < ids.Length;)
        {
            int j = i;
            while (j < ids.Length && (labels[j] != Losses.IgnoreIndex) == (labels[i] != Losses.IgnoreIndex))
            {
                j++;
            }
            if (labels[i] != Losses.IgnoreIndex)
            {
                trainedRuns.Add(Qwen3.Decode(ids[i..j]));
            }
            i = j;
        }
        Assert.Equal(["Hello!<|im_end|>\n", "Ciao.<|im_end|>\n"], trainedRuns);
    }

    [Fact]
    public void Qwen3_multi_turn_is_not_prefix_stable_so_only_the_last_turn_is_trained()
    {
        // With a later user turn, Qwen3 renders the first answer without the think block it gets when it is last.
        var chat = new ChatExample([new("user", "Hi"), new("assistant", "Hello!"), new("user", "Bye"), new("assistant", "Ciao.")]);
        var (ids, labels) = SftEncoder.Tokenize(PromptFormats.For(Qwen3).Render(chat), Qwen3);
        Assert.Equal("<think>\n\n</think>\n\nCiao.<|im_end|>\n", Split(Qwen3, ids, labels).Trained);
    }
}
