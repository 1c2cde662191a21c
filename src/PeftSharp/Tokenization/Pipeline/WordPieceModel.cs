namespace PeftSharp.Tokenization.Pipeline;

/// <summary>
/// BERT's WordPiece (greedy longest match first, "##" continuations, one [UNK] for a word that cannot be covered),
/// as tokenizers' <c>models/wordpiece</c>. Our own rather than Microsoft.ML.Tokenizers' WordPieceTokenizer: that one
/// counts max_input_chars_per_word in UTF-16 units where tokenizers counts characters, and reads only vocab.txt.
/// </summary>
internal sealed class WordPieceModel : ITokenizerModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabReverse;
    private readonly string _unkToken;
    private readonly string _prefix;
    private readonly int _maxInputChars;
    private readonly JsonSection _json;

    private WordPieceModel(JsonSection json, Dictionary<string, int> vocab, string unkToken, string prefix, int maxInputChars)
    {
        _json = json;
        _vocab = vocab;
        _vocabReverse = vocab.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);
        _unkToken = unkToken;
        _prefix = prefix;
        _maxInputChars = maxInputChars;
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public static WordPieceModel Create(JsonSection json) => new(json, ModelVocab.Read(json),
        json.Has("unk_token") ? json.String("unk_token") : "[UNK]",
        json.Has("continuing_subword_prefix") ? json.String("continuing_subword_prefix") : "##",
        json.Int("max_input_chars_per_word", 100));

    public string? IdToToken(int id) => _vocabReverse.TryGetValue(id, out var t) ? t : null;

    public void Tokenize(string word, List<int> ids)
    {
        // Character boundaries (code points), as Rust slices a str.
        var bounds = new List<int>(word.Length + 1);
        for (int i = 0; i < word.Length; i += char.IsSurrogatePair(word, i) ? 2 : 1)
        {
            bounds.Add(i);
        }
        bounds.Add(word.Length);
        if (bounds.Count - 1 > _maxInputChars)
        {
            ids.Add(UnkId());
            return;
        }
        var pieces = new List<int>();
        int startIndex = 0;
        while (startIndex < bounds.Count - 1)
        {
            int found = -1, endIndex = bounds.Count - 1;
            for (; endIndex > startIndex; endIndex--)
            {
                var sub = word[bounds[startIndex]..bounds[endIndex]];
                if (startIndex > 0)
                {
                    sub = _prefix + sub;
                }
                if (_vocab.TryGetValue(sub, out found))
                {
                    break;
                }
                found = -1;
            }
            if (found < 0)
            {
                ids.Add(UnkId());
                return;
            }
            pieces.Add(found);
            startIndex = endIndex;
        }
        ids.AddRange(pieces);
    }

    private int UnkId() => _vocab.TryGetValue(_unkToken, out int id)
        ? id
        : throw _json.Error($"unk_token \"{_unkToken}\" is not in the vocabulary and the text needs it");
}

/// <summary>WordLevel: each word is one vocabulary entry or the unknown token.</summary>
internal sealed class WordLevelModel : ITokenizerModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabReverse;
    private readonly string? _unkToken;
    private readonly JsonSection _json;

    private WordLevelModel(JsonSection json, Dictionary<string, int> vocab, string? unkToken)
    {
        _json = json;
        _vocab = vocab;
        _vocabReverse = vocab.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);
        _unkToken = unkToken;
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public static WordLevelModel Create(JsonSection json) => new(json, ModelVocab.Read(json), json.OptionalString("unk_token"));

    public string? IdToToken(int id) => _vocabReverse.TryGetValue(id, out var t) ? t : null;

    public void Tokenize(string word, List<int> ids)
    {
        if (_vocab.TryGetValue(word, out int id))
        {
            ids.Add(id);
        }
        else if (_unkToken != null && _vocab.TryGetValue(_unkToken, out int unk))
        {
            ids.Add(unk);
        }
        else
        {
            throw _json.Error($"word \"{word}\" is not in the vocabulary and unk_token \"{_unkToken}\" is missing");
        }
    }
}
