using PeftSharp.Tokenization.ChatTemplates;
using static PeftSharp.Tests.Tokenization.ChatTemplates.TemplateAssert;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>Unsupported constructs are ConfigExceptions naming the construct and its position; runtime failures are ChatTemplateExceptions.</summary>
public class ChatTemplateErrorTests
{
    [Theory]
    [InlineData("{{ x | slugify }}", "filter 'slugify'", "line 1, column 8")]
    [InlineData("a\n{% include 'other.jinja' %}", "tag '{% include %}'", "line 2, column 4")]
    [InlineData("{% if x is prime %}{% endif %}", "test 'prime'", "line 1, column 12")]
    [InlineData("{% for x in xs recursive %}{% endfor %}", "recursive", "line 1, column 16")]
    [InlineData("{{ f(*args) }}", "unpacking", "line 1, column 6")]
    public void Unsupported_constructs_fail_at_parse_with_name_and_position(string template, string construct, string position)
    {
        var e = Assert.Throws<ConfigException>(() => ChatTemplate.Parse(template));
        Assert.Contains(construct, e.Message);
        Assert.Contains(position, e.Message);
    }

    [Theory]
    [InlineData("{{ 'abc'.zfill(5) }}", "method 'str.zfill()'", "line 1, column 10")]
    [InlineData("\n\n  {{ messages.pop() }}", "method 'list.pop()'", "line 3, column 15")]
    [InlineData("{{ cycler('a', 'b') }}", "function 'cycler()'", "line 1, column 4")]
    [InlineData("{{ strftime_now('%Q') }}", "strftime directive '%Q'", "line 1, column 4")]
    public void Unsupported_methods_fail_at_render_with_name_and_position(string template, string construct, string position)
    {
        var parsed = ChatTemplate.Parse(template);
        var e = Assert.Throws<ConfigException>(() => parsed.Render(Context(("messages", new List<object?>()))));
        Assert.Contains("unsupported " + construct, e.Message);
        Assert.Contains(position, e.Message);
    }

    [Theory]
    [InlineData("{% if true %}never closed", "never closed")]
    [InlineData("{{ 'a' ", "never closed")]
    [InlineData("{# comment", "never closed")]
    [InlineData("{% endif %}", "no matching opening tag")]
    [InlineData("{% break %}", "outside a for loop")]
    [InlineData("{{ (1, 2] }}", "unexpected ']'")]
    [InlineData("{{ 'unterminated }}", "never closed")]
    public void Syntax_errors_are_config_exceptions(string template, string message)
    {
        var e = Assert.Throws<ConfigException>(() => ChatTemplate.Parse(template));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Raise_exception_throws_the_templates_message_verbatim()
    {
        var template = ChatTemplate.Parse("{% if messages|length == 0 %}{{ raise_exception('No messages given!') }}{% endif %}ok");
        var e = Assert.Throws<ChatTemplateException>(() => template.Render(Context(("messages", new List<object?>()))));
        Assert.Equal("No messages given!", e.Message);
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("ok", template.Render(Context(("messages", new List<object?> { "m" }))));
    }

    [Theory]
    [InlineData("{{ 'a' + 1 }}", "can only concatenate str (not \"int\") to str")]
    [InlineData("{{ 1 / 0 }}", "division by zero")]
    [InlineData("{{ missing + 1 }}", "'missing' is undefined")]
    [InlineData("{{ missing.content.startswith('x') }}", "'missing' is undefined")]
    [InlineData("{% for x in none %}{% endfor %}", "not iterable")]
    [InlineData("{% set x = 1 %}{% set x.a = 2 %}", "only a namespace() object")]
    [InlineData("{% for a, b in [[1, 2, 3]] %}{% endfor %}", "too many values to unpack")]
    [InlineData("{{ missing | tojson }}", "not JSON serializable")]
    [InlineData("{{ 'a' < 1 }}", "'<' not supported between instances of 'str' and 'int'")]
    public void Type_errors_name_the_problem_and_position(string template, string message)
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render(template));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("chat template line 1, column ", e.Message);
        Assert.False(e.RaisedByTemplate);
    }

    [Fact]
    public void Unsupported_context_value_types_are_rejected_with_their_path()
    {
        var template = ChatTemplate.Parse("{{ x }}");
        var e = Assert.Throws<ConfigException>(() => template.Render(Context(("x", new Dictionary<string, object?> { ["when"] = new Uri("http://a") }))));
        Assert.Contains("'x.when'", e.Message);
    }

    [Fact]
    public void Extra_variables_cannot_replace_messages()
    {
        var template = ChatTemplate.Parse("{{ messages | length }}");
        Assert.Throws<ConfigException>(() => template.Render([new ChatMessage("user", "hi")], false, new Dictionary<string, object?> { ["messages"] = null }));
    }
}
