using PeftSharp.Tokenization.Pipeline;

namespace PeftSharp.Tests.Tokenization;

/// <summary>
/// Rules of Hugging Face tokenizers that the bundled fixtures do not reach, on hand-written tokenizer.json files;
/// expected ids are worked out by hand from the tokenizers source (file named in each test).
/// </summary>
public class PipelineBehaviourTests
{
    // WordLevel without pre-tokenizer: each text piece is looked up whole, so we can see exactly where pieces end.
    private const string Pieces = """{"type": "WordLevel", "vocab": {"a": 0, "a ": 1, " b": 2, "b": 3, "[UNK]": 4, "xmask": 6, "a mask": 7}, "unk_token": "[UNK]"}""";

    [Fact]
    public void Added_token_without_strip_leaves_spaces_to_the_neighbours()
    {
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(Pieces,
            addedTokens: """[{"id": 5, "content": "<m>", "special": true, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false}]"""));
        Assert.Equal([1, 5, 2], tok.Encode("a <m> b"));
    }

    [Fact]
    public void Added_token_lstrip_and_rstrip_swallow_the_spaces()
    {
        // added_vocabulary.rs find_matches: lstrip extends the match over the spaces before it, rstrip after it.
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(Pieces,
            addedTokens: """[{"id": 5, "content": "<m>", "special": true, "lstrip": true, "rstrip": true, "normalized": false, "single_word": false}]"""));
        Assert.Equal([0, 5, 3], tok.Encode("a <m> b"));
    }

    [Fact]
    public void Single_word_added_token_only_matches_between_non_word_characters()
    {
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(Pieces,
            addedTokens: """[{"id": 8, "content": "mask", "special": false, "lstrip": false, "rstrip": false, "normalized": false, "single_word": true}]"""));
        Assert.Equal([6], tok.Encode("xmask"));
        Assert.Equal([1, 8], tok.Encode("a mask"));
    }

    [Fact]
    public void Normalized_added_token_is_matched_after_the_normalizer()
    {
        // "normalized": true tokens are found in the lowercased text, so "MASK" is found as "mask".
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(Pieces, normalizer: """{"type": "Lowercase"}""",
            addedTokens: """[{"id": 8, "content": "mask", "special": false, "lstrip": false, "rstrip": false, "normalized": true, "single_word": false}]"""));
        Assert.Equal([1, 8], tok.Encode("A MASK"));
    }

    [Fact]
    public void Longest_added_token_wins_at_the_same_position()
    {
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(Pieces, addedTokens: """
            [{"id": 10, "content": "<a>", "special": true, "normalized": false},
             {"id": 11, "content": "<a><a>", "special": true, "normalized": false}]
            """));
        Assert.Equal([11, 10, 0], tok.Encode("<a><a><a>a"));
    }

    [Fact]
    public void Bpe_ignore_merges_takes_a_whole_word_from_the_vocabulary()
    {
        const string model = """{"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "bc": 3, "abc": 4}, "merges": ["b c"], "ignore_merges": IGNORE}""";
        Assert.Equal([4], TempTokenizerFolder.Load(TempTokenizerFolder.Document(model.Replace("IGNORE", "true"))).Encode("abc"));
        Assert.Equal([0, 3], TempTokenizerFolder.Load(TempTokenizerFolder.Document(model.Replace("IGNORE", "false"))).Encode("abc"));
    }

    [Fact]
    public void Bpe_merges_lowest_rank_first_then_leftmost()
    {
        // "aaa" with merges [a a]: the leftmost pair merges first -> "aa" "a".
        const string model = """{"type": "BPE", "vocab": {"a": 0, "aa": 1, "b": 2, "ab": 3}, "merges": [["a", "a"], ["a", "b"]]}""";
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(model));
        Assert.Equal([1, 0], tok.Encode("aaa"));
        // "aab": rank 0 (a a) beats rank 1 (a b).
        Assert.Equal([1, 2], tok.Encode("aab"));
    }

    [Fact]
    public void Bpe_unknown_characters_fuse_into_one_unk_when_fuse_unk()
    {
        const string model = """{"type": "BPE", "vocab": {"<unk>": 0, "a": 1}, "merges": [], "unk_token": "<unk>", "fuse_unk": FUSE}""";
        Assert.Equal([1, 0, 1], TempTokenizerFolder.Load(TempTokenizerFolder.Document(model.Replace("FUSE", "true"))).Encode("axya"));
        Assert.Equal([1, 0, 0, 1], TempTokenizerFolder.Load(TempTokenizerFolder.Document(model.Replace("FUSE", "false"))).Encode("axya"));
    }

    [Fact]
    public void WordPiece_counts_max_input_chars_in_characters_not_utf16_units()
    {
        // 𝐀 is one character but two UTF-16 units; tokenizers counts chars().
        const string model = """{"type": "WordPiece", "vocab": {"[UNK]": 0, "𝐀": 1, "##𝐀": 2}, "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 2}""";
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(model, preTokenizer: """{"type": "WhitespaceSplit"}"""));
        Assert.Equal([1, 2], tok.Encode("𝐀𝐀"));
        Assert.Equal([0], tok.Encode("𝐀𝐀𝐀"));
    }

    [Fact]
    public void Metaspace_first_prepends_only_at_the_start_of_the_text()
    {
        const string model = """{"type": "WordLevel", "vocab": {"▁hi": 0, "hi": 1, "▁there": 2, "<s>": 3, "[UNK]": 4}, "unk_token": "[UNK]"}""";
        var tok = TempTokenizerFolder.Load(TempTokenizerFolder.Document(model,
            preTokenizer: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}""",
            decoder: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}""",
            addedTokens: """[{"id": 3, "content": "<s>", "special": true, "normalized": false}]"""));
        Assert.Equal([0, 2], tok.Encode("hi there"));
        Assert.Equal([3, 1, 2], tok.Encode("<s>hi there"));
        Assert.Equal("hi there", tok.Decode([0, 2]));
    }

    [Fact]
    public void Split_behaviours_follow_tokenizers_normalizer_split()
    {
        // normalizer.rs doc: "the-final--countdown" split on '-'.
        var segments = Splitting.FromPredicate("the-final--countdown", cp => cp == '-');
        string[] Run(SplitBehavior b) => Splitting.Split(segments, b).Select(r => "the-final--countdown"[r.Start..r.End]).ToArray();
        Assert.Equal(["the", "final", "countdown"], Run(SplitBehavior.Removed));
        Assert.Equal(["the", "-", "final", "-", "-", "countdown"], Run(SplitBehavior.Isolated));
        Assert.Equal(["the-", "final-", "-", "countdown"], Run(SplitBehavior.MergedWithPrevious));
        Assert.Equal(["the", "-final", "-", "-countdown"], Run(SplitBehavior.MergedWithNext));
        Assert.Equal(["the", "-", "final", "--", "countdown"], Run(SplitBehavior.Contiguous));
    }

    [Fact]
    public void Gpt2_regex_treats_letters_outside_the_bmp_as_letters()
    {
        // 𝐀 (U+1D400) is \p{L} for Oniguruma; plain .NET sees two surrogates and would cut the word in three.
        var regex = new CodePointRegex(PreTokenizers.Gpt2Pattern);
        Assert.Equal([(0, 4), (4, 6)], regex.Matches("a𝐀b c"));
        Assert.Equal([(0, 2), (2, 5)], new CodePointRegex(@"\p{N}+|\p{L}+").Matches("12𝐀b"));
    }

    [Fact]
    public void Case_insensitive_contractions_fold_long_s_like_oniguruma()
    {
        var llama3 = new CodePointRegex("(?i:'s|'t)|\\p{L}+");
        Assert.Equal([(0, 2)], llama3.Matches("'ſ"));
        // GPT-2's contractions are case-sensitive: "'S" is punctuation then a word.
        Assert.Equal([(0, 1), (1, 2)], new CodePointRegex(PreTokenizers.Gpt2Pattern).Matches("'S"));
    }
}
