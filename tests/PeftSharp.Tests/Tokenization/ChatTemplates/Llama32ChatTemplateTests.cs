using PeftSharp.Tokenization.ChatTemplates;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Llama 3.2 Instruct's chat template: strftime_now for the date, tools in the first user turn as tojson(indent=4),
/// and an element-wise whitespace layout that relies on '-' everywhere. Expected text derived by hand.
/// </summary>
public class Llama32ChatTemplateTests
{
    private const string Template = """
        {{- bos_token }}
        {%- if custom_tools is defined %}
            {%- set tools = custom_tools %}
        {%- endif %}
        {%- if not tools_in_user_message is defined %}
            {%- set tools_in_user_message = true %}
        {%- endif %}
        {%- if not date_string is defined %}
            {%- if strftime_now is defined %}
                {%- set date_string = strftime_now("%d %b %Y") %}
            {%- else %}
                {%- set date_string = "26 Jul 2024" %}
            {%- endif %}
        {%- endif %}
        {%- if not tools is defined %}
            {%- set tools = none %}
        {%- endif %}

        {#- This block extracts the system message, so we can slot it into the right place. #}
        {%- if messages[0]['role'] == 'system' %}
            {%- set system_message = messages[0]['content']|trim %}
            {%- set messages = messages[1:] %}
        {%- else %}
            {%- set system_message = "" %}
        {%- endif %}

        {#- System message #}
        {{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
        {%- if tools is not none %}
            {{- "Environment: ipython\n" }}
        {%- endif %}
        {{- "Cutting Knowledge Date: December 2023\n" }}
        {{- "Today Date: " + date_string + "\n\n" }}
        {%- if tools is not none and not tools_in_user_message %}
            {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
            {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
            {{- "Do not use variables.\n\n" }}
            {%- for t in tools %}
                {{- t | tojson(indent=4) }}
                {{- "\n\n" }}
            {%- endfor %}
        {%- endif %}
        {{- system_message }}
        {{- "<|eot_id|>" }}

        {#- Custom tools are passed in a user message with some extra guidance #}
        {%- if tools_in_user_message and not tools is none %}
            {#- Extract the first user message so we can plug it in here #}
            {%- if messages | length != 0 %}
                {%- set first_user_message = messages[0]['content']|trim %}
                {%- set messages = messages[1:] %}
            {%- else %}
                {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
        {%- endif %}
            {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
            {{- "Given the following functions, please respond with a JSON for a function call " }}
            {{- "with its proper arguments that best answers the given prompt.\n\n" }}
            {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
            {{- "Do not use variables.\n\n" }}
            {%- for t in tools %}
                {{- t | tojson(indent=4) }}
                {{- "\n\n" }}
            {%- endfor %}
            {{- first_user_message + "<|eot_id|>"}}
        {%- endif %}

        {%- for message in messages %}
            {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
                {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
            {%- elif 'tool_calls' in message %}
                {%- if not message.tool_calls|length == 1 %}
                    {{- raise_exception("This model only supports single tool-calls at once!") }}
                {%- endif %}
                {%- set tool_call = message.tool_calls[0].function %}
                {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
                {{- '{"name": "' + tool_call.name + '", ' }}
                {{- '"parameters": ' }}
                {{- tool_call.arguments | tojson }}
                {{- "}" }}
                {{- "<|eot_id|>" }}
            {%- elif message.role == "tool" or message.role == "ipython" %}
                {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
                {%- if message.content is mapping or message.content is iterable %}
                    {{- message.content | tojson }}
                {%- else %}
                    {{- message.content }}
                {%- endif %}
                {{- "<|eot_id|>" }}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {%- endif %}
        """;

    private static readonly DateTime s_fixedNow = new(2024, 7, 26, 9, 30, 0);

    private static string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, Dictionary<string, object?> extra) =>
        ChatTemplate.Parse(Template).Render(ChatTemplate.BuildContext(messages, addGenerationPrompt, extra), () => s_fixedNow);

    private static Dictionary<string, object?> Tokens() => new() { ["bos_token"] = "<|begin_of_text|>" };

    [Fact]
    public void Plain_chat_gets_the_date_from_strftime_now_and_trims_contents()
    {
        var rendered = Render([new ChatMessage("system", " Be brief. "), new ChatMessage("user", "Hi\n")], addGenerationPrompt: true, Tokens());
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            rendered);
    }

    [Fact]
    public void Date_string_given_by_the_caller_wins()
    {
        var extra = Tokens();
        extra["date_string"] = "01 Jan 2025";
        Assert.Contains("Today Date: 01 Jan 2025\n", Render([new ChatMessage("user", "Hi")], false, extra));
    }

    [Fact]
    public void Tools_go_into_the_first_user_turn_as_indented_json()
    {
        var extra = Tokens();
        extra["tools"] = new List<object?>
        {
            new Dictionary<string, object?>
            {
                ["type"] = "function",
                ["function"] = new Dictionary<string, object?>
                {
                    ["name"] = "get_time",
                    ["description"] = "Current time",
                    ["parameters"] = new Dictionary<string, object?> { ["type"] = "object", ["properties"] = new Dictionary<string, object?>() },
                },
            },
        };
        const string ToolJson = "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_time\",\n        \"description\": \"Current time\",\n"
            + "        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {}\n        }\n    }\n}";
        var expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call "
            + "with its proper arguments that best answers the given prompt.\n\n"
            + "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n"
            + ToolJson + "\n\nWhat time is it?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(expected, Render([new ChatMessage("user", "What time is it?")], addGenerationPrompt: true, extra));
    }

    [Fact]
    public void A_tool_result_string_is_dumped_as_json_because_strings_are_iterable()
    {
        var call = new Dictionary<string, object?>
        {
            ["function"] = new Dictionary<string, object?> { ["name"] = "get_time", ["arguments"] = new Dictionary<string, object?> { ["tz"] = "UTC" } },
        };
        var messages = new[]
        {
            new ChatMessage("user", "Time?"),
            new ChatMessage("assistant", "") { Extra = new Dictionary<string, object?> { ["tool_calls"] = new List<object?> { call } } },
            new ChatMessage("tool", "09:30"),
        };
        var extra = Tokens();
        extra["date_string"] = "26 Jul 2024";
        var expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nTime?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}<|eot_id|>"
            + "<|start_header_id|>ipython<|end_header_id|>\n\n\"09:30\"<|eot_id|>";
        Assert.Equal(expected, Render(messages, addGenerationPrompt: false, extra));
    }
}
