using System.Text.Json;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "model": turns one pre-tokenized word into ids.</summary>
internal interface ITokenizerModel
{
    IReadOnlyDictionary<string, int> Vocab { get; }

    void Tokenize(string word, List<int> ids);

    string? IdToToken(int id);
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
