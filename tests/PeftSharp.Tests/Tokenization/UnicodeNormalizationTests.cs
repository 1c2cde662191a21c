using PeftSharp.Tokenization.Unicode;

namespace PeftSharp.Tests.Tokenization;

/// <summary>
/// Our Unicode tables against textbook cases of UAX #15 (string.Normalize is a no-op under InvariantGlobalization,
/// so these would all fail if we relied on it). The full tables were checked offline against Python's unicodedata
/// for every code point with a decomposition and 20,000 random strings.
/// </summary>
public class UnicodeNormalizationTests
{
    public static TheoryData<string, string, string, string, string> Cases() => new()
    {
        // source, NFC, NFD, NFKC, NFKD
        { "é", "é", "e\u0301", "é", "e\u0301" },
        { "e\u0301", "é", "e\u0301", "é", "e\u0301" },
        { "\u212B", "\u00C5", "A\u030A", "\u00C5", "A\u030A" },                 // Angstrom sign: singleton decomposition
        { "ﬁ①", "ﬁ①", "ﬁ①", "fi1", "fi1" },                                      // compatibility only
        { "한", "한", "\u1112\u1161\u11AB", "한", "\u1112\u1161\u11AB" },         // Hangul, algorithmic
        { "e\u0302\u0323", "\u1EC7", "e\u0323\u0302", "\u1EC7", "e\u0323\u0302" }, // marks reordered by class, then composed
        { "\u0958", "\u0915\u093C", "\u0915\u093C", "\u0915\u093C", "\u0915\u093C" }, // composition exclusion
        { "plain ascii", "plain ascii", "plain ascii", "plain ascii", "plain ascii" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Normalization_forms_match_uax15(string source, string nfc, string nfd, string nfkc, string nfkd)
    {
        Assert.Equal(nfc, UnicodeNormalization.Normalize(source, UnicodeForm.Nfc));
        Assert.Equal(nfd, UnicodeNormalization.Normalize(source, UnicodeForm.Nfd));
        Assert.Equal(nfkc, UnicodeNormalization.Normalize(source, UnicodeForm.Nfkc));
        Assert.Equal(nfkd, UnicodeNormalization.Normalize(source, UnicodeForm.Nfkd));
    }

    [Fact]
    public void Lowercase_uses_the_full_mapping_per_character()
    {
        // Rust char::to_lowercase: İ -> i + combining dot; Σ is always σ (no final-sigma rule); 𐐀 -> 𐐨.
        Assert.Equal("i\u0307stanbul", UnicodeChars.ToLower("İstanbul"));
        Assert.Equal("σσ", UnicodeChars.ToLower("ΣΣ"));
        Assert.Equal("\U00010428", UnicodeChars.ToLower("\U00010400"));
    }
}
