using System.Text.Json;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>A tokenizer.json "post_processor": adds the special tokens around one encoded sequence or a pair.</summary>
internal interface IPostProcessor
{
    /// <summary>How many ids <see cref="Process"/> adds (needed to truncate before adding them).</summary>
    int AddedTokens { get; }

    /// <summary>How many ids a pair gets, or null when the processor has no pair template.</summary>
    int? AddedTokensPair { get; }

    List<int> Process(List<int> ids);

    /// <summary>The ids and their token type ids for one sequence (<paramref name="second"/> null) or a pair.</summary>
    (List<int> Ids, List<int> TypeIds) ProcessTyped(List<int> first, List<int>? second);
}

/// <summary>Builds post-processors from tokenizer.json, with their "pair" templates for sentence-pair inputs.</summary>
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
                return steps.Length switch
                {
                    0 => null,
                    1 => steps[0],
                    _ => new SequencePostProcessor(steps),
                };
            case "BertProcessing":
            {
                // tokenizers' BertProcessing: [CLS] A [SEP] (type 0), then B [SEP] (type 1).
                int cls = TokenPair(json, "cls"), sep = TokenPair(json, "sep");
                return new TemplatePostProcessor(
                    [TemplatePiece.Special([cls], 0), TemplatePiece.Sequence(0, 0), TemplatePiece.Special([sep], 0)],
                    [TemplatePiece.Special([cls], 0), TemplatePiece.Sequence(0, 0), TemplatePiece.Special([sep], 0),
                     TemplatePiece.Sequence(1, 1), TemplatePiece.Special([sep], 1)]);
            }
            case "RobertaProcessing":
            {
                // <s> A </s> </s> B </s>; RoBERTa has no token types, so every type id is 0 (transformers returns zeros).
                int cls = TokenPair(json, "cls"), sep = TokenPair(json, "sep");
                return new TemplatePostProcessor(
                    [TemplatePiece.Special([cls], 0), TemplatePiece.Sequence(0, 0), TemplatePiece.Special([sep], 0)],
                    [TemplatePiece.Special([cls], 0), TemplatePiece.Sequence(0, 0), TemplatePiece.Special([sep, sep], 0),
                     TemplatePiece.Sequence(1, 0), TemplatePiece.Special([sep], 0)]);
            }
            case "TemplateProcessing":
                return Template(json);
            default:
                throw json.Unsupported("post_processor", s_supported);
        }
    }

    /// <summary>
    /// A Llama-style template: optional BOS, the sequence, optional EOS; a pair repeats them around B with type 1
    /// (transformers' LlamaTokenizerFast.update_post_processor).
    /// </summary>
    public static IPostProcessor? BosEos(int? bos, int? eos)
    {
        if (bos == null && eos == null)
        {
            return null;
        }
        List<TemplatePiece> Part(int sequence, int type)
        {
            var part = new List<TemplatePiece>();
            if (bos is int b)
            {
                part.Add(TemplatePiece.Special([b], type));
            }
            part.Add(TemplatePiece.Sequence(sequence, type));
            if (eos is int e)
            {
                part.Add(TemplatePiece.Special([e], type));
            }
            return part;
        }
        return new TemplatePostProcessor(Part(0, 0), [.. Part(0, 0), .. Part(1, 1)]);
    }

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
        var single = ReadTemplate(json, "single", specials, pair: false)!;
        var pair = json.Has("pair") ? ReadTemplate(json, "pair", specials, pair: true) : null;
        return new TemplatePostProcessor(single, pair);
    }

    private static List<TemplatePiece> ReadTemplate(JsonSection json, string key, Dictionary<string, int[]> specials, bool pair)
    {
        var pieces = new List<TemplatePiece>();
        var seen = new bool[2];
        foreach (var piece in json.Items(key))
        {
            if (piece.Has("Sequence"))
            {
                var s = piece.Child("Sequence");
                int index = s.String("id") switch
                {
                    "A" => 0,
                    "B" when pair => 1,
                    var other => throw s.Error($"sequence id must be {(pair ? "\"A\" or \"B\"" : "\"A\"")}, found \"{other}\""),
                };
                if (seen[index])
                {
                    throw piece.Error($"the {key} template holds sequence {(index == 0 ? 'A' : 'B')} twice");
                }
                seen[index] = true;
                pieces.Add(TemplatePiece.Sequence(index, s.Int("type_id", 0)));
            }
            else if (piece.Has("SpecialToken"))
            {
                var s = piece.Child("SpecialToken");
                var name = s.String("id");
                var ids = specials.TryGetValue(name, out var v)
                    ? v
                    : throw piece.Error($"special token \"{name}\" is not in special_tokens");
                pieces.Add(TemplatePiece.Special(ids, s.Int("type_id", 0)));
            }
            else
            {
                throw piece.Error("a template piece must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
            }
        }
        if (!seen[0] || (pair && !seen[1]))
        {
            throw json.Error($"the {key} template must hold {(pair ? "sequences A and B" : "the sequence A")}");
        }
        return pieces;
    }
}

/// <summary>One piece of a template: special ids, or sequence A (0) / B (1); each with its token type id.</summary>
internal readonly record struct TemplatePiece(int[]? SpecialIds, int SequenceIndex, int TypeId)
{
    public static TemplatePiece Special(int[] ids, int typeId) => new(ids, -1, typeId);

    public static TemplatePiece Sequence(int index, int typeId) => new(null, index, typeId);
}

/// <summary>tokenizers' TemplateProcessing: BERT's [CLS] A [SEP] B [SEP], Llama's &lt;s&gt; A, with type ids per piece.</summary>
internal sealed class TemplatePostProcessor(IReadOnlyList<TemplatePiece> single, IReadOnlyList<TemplatePiece>? pair) : IPostProcessor
{
    public int AddedTokens { get; } = CountSpecials(single);

    public int? AddedTokensPair { get; } = pair == null ? null : CountSpecials(pair);

    public List<int> Process(List<int> ids) => ProcessTyped(ids, null).Ids;

    public (List<int> Ids, List<int> TypeIds) ProcessTyped(List<int> first, List<int>? second)
    {
        var template = second == null ? single : pair ?? throw new PeftException("this tokenizer's post_processor has no pair template");
        var ids = new List<int>(first.Count + (second?.Count ?? 0) + 8);
        var types = new List<int>(ids.Capacity);
        foreach (var piece in template)
        {
            var part = piece.SpecialIds ?? (IReadOnlyList<int>)(piece.SequenceIndex == 0 ? first : second!);
            ids.AddRange(part);
            types.AddRange(Enumerable.Repeat(piece.TypeId, part.Count));
        }
        return (ids, types);
    }

    private static int CountSpecials(IReadOnlyList<TemplatePiece> template) => template.Sum(p => p.SpecialIds?.Length ?? 0);
}

internal sealed class SequencePostProcessor(IReadOnlyList<IPostProcessor> steps) : IPostProcessor
{
    public int AddedTokens => steps.Sum(s => s.AddedTokens);

    public int? AddedTokensPair => null;

    public List<int> Process(List<int> ids)
    {
        foreach (var step in steps)
        {
            ids = step.Process(ids);
        }
        return ids;
    }

    public (List<int> Ids, List<int> TypeIds) ProcessTyped(List<int> first, List<int>? second)
    {
        if (second != null)
        {
            throw new PeftException("sentence pairs through a Sequence of several post-processors are not supported");
        }
        var ids = Process(first);
        return (ids, Enumerable.Repeat(0, ids.Count).ToList());
    }
}
