using System.Text.Json;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "post_processor": adds the special tokens around one encoded sequence.</summary>
internal interface IPostProcessor
{
    /// <summary>How many ids <see cref="Process"/> adds (needed to truncate before adding them).</summary>
    int AddedTokens { get; }

    List<int> Process(List<int> ids);
}

/// <summary>Builds post-processors from tokenizer.json. Only single sequences are encoded, so "pair" templates are not read.</summary>
internal static class PostProcessors
{
    private static readonly string[] s_supported = ["TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"];

    public static IPostProcessor? Create(JsonSection json)
    {
        if (json.IsNull)
        {
            return null;
        }
        switch (json.Type)
        {
            case "ByteLevel":
                return null; // only trims offsets, which we do not expose
            case "Sequence":
                var steps = json.Items("processors").Select(Create).OfType<IPostProcessor>().ToArray();
                return steps.Length == 0 ? null : new SequencePostProcessor(steps);
            case "BertProcessing":
            case "RobertaProcessing":
                return new TemplatePostProcessor([TokenPair(json, "cls")], [TokenPair(json, "sep")]);
            case "TemplateProcessing":
                return Template(json);
            default:
                throw json.Unsupported("post_processor", s_supported);
        }
    }

    /// <summary>A Llama-style template: optional BOS, the sequence, optional EOS (transformers' update_post_processor).</summary>
    public static IPostProcessor? BosEos(int? bos, int? eos) =>
        bos == null && eos == null ? null : new TemplatePostProcessor(bos is int b ? [b] : [], eos is int e ? [e] : []);

    // "cls": ["[CLS]", 101]
    private static int TokenPair(JsonSection json, string key)
    {
        var e = json.Child(key).Element;
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2 && e[1].TryGetInt32(out int id))
        {
            return id;
        }
        throw json.Error($"'{key}' must be [token, id], found {e}");
    }

    private static TemplatePostProcessor Template(JsonSection json)
    {
        var specials = new Dictionary<string, int[]>();
        var map = json.Child("special_tokens");
        if (map.Element.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in map.Element.EnumerateObject())
            {
                var entry = map.Child(p.Name);
                specials[p.Name] = entry.Child("ids").Element.EnumerateArray().Select(x => x.GetInt32()).ToArray();
            }
        }
        var before = new List<int>();
        var after = new List<int>();
        bool seenSequence = false;
        foreach (var piece in json.Items("single"))
        {
            if (piece.Has("Sequence"))
            {
                if (seenSequence)
                {
                    throw piece.Error("the single template holds the sequence twice");
                }
                seenSequence = true;
            }
            else if (piece.Has("SpecialToken"))
            {
                var name = piece.Child("SpecialToken").String("id");
                var ids = specials.TryGetValue(name, out var v)
                    ? v
                    : throw piece.Error($"special token \"{name}\" is not in special_tokens");
                (seenSequence ? after : before).AddRange(ids);
            }
            else
            {
                throw piece.Error("a template piece must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
            }
        }
        if (!seenSequence)
        {
            throw json.Error("the single template has no {\"Sequence\"} piece");
        }
        return new TemplatePostProcessor(before, after);
    }
}

/// <summary>[prefix ids] sequence [suffix ids]: BERT's [CLS] … [SEP], Llama's &lt;s&gt; ….</summary>
internal sealed class TemplatePostProcessor(IReadOnlyList<int> before, IReadOnlyList<int> after) : IPostProcessor
{
    public int AddedTokens => before.Count + after.Count;

    public List<int> Process(List<int> ids)
    {
        var result = new List<int>(ids.Count + AddedTokens);
        result.AddRange(before);
        result.AddRange(ids);
        result.AddRange(after);
        return result;
    }
}

internal sealed class SequencePostProcessor(IReadOnlyList<IPostProcessor> steps) : IPostProcessor
{
    public int AddedTokens => steps.Sum(s => s.AddedTokens);

    public List<int> Process(List<int> ids)
    {
        foreach (var step in steps)
        {
            ids = step.Process(ids);
        }
        return ids;
    }
}
