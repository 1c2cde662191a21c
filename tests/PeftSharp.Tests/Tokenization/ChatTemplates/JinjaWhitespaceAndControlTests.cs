using static PeftSharp.Tests.Tokenization.ChatTemplates.TemplateAssert;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Whitespace handling under transformers' settings (trim_blocks, lstrip_blocks, '-' and '+' modifiers) and the control
/// statements. Expected strings are worked out by hand from Jinja's rules.
/// </summary>
public class JinjaWhitespaceAndControlTests
{
    [Theory]
    // trim_blocks drops the newline after a block tag; Jinja drops the template's single trailing newline.
    [InlineData("{% if true %}\n  yes\n{% endif %}\n", "  yes\n")]
    // lstrip_blocks removes the indentation before a block tag that starts its line.
    [InlineData("<ul>\n    {% for x in [1, 2] %}\n    <li>{{ x }}</li>\n    {% endfor %}\n</ul>", "<ul>\n    <li>1</li>\n    <li>2</li>\n</ul>")]
    // ...but not before an expression, and not when text precedes the tag on its line.
    [InlineData("  {{ 'x' }}\n", "  x")]
    [InlineData("a  {% if true %}b{% endif %}", "a  b")]
    // '-' strips every whitespace character (newlines too) on its side.
    [InlineData("a  \n {{- 'b' -}} \n\n c", "abc")]
    [InlineData("{%- for x in [1, 2] -%}\n  {{ x }}\n{%- endfor %}", "12")]
    // '+' keeps the indentation that lstrip_blocks would remove, and the newline trim_blocks would remove.
    [InlineData("  {%+ if true %}x{% endif +%}\ny", "  x\ny")]
    // Comments vanish; they take part in lstrip_blocks and trim_blocks like block tags.
    [InlineData("line\n  {# note #}\nnext", "line\nnext")]
    [InlineData("a {# note #} b", "a  b")]
    [InlineData("a\n  {#- note -#}  \nb", "ab")]
    // An expression tag keeps the newline after it.
    [InlineData("{{ 'x' }}\ny", "x\ny")]
    [InlineData("x\n\n", "x\n")]
    [InlineData("{% raw %}{{ not evaluated }}{% endraw %}", "{{ not evaluated }}")]
    [InlineData("a\r\nb", "a\nb")]
    public void Whitespace_follows_trim_and_lstrip_blocks(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Fact]
    public void Loop_variables_count_from_both_ends()
    {
        const string Template = "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ x }}"
            + "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}{{ loop.length }};{% endfor %}";
        Assert.Equal("1032aF3;2121b3;3210cL3;", Render(Template));
    }

    [Fact]
    public void Previtem_and_nextitem_are_undefined_at_the_ends()
    {
        const string Template = "{% for x in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ x }}{{ loop.nextitem | default('-') }} {% endfor %}";
        Assert.Equal("-12 123 23- ", Render(Template));
    }

    [Theory]
    [InlineData("{% for x in [] %}x{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for x in missing %}x{% else %}none{% endfor %}", "none")]
    [InlineData("{% for x in range(10) if x is even %}{{ x }}{{ '/' if not loop.last }}{% endfor %}", "0/2/4/6/8")]
    [InlineData("{% for x in range(10) if x > 6 %}{{ loop.index }}of{{ loop.length }} {% endfor %}", "1of3 2of3 3of3 ")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;")]
    [InlineData("{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}", "za")]
    [InlineData("{% for c in 'abc' %}{{ c }}.{% endfor %}", "a.b.c.")]
    [InlineData("{% for i in range(6) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", "023")]
    [InlineData("{% for row in [[1, 2], [3]] %}{% for x in row %}{{ loop.index }}{% endfor %}|{{ loop.index }} {% endfor %}", "12|1 1|2 ")]
    [InlineData("{% for x in 'ab' %}{{ loop.cycle('odd', 'even') }} {% endfor %}", "odd even ")]
    public void For_loops_follow_jinja(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    // A set inside a loop body is local to that iteration and never leaks out.
    [InlineData("{% set x = 'out' %}{% for i in [1] %}{% set x = 'in' %}{{ x }}{% endfor %}{{ x }}", "inout")]
    [InlineData("{% for i in [1, 2] %}{% if i == 1 %}{% set seen = 'yes' %}{% endif %}[{{ seen }}]{% endfor %}", "[yes][]")]
    // If blocks have no scope of their own.
    [InlineData("{% if true %}{% set z = 1 %}{% endif %}{{ z }}", "1")]
    // A namespace carries state out of the loop.
    [InlineData("{% set ns = namespace(total=0) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}", "6")]
    [InlineData("{% set ns = namespace(found=false) %}{% for m in ['a', 'b'] %}{% if m == 'b' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}", "True")]
    [InlineData("{% set a, b = 1, 'two' %}{{ b }}{{ a }}", "two1")]
    [InlineData("{% set block %}A{{ 1 + 1 }}{% endset %}[{{ block }}]", "[A2]")]
    [InlineData("{% set block | upper %}ab{% endset %}{{ block }}", "AB")]
    [InlineData("{% with a = 1 %}{{ a }}{% endwith %}[{{ a }}]", "1[]")]
    [InlineData("{% filter upper %}ab{{ 'c' }}{% endfilter %}", "ABC")]
    [InlineData("{% generation %}kept{% endgeneration %}", "kept")]
    public void Assignments_and_scopes_follow_jinja(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "c")]
    [InlineData("{% if none %}a{% else %}b{% endif %}", "b")]
    [InlineData("{% if {} or [] or 0.0 %}a{% else %}falsy{% endif %}", "falsy")]
    public void If_uses_python_truthiness(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }}", "Hi Ann! Hi Bob?")]
    [InlineData("{% macro m(a, b) %}[{{ a }}|{{ b }}]{% endmacro %}{{ m(b=2, a=1) }}{{ m(1) }}", "[1|2][1|]")]
    [InlineData("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(4) }}", "24")]
    public void Macros_bind_positional_keyword_and_default_arguments(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Fact]
    public void Undefined_prints_empty_and_chains_through_attributes()
    {
        Assert.Equal("[][][False][0][True]", Render("[{{ missing }}][{{ missing.attr.deeper }}][{{ missing.attr is defined }}][{{ missing|length }}][{{ missing is undefined }}]"));
    }

    [Fact]
    public void Missing_keys_and_out_of_range_indices_are_undefined()
    {
        var context = Context(("d", new Dictionary<string, object?> { ["a"] = 1L }), ("xs", new List<object?> { 1L }));
        Assert.Equal("[][][][False]", Render("[{{ d.b }}][{{ d['b'] }}][{{ xs[5] }}][{{ d.b is defined }}]", context));
    }

    [Fact]
    public void Messages_are_reachable_by_attribute_item_and_negative_index()
    {
        var context = Context(("messages", new List<object?> { Message("system", "S"), Message("user", "U") }));
        Assert.Equal("system U 2 user", Render("{{ messages[0].role }} {{ messages[-1]['content'] }} {{ messages|length }} {{ messages[1:][0].role }}", context));
    }
}
