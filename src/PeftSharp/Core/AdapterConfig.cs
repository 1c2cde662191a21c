using System.Text.Json;
using System.Text.Json.Serialization;

namespace PeftSharp.Core;

/// <summary>
/// Options every adapter method shares, with PEFT's JSON keys (<c>adapter_config.json</c>). Method configs derive from
/// this record. Keys PeftSharp does not model are kept in <see cref="UnknownKeys"/> and written back unchanged.
/// </summary>
public abstract record AdapterConfig
{
    /// <summary>PEFT's <c>peft_type</c> (e.g. <c>LORA</c>); fixed by the method.</summary>
    [JsonPropertyName("peft_type")]
    public abstract string PeftType { get; }

    /// <summary>Which modules to adapt: a list of name suffixes, a regex (full match), or <c>all-linear</c>. PEFT: <c>target_modules</c>.</summary>
    [JsonPropertyName("target_modules")]
    public TargetModules? TargetModules { get; init; }

    /// <summary>Modules never adapted, with the same matching rules as <see cref="TargetModules"/>. PEFT: <c>exclude_modules</c>.</summary>
    [JsonPropertyName("exclude_modules")]
    public TargetModules? ExcludeModules { get; init; }

    /// <summary>Only these layer indices are adapted. PEFT: <c>layers_to_transform</c> (int or list).</summary>
    [JsonPropertyName("layers_to_transform")]
    [JsonConverter(typeof(IntOrListConverter))]
    public IReadOnlyList<int>? LayersToTransform { get; init; }

    /// <summary>The name of the layer list the index refers to (e.g. <c>layers</c>, <c>h</c>). PEFT: <c>layers_pattern</c> (string or list).</summary>
    [JsonPropertyName("layers_pattern")]
    [JsonConverter(typeof(StringOrListConverter))]
    public IReadOnlyList<string>? LayersPattern { get; init; }

    /// <summary>Modules trained in full and saved with the adapter (e.g. a classification head). PEFT: <c>modules_to_save</c>.</summary>
    [JsonPropertyName("modules_to_save")]
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    [JsonPropertyName("base_model_name_or_path")]
    public string? BaseModelNameOrPath { get; init; }

    [JsonPropertyName("revision")]
    public string? Revision { get; init; }

    /// <summary>PEFT's <c>task_type</c>: <c>CAUSAL_LM</c>, <c>SEQ_CLS</c>, <c>FEATURE_EXTRACTION</c>, … (null for a custom module).</summary>
    [JsonPropertyName("task_type")]
    public string? TaskType { get; init; }

    [JsonPropertyName("inference_mode")]
    public bool InferenceMode { get; init; }

    /// <summary>Keys of adapter_config.json that PeftSharp does not model; written back on save.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? UnknownKeys { get; init; }

    /// <summary>True when creating an adapter rewrites the base weight (PiSSA, OLoRA, …), so a failed load must restore it.</summary>
    [JsonIgnore]
    public virtual bool RewritesBaseWeights => false;

    /// <summary>The configuration that applies to one module (rank/alpha patterns resolve here). Default: this.</summary>
    public virtual AdapterConfig ForModule(string qualifiedName) => this;

    /// <summary>Rejects bad values, naming the JSON key. Called after parsing and before any model is touched.</summary>
    public virtual void Validate()
    {
        if (TargetModules is null)
        {
            throw new ConfigException("target_modules must be set (a list of module names, a regex, or \"all-linear\")");
        }
        if (LayersToTransform is { } layers && layers.Any(l => l < 0))
        {
            throw new ConfigException($"layers_to_transform must be non-negative, got [{string.Join(", ", layers)}]");
        }
    }
}

/// <summary>Reads PEFT's <c>layers_to_transform</c>: an int, a list of ints or null.</summary>
internal sealed class IntOrListConverter : JsonConverter<IReadOnlyList<int>?>
{
    public override IReadOnlyList<int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Null => null,
        JsonTokenType.Number => [reader.GetInt32()],
        JsonTokenType.StartArray => JsonSerializer.Deserialize<List<int>>(ref reader, options),
        _ => throw new JsonException($"expected an integer or a list of integers, got {reader.TokenType}"),
    };

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int>? value, JsonSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNullValue();
            return;
        }
        JsonSerializer.Serialize(writer, value.ToList(), options);
    }
}

/// <summary>Reads a string-or-list key (PEFT's <c>layers_pattern</c>), writing a single string back as a string.</summary>
internal sealed class StringOrListConverter : JsonConverter<IReadOnlyList<string>?>
{
    public override IReadOnlyList<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Null => null,
        JsonTokenType.String => new SingleString(reader.GetString()!),
        JsonTokenType.StartArray => JsonSerializer.Deserialize<List<string>>(ref reader, options),
        _ => throw new JsonException($"expected a string or a list of strings, got {reader.TokenType}"),
    };

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<string>? value, JsonSerializerOptions options)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case SingleString s:
                writer.WriteStringValue(s[0]);
                break;
            default:
                JsonSerializer.Serialize(writer, value.ToList(), options);
                break;
        }
    }

    private sealed class SingleString(string value) : List<string>([value]);
}
