using PeftSharp.Tokenization.ChatTemplates;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Chat templates as published in models' tokenizer_config.json (ChatML, SmolLM2, Zephyr/TinyLlama, Llama 2, Gemma,
/// Mistral v0.3 with tools, Llama 3.2). Expected strings are derived by hand from each template.
/// </summary>
public class RealChatTemplateTests
{
    private const string ChatMl =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    private const string SmolLm2 =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
        + "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    // TinyLlama-Chat / Zephyr: one tag per line, so the output depends on trim_blocks.
    private const string Zephyr =
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
        + "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
        + "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
        + "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

    private const string Llama2 =
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
        + "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
        + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        + "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        + "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        + "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

    private const string Gemma =
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}"
        + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        + "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
        + "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

    private static readonly Dictionary<string, object?> s_llamaTokens = new() { ["bos_token"] = "<s>", ["eos_token"] = "</s>" };

    [Fact]
    public void ChatMl_wraps_each_turn_in_im_start_im_end()
    {
        var messages = new[] { new ChatMessage("system", "You are helpful."), new ChatMessage("user", "Hi") };
        Assert.Equal("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Parse(ChatMl).Render(messages, addGenerationPrompt: true));
    }

    [Fact]
    public void SmolLm2_adds_its_default_system_prompt_only_without_a_system_message()
    {
        var template = ChatTemplate.Parse(SmolLm2);
        Assert.Equal("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            template.Render([new ChatMessage("user", "Hi")], addGenerationPrompt: true));
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
            template.Render([new ChatMessage("system", "S"), new ChatMessage("user", "Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Zephyr_keeps_the_newline_after_each_expression_and_drops_those_after_tags()
    {
        var messages = new[] { new ChatMessage("system", "S"), new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"), new ChatMessage("user", "Bye") };
        Assert.Equal("<|system|>\nS</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello</s>\n<|user|>\nBye</s>\n<|assistant|>\n",
            ChatTemplate.Parse(Zephyr).Render(messages, addGenerationPrompt: true, s_llamaTokens));
    }

    [Fact]
    public void Llama2_puts_the_system_prompt_inside_the_first_inst_block()
    {
        var messages = new[] { new ChatMessage("system", "Be nice."), new ChatMessage("user", " Hello "), new ChatMessage("assistant", "Hi there"), new ChatMessage("user", "Bye") };
        // content.strip() trims only the ends of '<<SYS>>...\n\n Hello ', so the space before Hello stays.
        Assert.Equal("<s>[INST] <<SYS>>\nBe nice.\n<</SYS>>\n\n Hello [/INST] Hi there </s><s>[INST] Bye [/INST]",
            ChatTemplate.Parse(Llama2).Render(messages, addGenerationPrompt: false, s_llamaTokens));
    }

    [Fact]
    public void Llama2_rejects_roles_that_do_not_alternate()
    {
        var messages = new[] { new ChatMessage("user", "a"), new ChatMessage("user", "b") };
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(Llama2).Render(messages, false, s_llamaTokens));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.Message);
    }

    [Fact]
    public void Gemma_trims_only_the_content_and_renames_assistant_to_model()
    {
        var messages = new[] { new ChatMessage("user", " Hi "), new ChatMessage("assistant", "Hello\n") };
        var extra = new Dictionary<string, object?> { ["bos_token"] = "<bos>" };
        Assert.Equal("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n",
            ChatTemplate.Parse(Gemma).Render(messages, addGenerationPrompt: true, extra));
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(Gemma).Render([new ChatMessage("system", "S")], false, extra));
        Assert.Equal("System role not supported", e.Message);
    }

    private const string MistralV03 = """
        {%- if messages[0]["role"] == "system" -%}
            {%- set system_message = messages[0]["content"] -%}
            {%- set loop_messages = messages[1:] -%}
        {%- else -%}
            {%- set loop_messages = messages -%}
        {%- endif -%}
        {%- if not tools is defined -%}
            {%- set tools = none -%}
        {%- endif -%}
        {%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list -%}
        {{- bos_token -}}
        {%- for message in loop_messages -%}
            {%- if message["role"] == "user" -%}
                {%- if tools is not none and (message == user_messages[-1]) -%}
                    {{- "[AVAILABLE_TOOLS][" -}}
                    {%- for tool in tools -%}
                        {%- set tool = tool.function -%}
                        {{- '{"type": "function", "function": {' -}}
                        {%- for key, val in tool.items() if key != "return" -%}
                            {%- if val is string -%}
                                {{- '"' + key + '": "' + val + '"' -}}
                            {%- else -%}
                                {{- '"' + key + '": ' + val|tojson -}}
                            {%- endif -%}
                            {%- if not loop.last -%}
                                {{- ", " -}}
                            {%- endif -%}
                        {%- endfor -%}
                        {{- "}}" -}}
                        {%- if not loop.last -%}
                            {{- ", " -}}
                        {%- else -%}
                            {{- "]" -}}
                        {%- endif -%}
                    {%- endfor -%}
                    {{- "[/AVAILABLE_TOOLS]" -}}
                {%- endif -%}
                {%- if loop.last and system_message is defined -%}
                    {{- "[INST]" + system_message + "\n\n" + message["content"] + "[/INST]" -}}
                {%- else -%}
                    {{- "[INST]" + message["content"] + "[/INST]" -}}
                {%- endif -%}
            {%- elif message["role"] == "tool_calls" or message.tool_calls is defined -%}
                {%- if message.tool_calls is defined -%}
                    {%- set tool_calls = message.tool_calls -%}
                {%- else -%}
                    {%- set tool_calls = message.content -%}
                {%- endif -%}
                {{- "[TOOL_CALLS][" -}}
                {%- for tool_call in tool_calls -%}
                    {%- set out = tool_call.function|tojson -%}
                    {{- out[:-1] -}}
                    {%- if not tool_call.id is defined or tool_call.id|length != 9 -%}
                        {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") -}}
                    {%- endif -%}
                    {{- ', "id": "' + tool_call.id + '"}' -}}
                    {%- if not loop.last -%}
                        {{- ", " -}}
                    {%- else -%}
                        {{- "]" + eos_token -}}
                    {%- endif -%}
                {%- endfor -%}
            {%- elif message["role"] == "assistant" -%}
                {{- message["content"] + eos_token -}}
            {%- else -%}
                {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") -}}
            {%- endif -%}
        {%- endfor -%}
        """;

    [Fact]
    public void Mistral_v03_lists_tools_before_the_last_user_turn_and_checks_tool_call_ids()
    {
        var tool = new Dictionary<string, object?>
        {
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?>
            {
                ["name"] = "get_weather",
                ["description"] = "Weather",
                ["parameters"] = new Dictionary<string, object?> { ["type"] = "object" },
                ["return"] = "skipped",
            },
        };
        var extra = new Dictionary<string, object?>(s_llamaTokens) { ["tools"] = new List<object?> { tool } };
        var template = ChatTemplate.Parse(MistralV03);
        var messages = new[] { new ChatMessage("system", "Sys"), new ChatMessage("user", "Q1"), new ChatMessage("assistant", "A1"), new ChatMessage("user", "Weather?") };
        Assert.Equal("<s>[INST]Q1[/INST]A1</s>[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
            + "\"parameters\": {\"type\": \"object\"}}}][/AVAILABLE_TOOLS][INST]Sys\n\nWeather?[/INST]",
            template.Render(messages, addGenerationPrompt: false, extra));

        var call = new Dictionary<string, object?>
        {
            ["id"] = "abcdefghi",
            ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = new Dictionary<string, object?> { ["city"] = "Paris" } },
        };
        var withCall = new ChatMessage("assistant", "") { Extra = new Dictionary<string, object?> { ["tool_calls"] = new List<object?> { call } } };
        // tojson of the function minus its closing brace, then the id.
        Assert.Equal("<s>[INST]Go[/INST][TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcdefghi\"}]</s>",
            template.Render([new ChatMessage("user", "Go"), withCall], addGenerationPrompt: false, s_llamaTokens));

        call["id"] = "short";
        var e = Assert.Throws<ChatTemplateException>(() => template.Render([new ChatMessage("user", "Go"), withCall], false, s_llamaTokens));
        Assert.Equal("Tool call IDs should be alphanumeric strings with length 9!", e.Message);
    }
}
