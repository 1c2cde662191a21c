using System.Text.Json;
using System.Text.Json.Nodes;

namespace PeftSharp.Models;

/// <summary>
/// A Hugging Face <c>config.json</c>: the raw JSON object plus the few fields every architecture shares. Each
/// architecture reads its own typed view from it (<c>LlamaConfig</c>, <c>Gpt2Config</c>, <c>BertConfig</c>). Keys that
/// determine a tensor shape are read with <see cref="RequireInt"/>, which throws a <see cref="ConfigException"/> naming
/// the key when it is absent: no silent default for a shape.
/// </summary>
public sealed class ModelConfig
{
    private ModelConfig(JsonObject raw, string source)
    {
        Raw = raw;
        Source = source;
        ModelType = GetString("model_type")
            ?? throw new ConfigException($"{source}: 'model_type' is missing");
        Architectures = raw["architectures"] is JsonArray arr
            ? arr.Select(n => n?.GetValue<string>() ?? "").Where(s => s.Length > 0).ToArray()
            : [];
        PadTokenId = GetOptionalInt("pad_token_id");
        BosTokenId = GetOptionalInt("bos_token_id");
        EosTokenIds = ReadIdList("eos_token_id");
    }

    /// <summary>The whole JSON object as read (unknown keys kept).</summary>
    public JsonObject Raw { get; }

    /// <summary>Where the config came from (a file path, or a label for configs built in memory); used in messages.</summary>
    public string Source { get; }

    /// <summary><c>model_type</c>, e.g. <c>llama</c>, <c>qwen2</c>, <c>mistral</c>, <c>gpt2</c>, <c>bert</c>.</summary>
    public string ModelType { get; }

    /// <summary><c>architectures</c> (may be empty), e.g. <c>["LlamaForCausalLM"]</c>.</summary>
    public IReadOnlyList<string> Architectures { get; }

    /// <summary><c>pad_token_id</c>, or null.</summary>
    public int? PadTokenId { get; }

    /// <summary><c>bos_token_id</c>, or null.</summary>
    public int? BosTokenId { get; }

    /// <summary><c>eos_token_id</c> as a list (it may be an int or a list in the JSON); empty when absent.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary><c>vocab_size</c>, or null when absent.</summary>
    public int? VocabSize => GetOptionalInt("vocab_size");

    /// <summary><c>hidden_size</c> (GPT-2: <c>n_embd</c>, transformers' attribute map), or null when absent.</summary>
    public int? HiddenSize => GetOptionalInt("hidden_size") ?? GetOptionalInt("n_embd");

    /// <summary><c>num_hidden_layers</c> (GPT-2: <c>n_layer</c>), or null when absent.</summary>
    public int? NumHiddenLayers => GetOptionalInt("num_hidden_layers") ?? GetOptionalInt("n_layer");

    /// <summary>
    /// Number of labels of a classification head: the size of <c>id2label</c> when present, else <c>num_labels</c>,
    /// else 2 (transformers' <c>PretrainedConfig</c> default, which it does not write to config.json).
    /// </summary>
    public int NumLabels
    {
        get
        {
            if (Raw["id2label"] is JsonObject id2label)
            {
                return id2label.Count;
            }
            return GetOptionalInt("num_labels") ?? 2;
        }
    }

    /// <summary>Reads a config.json file.</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException($"{path}: file not found");
        }
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses config.json text; <paramref name="source"/> names it in error messages.</summary>
    public static ModelConfig Parse(string json, string source = "config.json")
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: not valid JSON ({e.Message})", e);
        }
        if (node is not JsonObject obj)
        {
            throw new ConfigException($"{source}: expected a JSON object");
        }
        return new ModelConfig(obj, source);
    }

    /// <summary>A copy with <paramref name="key"/> set to <paramref name="value"/> (e.g. <c>num_labels</c>).</summary>
    public ModelConfig With(string key, JsonNode? value)
    {
        var copy = (JsonObject)Raw.DeepClone();
        copy[key] = value;
        if (key == "num_labels")
        {
            copy.Remove("id2label");
            copy.Remove("label2id");
        }
        return new ModelConfig(copy, Source);
    }

    /// <summary>True when the key is present and not null.</summary>
    public bool Has(string key) => Raw[key] is not null;

    /// <summary>An integer key that determines a shape: missing or null is a <see cref="ConfigException"/>.</summary>
    public int RequireInt(string key)
    {
        return GetOptionalInt(key)
            ?? throw new ConfigException($"{Source}: '{key}' is missing; it determines a tensor shape of {ModelType} models");
    }

    /// <summary>An integer key, or null when absent or null.</summary>
    public int? GetOptionalInt(string key)
    {
        var node = Raw[key];
        if (node is null)
        {
            return null;
        }
        if (node is JsonValue v)
        {
            if (v.TryGetValue<int>(out var i))
            {
                return i;
            }
            if (v.TryGetValue<long>(out var l) && l is >= int.MinValue and <= int.MaxValue)
            {
                return (int)l;
            }
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue)
            {
                return (int)d;
            }
        }
        throw new ConfigException($"{Source}: '{key}' must be an integer, got {node.ToJsonString()}");
    }

    /// <summary>A number key, or <paramref name="defaultValue"/> when absent or null (transformers' default).</summary>
    public double GetDouble(string key, double defaultValue)
    {
        var node = Raw[key];
        if (node is null)
        {
            return defaultValue;
        }
        if (node is JsonValue v && v.TryGetValue<double>(out var d))
        {
            return d;
        }
        throw new ConfigException($"{Source}: '{key}' must be a number, got {node.ToJsonString()}");
    }

    /// <summary>A number key, or null when absent or null.</summary>
    public double? GetOptionalDouble(string key) => Raw[key] is null ? null : GetDouble(key, 0);

    /// <summary>A boolean key, or <paramref name="defaultValue"/> when absent or null (transformers' default).</summary>
    public bool GetBool(string key, bool defaultValue)
    {
        var node = Raw[key];
        if (node is null)
        {
            return defaultValue;
        }
        if (node is JsonValue v && v.TryGetValue<bool>(out var b))
        {
            return b;
        }
        throw new ConfigException($"{Source}: '{key}' must be true or false, got {node.ToJsonString()}");
    }

    /// <summary>A string key, or null when absent or null.</summary>
    public string? GetString(string key)
    {
        var node = Raw[key];
        if (node is null)
        {
            return null;
        }
        if (node is JsonValue v && v.TryGetValue<string>(out var s))
        {
            return s;
        }
        throw new ConfigException($"{Source}: '{key}' must be a string, got {node.ToJsonString()}");
    }

    /// <summary>An object key (e.g. <c>rope_scaling</c>), or null when absent or null.</summary>
    public JsonObject? GetObject(string key)
    {
        var node = Raw[key];
        return node switch
        {
            null => null,
            JsonObject o => o,
            _ => throw new ConfigException($"{Source}: '{key}' must be an object or null, got {node.ToJsonString()}"),
        };
    }

    private IReadOnlyList<int> ReadIdList(string key)
    {
        var node = Raw[key];
        if (node is null)
        {
            return [];
        }
        if (node is JsonArray arr)
        {
            var ids = new List<int>();
            foreach (var item in arr)
            {
                if (item is JsonValue v && v.TryGetValue<int>(out var id))
                {
                    ids.Add(id);
                }
                else
                {
                    throw new ConfigException($"{Source}: '{key}' must hold integers, got {arr.ToJsonString()}");
                }
            }
            return ids;
        }
        return [GetOptionalInt(key)!.Value];
    }
}
