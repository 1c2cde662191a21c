using System.Text.Json;
using PeftSharp.Tests.Support;
using PeftSharp.Tokenization.ChatTemplates;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>
/// The Qwen3 chat_template from the fixture's tokenizer_config.json against renderings by Hugging Face's Jinja engine
/// (chat_expected.json), plus tool, tool-call and thinking conversations whose expected text is derived by hand from
/// the template.
/// </summary>
public class Qwen3ChatTemplateTests
{
    private static readonly Lazy<ChatTemplate> s_template = new(() =>
        ChatTemplate.FromTokenizerConfig(SharedPaths.Fixture("tokenizers", "qwen3", "tokenizer_config.json")));

    private static JsonElement GoldenCase(int index)
    {
        var json = File.ReadAllText(SharedPaths.Fixture("tokenizers", "qwen3", "chat_expected.json"));
        return JsonDocument.Parse(json).RootElement.GetProperty("cases")[index].Clone();
    }

    public static TheoryData<int> GoldenCases()
    {
        var json = File.ReadAllText(SharedPaths.Fixture("tokenizers", "qwen3", "chat_expected.json"));
        var count = JsonDocument.Parse(json).RootElement.GetProperty("cases").GetArrayLength();
        return new TheoryData<int>(Enumerable.Range(0, count));
    }

    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void Renders_exactly_as_the_reference_engine(int index)
    {
        var golden = GoldenCase(index);
        var messages = golden.GetProperty("messages").EnumerateArray()
            .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!))
            .ToList();
        var rendered = s_template.Value.Render(messages, golden.GetProperty("add_generation_prompt").GetBoolean());
        Assert.Equal(golden.GetProperty("rendered").GetString(), rendered);
    }

    private static Dictionary<string, object?> WeatherTool() => new()
    {
        ["type"] = "function",
        ["function"] = new Dictionary<string, object?>
        {
            ["name"] = "get_weather",
            ["description"] = "Météo of a city",
            ["parameters"] = new Dictionary<string, object?>
            {
                ["type"] = "object",
                ["properties"] = new Dictionary<string, object?> { ["city"] = new Dictionary<string, object?> { ["type"] = "string" } },
                ["required"] = new List<object?> { "city" },
            },
        },
    };

    [Fact]
    public void Tools_go_into_the_system_turn_as_one_json_line_each_without_ascii_escaping()
    {
        var messages = new[] { new ChatMessage("system", "Be brief."), new ChatMessage("user", "Weather in Paris?") };
        var extra = new Dictionary<string, object?> { ["tools"] = new List<object?> { WeatherTool() } };
        var expected =
            "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Météo of a city\", " +
            "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n" +
            "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
            "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(expected, s_template.Value.Render(messages, addGenerationPrompt: true, extra));
    }

    [Fact]
    public void Tool_calls_and_responses_render_and_only_the_final_answer_keeps_its_thinking()
    {
        var call = new Dictionary<string, object?>
        {
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = new Dictionary<string, object?> { ["city"] = "Paris" } },
        };
        var messages = new[]
        {
            new ChatMessage("user", "Weather in Paris?"),
            new ChatMessage("assistant", "") { Extra = new Dictionary<string, object?> { ["tool_calls"] = new List<object?> { call } } },
            new ChatMessage("tool", "21 °C"),
            new ChatMessage("assistant", "<think>\nWarm.\n</think>\n\nIt is 21 °C."),
        };
        // The last user query is message 0, so both assistant turns come after it; the tool-call turn has no
        // reasoning and is not last, so it gets no <think> block; the final one splits its content at </think>.
        var expected =
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\n<tool_response>\n21 °C\n</tool_response><|im_end|>\n" +
            "<|im_start|>assistant\n<think>\nWarm.\n</think>\n\nIt is 21 °C.<|im_end|>\n";
        Assert.Equal(expected, s_template.Value.Render(messages, addGenerationPrompt: false));
    }

    [Fact]
    public void Reasoning_content_field_is_used_when_given()
    {
        var messages = new[]
        {
            new ChatMessage("user", "Hi"),
            new ChatMessage("assistant", "Hello") { Extra = new Dictionary<string, object?> { ["reasoning_content"] = "\nbe polite\n" } },
        };
        var expected = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nbe polite\n</think>\n\nHello<|im_end|>\n";
        Assert.Equal(expected, s_template.Value.Render(messages, addGenerationPrompt: false));
    }

    [Fact]
    public void Thinking_of_turns_before_the_last_user_query_is_dropped()
    {
        var messages = new[] { new ChatMessage("user", "Hi"), new ChatMessage("assistant", "<think>x</think>Hello"), new ChatMessage("user", "Bye") };
        var expected = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n";
        Assert.Equal(expected, s_template.Value.Render(messages, addGenerationPrompt: false));
    }

    [Theory]
    [InlineData(false, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")]
    [InlineData(true, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")]
    public void Enable_thinking_false_appends_an_empty_think_block(bool enableThinking, string expected)
    {
        var extra = new Dictionary<string, object?> { ["enable_thinking"] = enableThinking };
        Assert.Equal(expected, s_template.Value.Render([new ChatMessage("user", "Hi")], addGenerationPrompt: true, extra));
    }

    [Fact]
    public void Consecutive_tool_results_share_one_user_turn()
    {
        var messages = new[]
        {
            new ChatMessage("user", "Go"),
            new ChatMessage("assistant", "Calling."),
            new ChatMessage("tool", "r1"),
            new ChatMessage("tool", "r2"),
        };
        var expected = "<|im_start|>user\nGo<|im_end|>\n<|im_start|>assistant\nCalling.<|im_end|>\n" +
            "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n";
        Assert.Equal(expected, s_template.Value.Render(messages, addGenerationPrompt: false));
    }
}
