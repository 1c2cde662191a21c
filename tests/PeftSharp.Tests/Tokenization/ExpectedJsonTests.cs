using System.Text.Json;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Tokenization;

/// <summary>
/// fixtures/tokenizers/{gpt2,qwen3}/expected.json: ids, tokens and decodes that Hugging Face's own tokenizers
/// implementation gives for a hard set of texts. Every case is a row.
/// </summary>
public class ExpectedJsonTests
{
    public static TheoryData<string, int, string> Cases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var name in new[] { "gpt2", "qwen3" })
        {
            var cases = Load(name);
            for (int i = 0; i < cases.Length; i++)
            {
                data.Add(name, i, TokenizerFixtures.Label(cases[i].GetProperty("text").GetString()!));
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_gives_the_reference_ids(string tokenizer, int index, string label)
    {
        _ = label;
        var c = Load(tokenizer)[index];
        var ids = TokenizerFixtures.Fixture(tokenizer).Encode(c.GetProperty("text").GetString()!, c.GetProperty("add_special_tokens").GetBoolean());
        Assert.Equal(TokenizerFixtures.Ints(c.GetProperty("ids")), ids);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reference_ids_map_to_the_reference_tokens(string tokenizer, int index, string label)
    {
        _ = label;
        var c = Load(tokenizer)[index];
        var tok = TokenizerFixtures.Fixture(tokenizer);
        var ids = TokenizerFixtures.Ints(c.GetProperty("ids"));
        var expected = c.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()).ToArray();
        Assert.Equal(expected, ids.Select(tok.TokenToString).ToArray());
        Assert.Equal(ids, expected.Select(t => tok.StringToId(t!)!.Value).ToArray());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_gives_the_reference_text(string tokenizer, int index, string label)
    {
        _ = label;
        var c = Load(tokenizer)[index];
        var tok = TokenizerFixtures.Fixture(tokenizer);
        var ids = TokenizerFixtures.Ints(c.GetProperty("ids"));
        Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids));
        Assert.Equal(c.GetProperty("decoded_skip_special").GetString(), tok.Decode(ids, skipSpecialTokens: true));
    }

    private static JsonElement[] Load(string name) =>
        TokenizerFixtures.ReadJson(SharedPaths.Fixture("tokenizers", name, "expected.json")).GetProperty("cases").EnumerateArray().ToArray();
}
