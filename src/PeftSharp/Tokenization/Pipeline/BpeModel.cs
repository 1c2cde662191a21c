using System.Text;
using System.Text.Json;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "model": turns one pre-tokenized word into ids.</summary>
internal interface ITokenizerModel
{
    IReadOnlyDictionary<string, int> Vocab { get; }

    void Tokenize(string word, List<int> ids);

    string? IdToToken(int id);
}

/// <summary>
/// Byte-pair encoding as tokenizers' <c>models/bpe</c> (byte-level GPT-2/Llama 3/Qwen and SentencePiece-style
/// Llama 2 with <c>byte_fallback</c>). Our own rather than Microsoft.ML.Tokenizers' BpeTokenizer: its 2.0.1 options
/// have no <c>byte_fallback</c> or <c>ignore_merges</c> and take merges only as "a b" strings.
/// </summary>
internal sealed class BpeModel : ITokenizerModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabReverse;
    private readonly Dictionary<(int Left, int Right), (int Rank, int NewId)> _merges;
    private readonly int? _unkId;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly int[]? _byteIds;

    private BpeModel(Dictionary<string, int> vocab, Dictionary<(int, int), (int, int)> merges, int? unkId,
        string? prefix, string? suffix, bool fuseUnk, bool byteFallback, bool ignoreMerges)
    {
        _vocab = vocab;
        _vocabReverse = vocab.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);
        _merges = merges;
        _unkId = unkId;
        _prefix = prefix;
        _suffix = suffix;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        if (byteFallback)
        {
            // <0x00>..<0xFF>; -1 where the vocabulary lacks one (then that byte cannot fall back).
            _byteIds = Enumerable.Range(0, 256).Select(b => vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1).ToArray();
        }
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public static BpeModel Create(JsonSection json)
    {
        var vocab = ModelVocab.Read(json);
        if (json.Has("dropout") && json.Child("dropout").Element.GetDouble() is > 0 and < 1)
        {
            throw json.Error("BPE 'dropout' is set; PeftSharp tokenizes deterministically and does not implement BPE dropout");
        }
        var prefix = json.OptionalString("continuing_subword_prefix");
        var suffix = json.OptionalString("end_of_word_suffix");
        var unk = json.OptionalString("unk_token");
        int? unkId = null;
        if (unk != null)
        {
            unkId = vocab.TryGetValue(unk, out int id) ? id : throw json.Error($"unk_token \"{unk}\" is not in the vocabulary");
        }
        var merges = new Dictionary<(int, int), (int, int)>();
        int rank = 0;
        foreach (var item in json.Items("merges"))
        {
            var (a, b) = ParseMerge(item);
            if (!vocab.TryGetValue(a, out int aId) || !vocab.TryGetValue(b, out int bId))
            {
                throw item.Error($"merge \"{a} {b}\" uses a token that is not in the vocabulary");
            }
            // As tokenizers: the merged token is a + b without b's continuing-subword prefix.
            var merged = a + (prefix == null ? b : b[Math.Min(prefix.Length, b.Length)..]);
            if (!vocab.TryGetValue(merged, out int newId))
            {
                throw item.Error($"merge \"{a} {b}\" makes \"{merged}\", which is not in the vocabulary");
            }
            merges[(aId, bId)] = (rank++, newId);
        }
        return new BpeModel(vocab, merges, unkId, prefix, suffix, json.Bool("fuse_unk", false),
            json.Bool("byte_fallback", false), json.Bool("ignore_merges", false));
    }

    public string? IdToToken(int id) => _vocabReverse.TryGetValue(id, out var t) ? t : null;

    public void Tokenize(string word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            ids.Add(whole);
            return;
        }
        var symbols = InitialSymbols(word);
        MergeAll(symbols);
        foreach (var s in symbols)
        {
            if (s.Length > 0)
            {
                ids.Add(s.Id);
            }
        }
    }

    // tokenizers' BPE::merge_word: one symbol per character (with prefix/suffix), byte fallback, fused unknowns.
    private List<Symbol> InitialSymbols(string word)
    {
        var symbols = new List<Symbol>(word.Length);
        int? pendingUnk = null;
        int i = 0;
        while (i < word.Length)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var s = word.Substring(i, len);
            if (i > 0 && _prefix != null)
            {
                s = _prefix + s;
            }
            if (i + len == word.Length && _suffix != null)
            {
                s += _suffix;
            }
            i += len;
            if (_vocab.TryGetValue(s, out int id))
            {
                if (pendingUnk.HasValue)
                {
                    symbols.Add(new Symbol(pendingUnk.Value));
                    pendingUnk = null;
                }
                symbols.Add(new Symbol(id));
                continue;
            }
            if (_byteIds != null)
            {
                var bytes = Encoding.UTF8.GetBytes(s);
                if (bytes.All(b => _byteIds[b] >= 0))
                {
                    // As tokenizers, a pending unknown is not flushed here: it lands after these byte tokens.
                    foreach (byte b in bytes)
                    {
                        symbols.Add(new Symbol(_byteIds[b]));
                    }
                    continue;
                }
            }
            if (_unkId.HasValue)
            {
                if (pendingUnk.HasValue && !_fuseUnk)
                {
                    symbols.Add(new Symbol(pendingUnk.Value));
                }
                pendingUnk = _unkId.Value;
            }
        }
        if (pendingUnk.HasValue)
        {
            symbols.Add(new Symbol(pendingUnk.Value));
        }
        for (int k = 0; k < symbols.Count; k++)
        {
            symbols[k] = symbols[k] with { Prev = k - 1, Next = k + 1 < symbols.Count ? k + 1 : -1 };
        }
        return symbols;
    }

    // tokenizers' Word::merge_all: repeatedly merge the pair of lowest rank, leftmost first, through a heap.
    private void MergeAll(List<Symbol> symbols)
    {
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (int k = 0; k + 1 < symbols.Count; k++)
        {
            if (_merges.TryGetValue((symbols[k].Id, symbols[k + 1].Id), out var m))
            {
                queue.Enqueue((k, m.NewId), (m.Rank, k));
            }
        }
        while (queue.TryDequeue(out var top, out _))
        {
            var current = symbols[top.Pos];
            if (current.Length == 0 || current.Next == -1)
            {
                continue;
            }
            var right = symbols[current.Next];
            if (!_merges.TryGetValue((current.Id, right.Id), out var m) || m.NewId != top.NewId)
            {
                continue;
            }
            int nextPos = current.Next;
            current = current with { Id = top.NewId, Length = current.Length + right.Length, Next = right.Next };
            symbols[top.Pos] = current;
            symbols[nextPos] = right with { Length = 0 };
            if (right.Next >= 0)
            {
                symbols[right.Next] = symbols[right.Next] with { Prev = top.Pos };
            }
            if (current.Prev >= 0 && _merges.TryGetValue((symbols[current.Prev].Id, current.Id), out var before))
            {
                queue.Enqueue((current.Prev, before.NewId), (before.Rank, current.Prev));
            }
            if (current.Next >= 0 && _merges.TryGetValue((current.Id, symbols[current.Next].Id), out var after))
            {
                queue.Enqueue((top.Pos, after.NewId), (after.Rank, top.Pos));
            }
        }
    }

    private static (string A, string B) ParseMerge(JsonSection item)
    {
        var e = item.Element;
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2
            && e[0].ValueKind == JsonValueKind.String && e[1].ValueKind == JsonValueKind.String)
        {
            return (e[0].GetString()!, e[1].GetString()!);
        }
        if (e.ValueKind == JsonValueKind.String)
        {
            var parts = e.GetString()!.Split(' ');
            if (parts.Length == 2)
            {
                return (parts[0], parts[1]);
            }
        }
        throw item.Error($"a merge must be \"a b\" or [\"a\", \"b\"], found {e}");
    }

    /// <summary>One symbol of a word being merged; Length counts merged characters and is 0 once absorbed.</summary>
    private readonly record struct Symbol(int Id, int Prev = -1, int Next = -1, int Length = 1);
}

/// <summary>Reads a model's "vocab" object (token to id).</summary>
internal static class ModelVocab
{
    public static Dictionary<string, int> Read(JsonSection json)
    {
        var v = json.Child("vocab");
        if (v.Element.ValueKind != JsonValueKind.Object)
        {
            throw json.Error($"'vocab' must be an object of token to id, found {v.Element.ValueKind}");
        }
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in v.Element.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
            {
                throw v.Error($"token \"{p.Name}\" has id {p.Value}, expected a non-negative integer");
            }
            vocab[p.Name] = id;
        }
        return vocab;
    }
}
