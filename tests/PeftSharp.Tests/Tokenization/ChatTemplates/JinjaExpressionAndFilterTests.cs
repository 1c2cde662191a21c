using static PeftSharp.Tests.Tokenization.ChatTemplates.TemplateAssert;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>Expressions, filters, tests and Python methods; expected strings are worked out by hand from Jinja/Python.</summary>
public class JinjaExpressionAndFilterTests
{
    [Theory]
    [InlineData("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}", "7 9 3 -4 2 3.5 1024")]
    [InlineData("{{ 1.0 }} {{ 1e-5 }} {{ 1e16 }} {{ 0.1 + 0.2 }} {{ 4 / 2 }} {{ 12345.678 }}", "1.0 1e-05 1e+16 0.30000000000000004 2.0 12345.678")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true ~ missing }}", "a1NoneTrue")]
    [InlineData("{{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 2 }}", "ab [1, 2] abab")]
    [InlineData("{{ [1, 2, 3][::-1] }} {{ 'hello'[1:3] }} {{ [1, 2, 3, 4][-2:] }} {{ 'abc'[-1] }}", "[3, 2, 1] el [3, 4] c")]
    [InlineData("{{ (1, 2) }} {{ (1,) }} {{ [1, 'a', none, false] }} {{ {'k': 'it\\'s'} }}", "(1, 2) (1,) [1, 'a', None, False] {'k': \"it's\"}")]
    [InlineData("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }}", "True False True True True")]
    [InlineData("{{ not true or false }} {{ [] or 'e' }} {{ 0 and 1 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ (1, 2) == [1, 2] }}", "False e 0 True True False")]
    [InlineData("{{ 'yes' if 0 else 'no' }}|{{ 'shown' if false }}|{{ 1 if false else 2 if true else 3 }}", "no||2")]
    [InlineData("{{ 'a\\tb\\u00e9\\x41' }}", "a\tbéA")]
    [InlineData("{{ \"double\" 'single' }}", "doublesingle")]
    public void Expressions_follow_python(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    // Filters bind tighter than every binary operator: only 'b' is trimmed, and only the length is decremented.
    [InlineData("{{ '[' + ' b ' | trim + ']' }}", "[b]")]
    [InlineData("{{ 'abc' | length - 1 }}", "2")]
    [InlineData("{{ -3 | abs }}", "3")]
    [InlineData("{{ not 'x' is string }}", "False")]
    public void Filter_and_test_precedence_follows_jinja(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ '  hi  ' | trim }}|{{ 'xxhixx' | trim('x') }}", "hi|hi")]
    [InlineData("{{ 'Hello World' | lower | replace('world', 'there') }} {{ 'aaa' | replace('a', 'b', 2) }}", "hello there bba")]
    [InlineData("{{ 'hello wide world' | title }} {{ \"they're\" | title }} {{ 'hELLO' | capitalize }} {{ 'x' | upper }}", "Hello Wide World They're Hello X")]
    [InlineData("{{ [3, 1, 2] | sort | join(',') }} {{ ['b', 'A', 'c'] | sort | join }} {{ [1, 2] | sort(reverse=true) }}", "1,2,3 Abc [2, 1]")]
    [InlineData("{{ [1, 2, 2, 3, 1] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }}", "[1, 2, 3] ['a', 'b']")]
    [InlineData("{{ 'abc' | length }}{{ [1, 2] | count }}{{ {'a': 1} | length }}", "321")]
    [InlineData("{{ [1, 2] | first }}{{ [1, 2] | last }}{{ 'xyz' | first }}[{{ [] | first }}]", "12x[]")]
    [InlineData("{{ [1, 2, 3] | sum }} {{ [4, 2, 9] | min }} {{ [4, 2, 9] | max }} {{ [1, 2, 3] | reverse | join }} {{ 'abc' | reverse }}", "6 2 9 321 cba")]
    [InlineData("{{ 'x' | default('d') }}{{ missing | default('d') }}{{ '' | d('e', true) }}{{ none | default('n') }}", "xdeNone")]
    [InlineData("{{ '42' | int * 2 }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 5.9 | int }} {{ '3.5' | float + 1 }}", "84 4 0 7 5 4.5")]
    [InlineData("{{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 3 | round }} {{ 2.1 | round(0, 'ceil') }}", "2.0 4.0 2.67 3 3.0")]
    [InlineData("{{ {'b': 2, 'a': 1} | dictsort }} {{ {'a': 1} | items | list }} {{ {'a': 1} | list }}", "[('a', 1), ('b', 2)] [('a', 1)] ['a']")]
    [InlineData("{{ 'abc' | list }} {{ 1 | string ~ 'a' }} {{ none | string }}", "['a', 'b', 'c'] 1a None")]
    [InlineData("{{ 'hello big, wide world' | wordcount }}", "4")]
    [InlineData("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}", "a\n  b\n\n  c|  a\n  b|a\n> \n> b")]
    [InlineData("{{ [0, 1, 2] | select | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('odd') | list }}", "[1, 2] [1, 3] [2]")]
    [InlineData("{{ [1, 2] | map('string') | join('+') }} {{ ['a', 'b'] | map('upper') | list }}", "1+2 ['A', 'B']")]
    [InlineData("{{ '<a & b>' | e }} {{ '<b>' | safe }}", "&lt;a &amp; b&gt; <b>")]
    [InlineData("{{ '%s-%s' | format('a', 1) }} {{ '%5.2f|%-4d|%04d|%x|%r|%%' | format(3.14159, 7, -42, 255, 'q') }}", "a-1  3.14|7   |-042|ff|'q'|%")]
    [InlineData("{{ 'Hi %s' % 'Bob' }} {{ '%s+%s' % (1, 2) }} {{ '%(a)s=%(b)d' % {'a': 'x', 'b': 2} }} {{ '%(n)s!' | format(n=3) }}", "Hi Bob 1+2 x=2 3!")]
    public void Filters_follow_jinja(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Fact]
    public void Attribute_filters_pick_fields_of_mappings()
    {
        var context = Context(("messages", new List<object?>
        {
            Message("system", "S"), Message("user", "U1"), Message("assistant", "A"), Message("user", "U2"),
            new Dictionary<string, object?> { ["role"] = "tool" },
        }));
        const string Template = "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('|') }};"
            + "{{ messages | rejectattr('role', 'in', ['user', 'system']) | map(attribute='role') | list }};"
            + "{{ messages | selectattr('content', 'undefined') | list | length }};"
            + "{{ messages | map(attribute='content', default='-') | join }};"
            + "{{ messages | selectattr('content') | list | length }}";
        Assert.Equal("U1|U2;['assistant', 'tool'];1;SU1AU2-;4", Render(Template, context));
    }

    [Theory]
    // transformers' tojson: json.dumps(ensure_ascii=False) with Python's ", " and ": " separators.
    [InlineData("{{ {'b': 1, 'a': [1, 2.5, none, true], 'c': 'é\"\\n'} | tojson }}", "{\"b\": 1, \"a\": [1, 2.5, null, true], \"c\": \"é\\\"\\n\"}")]
    [InlineData("{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}", "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}")]
    [InlineData("{{ {'b': 'é', 'a': 1} | tojson(ensure_ascii=true, sort_keys=true) }}", "{\"a\": 1, \"b\": \"\\u00e9\"}")]
    [InlineData("{{ [1, 'x'] | tojson(separators=(',', ':')) }} {{ (1, 2) | tojson }} {{ 'a' | tojson }} {{ 1.0 | tojson }}", "[1,\"x\"] [1, 2] \"a\" 1.0")]
    public void Tojson_matches_python_json_dumps(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ x is defined }} {{ none is none }} {{ x is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is mapping }}", "False True False True True False")]
    [InlineData("{{ 3 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.5 is float }} {{ 'a' is number }}", "True True True False True False")]
    [InlineData("{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ true is boolean }}", "True False True False True")]
    [InlineData("{{ 'a' is iterable }} {{ [] is sequence }} {{ 1 is iterable }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }}", "True True False True True True False")]
    [InlineData("{{ 2 is eq 2 }} {{ 2 is equalto(3) }} {{ 'a' is in 'cat' }} {{ 'abc' is lower }} {{ 'aBc' is upper }} {{ x is not defined }}", "True False True True False True")]
    public void Tests_follow_jinja(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'Hello'.startswith('l', 2) }}", "True True True")]
    [InlineData("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a-b-c'.rsplit('-', 1) }} {{ 'a b c'.split(none, 1) }}", "['a', 'b', '', 'c'] ['a', 'b'] ['a-b', 'c'] ['a', 'b c']")]
    [InlineData("[{{ '  x '.strip() }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}][{{ 'x..'.rstrip('.') }}]", "[x][x\n][x]")]
    [InlineData("{{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'hi there'.title() }} {{ \"they're\".title() }} {{ 'hI'.capitalize() }}", "ABC abc Hi There They'Re Hi")]
    [InlineData("{{ '{} and {}'.format(1, 'b') }} {{ '{1}{0}{1}'.format('a', 'b') }} {{ '{n}!'.format(n=3) }} {{ '{{x}}'.format() }}", "1 and b bab 3! {x}")]
    [InlineData("{{ 'banana'.find('an') }} {{ 'banana'.rfind('an') }} {{ 'banana'.find('x') }} {{ 'banana'.count('a') }} {{ 'aXbX'.replace('X', '-') }}", "1 3 -1 3 a-b-")]
    [InlineData("{{ '-'.join(['a', 'b']) }} {{ 'a\\nb'.splitlines() }} {{ '123'.isdigit() }} {{ 'v1.0'.removeprefix('v') }}", "a-b ['a', 'b'] True 1.0")]
    public void String_methods_follow_python(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Fact]
    public void Dict_methods_follow_python()
    {
        var context = Context(("d", new Dictionary<string, object?> { ["a"] = 1L, ["b"] = 2L }));
        Assert.Equal("1 def None ['a', 'b'] [1, 2] [('a', 1), ('b', 2)]", Render("{{ d.get('a') }} {{ d.get('zz', 'def') }} {{ d.get('zz') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}", context));
    }

    [Fact]
    public void Strings_index_and_count_by_code_point()
    {
        // "é😀x": the emoji is one Python character (two UTF-16 units).
        Assert.Equal("3 😀 x😀é", Render("{{ 'é😀x' | length }} {{ 'é😀x'[1] }} {{ 'é😀x'[::-1] }}"));
    }

    [Theory]
    [InlineData("{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }}", "[0, 1, 2] [1, 4, 7] [5, 3, 1]")]
    [InlineData("{{ dict(a=1, b='x') }} {{ namespace(a=1).a }} {{ namespace({'k': 2}).k }}", "{'a': 1, 'b': 'x'} 1 2")]
    public void Global_functions_work(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }
}
