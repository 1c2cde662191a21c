using PeftSharp.Tokenization.ChatTemplates;

namespace PeftSharp.Tests.Tokenization.ChatTemplates;

/// <summary>Python's float repr, strftime and round, which templates expose through printing and filters.</summary>
public class PythonFormattingTests
{
    [Theory]
    [InlineData(1.0, "1.0")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(100.0, "100.0")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00001, "1e-05")]
    [InlineData(1.5e-7, "1.5e-07")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(1e16, "1e+16")]
    [InlineData(123456789012345678.0, "1.2345678901234568e+17")]
    [InlineData(1.0 / 3.0, "0.3333333333333333")]
    [InlineData(double.PositiveInfinity, "inf")]
    [InlineData(double.NaN, "nan")]
    public void Float_repr_matches_python(double value, string expected)
    {
        Assert.Equal(expected, PyFormat.FloatRepr(value));
    }

    [Theory]
    [InlineData("%d %b %Y", "05 Mar 2025")]
    [InlineData("%-d %B %Y", "5 March 2025")]
    [InlineData("%A %a %j %y", "Wednesday Wed 064 25")]
    [InlineData("%H:%M:%S %I%p %m/%d", "14:07:09 02PM 03/05")]
    [InlineData("100%%", "100%")]
    public void Strftime_follows_python_directives(string format, string expected)
    {
        Assert.Equal(expected, Strftime.Format(new DateTime(2025, 3, 5, 14, 7, 9), format));
    }

    [Theory]
    [InlineData(2.5, 0, 2.0)]
    [InlineData(3.5, 0, 4.0)]
    [InlineData(-2.5, 0, -2.0)]
    [InlineData(2.675, 2, 2.67)] // the double is 2.67499999999999982236431605997495353221893310546875
    [InlineData(0.125, 2, 0.12)] // exactly representable: half to even
    [InlineData(1234.5, -2, 1200.0)]
    public void Round_is_half_even_on_the_exact_binary_value(double value, int digits, double expected)
    {
        Assert.Equal(expected, JinjaFilters.RoundHalfEven(value, digits));
    }

    [Fact]
    public void Json_escapes_control_characters_and_keeps_non_ascii()
    {
        var value = new Dictionary<string, object?> { ["k"] = "tab\t nul\u0001 é 😀 \"q\" \\" };
        Assert.Equal("{\"k\": \"tab\\t nul\\u0001 é 😀 \\\"q\\\" \\\\\"}", PyFormat.Json(value, ensureAscii: false, indent: null, separators: null, sortKeys: false));
        Assert.Equal("{\"k\": \"tab\\t nul\\u0001 \\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\\"}", PyFormat.Json(value, ensureAscii: true, indent: null, separators: null, sortKeys: false));
    }
}
