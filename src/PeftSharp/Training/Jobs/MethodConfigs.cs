using System.Text.Json.Nodes;
using PeftSharp.Core;

namespace PeftSharp.Training.Jobs;

/// <summary>Sets the common knobs (rank, scale, dropout) on any method's config through its PEFT JSON keys.</summary>
public static class MethodConfigs
{
    private static readonly string[] s_alphaKeys = ["lora_alpha", "alpha", "randlora_alpha"];

    /// <summary>
    /// A copy of <paramref name="config"/> with <c>r</c> and, where the method has them, its alpha key and every
    /// <c>*_dropout</c> key set; keys a method lacks are left alone (VeRA has no alpha, for example).
    /// </summary>
    public static AdapterConfig WithRank(AdapterConfig config, int rank, double alpha, double dropout, double? calibrationLearningRate = null, MethodRegistry? registry = null)
    {
        registry ??= MethodRegistry.Default;
        var json = JsonNode.Parse(registry.SerializeConfig(config))!.AsObject();
        if (json.ContainsKey("r"))
        {
            json["r"] = rank;
        }
        foreach (var key in s_alphaKeys.Where(json.ContainsKey))
        {
            json[key] = alpha;
        }
        foreach (var key in json.Select(p => p.Key).Where(k => k.EndsWith("_dropout", StringComparison.Ordinal) && k is not ("rank_dropout" or "module_dropout") && json[k] is JsonValue).ToList())
        {
            json[key] = dropout;
        }
        // LoRA-SB's calibration needs the learning rate of the first update it approximates (unset = the run's first step).
        if (calibrationLearningRate is double lr && json.ContainsKey("calibration_lr") && json["calibration_lr"] is null)
        {
            json["calibration_lr"] = lr;
        }
        return registry.ParseConfig(json.ToJsonString(), $"{config.PeftType} options");
    }

    /// <summary>
    /// A copy of <paramref name="config"/> with each key of <paramref name="options"/> set by its PEFT JSON name. Only keys
    /// the method's config serialises are accepted, so a typo fails with the list of valid keys instead of being ignored.
    /// </summary>
    public static AdapterConfig WithOptions(AdapterConfig config, IReadOnlyDictionary<string, JsonNode?> options, MethodRegistry? registry = null)
    {
        registry ??= MethodRegistry.Default;
        var json = JsonNode.Parse(registry.SerializeConfig(config))!.AsObject();
        foreach (var (key, value) in options)
        {
            if (!json.ContainsKey(key))
            {
                var known = string.Join(", ", json.Select(p => p.Key).Order(StringComparer.Ordinal));
                throw new ConfigException($"method option '{key}' is not a key of {config.PeftType}'s config; its keys are: {known}");
            }
            json[key] = value?.DeepClone();
        }
        return registry.ParseConfig(json.ToJsonString(), $"{config.PeftType} method options");
    }

    /// <summary>
    /// Parses a CLI <c>KEY=VALUE</c> method option: VALUE is read as JSON when it parses (numbers, true/false, null,
    /// lists, objects) and as a string otherwise.
    /// </summary>
    public static KeyValuePair<string, JsonNode?> ParseOption(string text)
    {
        var eq = text.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
        {
            throw new ConfigException($"method option '{text}' is not KEY=VALUE (e.g. use_dora=true)");
        }
        var key = text[..eq].Trim();
        var raw = text[(eq + 1)..].Trim();
        JsonNode? value;
        try
        {
            value = raw == "null" ? null : JsonNode.Parse(raw);
        }
        catch (System.Text.Json.JsonException)
        {
            value = JsonValue.Create(raw);
        }
        return new(key, value);
    }
}
