using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace PeftSharp.Core;

/// <summary>
/// What a method contributes: its names, its config type and its layer. Adding a method is one folder with a class
/// implementing this and one line in <see cref="BuiltinMethods"/>.
/// </summary>
public interface IAdapterMethod
{
    /// <summary>The name users type (<c>peft train --method lora</c>).</summary>
    string Name { get; }

    /// <summary>PEFT's <c>peft_type</c> (e.g. <c>LORA</c>).</summary>
    string PeftType { get; }

    /// <summary>Other <c>peft_type</c> strings this method reads (e.g. <c>BONE</c> for <c>MISS</c>).</summary>
    IReadOnlyList<string> Aliases => [];

    /// <summary>One line: what it trains, and the paper.</summary>
    string Description { get; }

    /// <summary>Trainable parameters of one adapted d_in × d_out layer, as a formula.</summary>
    string ParameterCountFormula { get; }

    /// <summary>The config record (deserialised from adapter_config.json).</summary>
    Type ConfigType { get; }

    /// <summary>Whether the method can wrap this layer.</summary>
    bool Supports(BaseLayer layer);

    /// <summary>A new, empty adapter layer around <paramref name="layer"/>; adapters are added to it afterwards.</summary>
    AdapterLayer CreateLayer(BaseLayer layer);

    /// <summary>
    /// Called once per added adapter, after validation and before any layer is created, with every base layer the
    /// adapter will wrap. Returns the config the layers receive: a method whose state is shared model-wide (VeRA's and
    /// RandLoRA's random projections, sized by the largest target, as PEFT's <c>_pre_injection_hook</c>) attaches it
    /// here. Default: the config unchanged.
    /// </summary>
    AdapterConfig PrepareAdapter(AdapterConfig config, IReadOnlyList<BaseLayer> targets) => config;

    /// <summary>
    /// The target modules a fine-tuning job uses for a model type (<c>llama</c>, <c>bert</c>, …) when the user names none;
    /// null (default) keeps PEFT's per-model default. A method that needs other modules than attention (MoLE's MLP
    /// experts) says so here.
    /// </summary>
    IReadOnlyList<string>? DefaultTargetModules(string modelType) => null;

    /// <summary>
    /// The config written to adapter_config.json for adapter <paramref name="adapterName"/>, given the layers holding it
    /// (empty when there are none yet). Default: the config unchanged. A method that is a training procedure over another
    /// PEFT method's adapter returns that method's config, and its layers then save that method's tensor keys
    /// (LoRA-Squeeze anneals the rank of a LoRA and saves a plain LoRA at the current rank).
    /// </summary>
    AdapterConfig ConfigForSave(AdapterConfig config, IReadOnlyList<AdapterLayer> layers, string adapterName) => config;
}

/// <summary>
/// A named starting configuration of a registered method, for variants PEFT expresses as flags of another method
/// (DoRA = LoRA with <c>use_dora</c>; PiSSA, OLoRA = LoRA inits). Listed by <c>peft methods</c>, usable as <c>--method</c>.
/// </summary>
public sealed record MethodPreset(string Name, string PeftType, string Description, string ParameterCountFormula, Func<AdapterConfig> CreateConfig);

/// <summary>The registered methods, keyed by PEFT type and by name; also reads and writes their configs.</summary>
public sealed class MethodRegistry
{
    private static readonly Lazy<MethodRegistry> s_default = new(() =>
    {
        var r = new MethodRegistry();
        BuiltinMethods.Register(r);
        return r;
    });

    private readonly List<IAdapterMethod> _methods = [];
    private readonly List<MethodPreset> _presets = [];

    public IReadOnlyList<MethodPreset> Presets => _presets;

    /// <summary>Registers a preset; its PEFT type must belong to a registered method.</summary>
    public void AddPreset(MethodPreset preset)
    {
        _ = Get(preset.PeftType);
        if (Find(preset.Name) is not null || _presets.Any(p => Normalise(p.Name) == Normalise(preset.Name)))
        {
            throw new PeftException($"method name '{preset.Name}' is already registered");
        }
        _presets.Add(preset);
    }

    /// <summary>
    /// A fresh default config for a method or preset name (<c>lora</c>, <c>dora</c>, <c>vera</c>, …), or throws listing the
    /// names. The caller sets targets and rank on it.
    /// </summary>
    public AdapterConfig DefaultConfig(string name)
    {
        var preset = _presets.FirstOrDefault(p => Normalise(p.Name) == Normalise(name));
        if (preset is not null)
        {
            return preset.CreateConfig();
        }
        var method = Find(name) ?? throw new PeftException(
            $"unknown adapter method '{name}'; known: {string.Join(", ", _methods.Select(m => m.Name).Concat(_presets.Select(p => p.Name)))}");
        return (AdapterConfig)(Activator.CreateInstance(method.ConfigType)
            ?? throw new PeftException($"{method.Name}: its config type has no default constructor"));
    }

    /// <summary>The registry with every built-in method.</summary>
    public static MethodRegistry Default => s_default.Value;

    internal static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.Strict,
        PropertyNameCaseInsensitive = false,
        // A config's JSON is exactly its [JsonPropertyName] keys (PEFT's) plus the unknown keys it was read with;
        // computed C# properties (Scaling, RewritesBaseWeights, …) never reach the file, in any method.
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                info =>
                {
                    if (info.Kind != System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Object || !typeof(AdapterConfig).IsAssignableFrom(info.Type))
                    {
                        return;
                    }
                    for (var i = info.Properties.Count - 1; i >= 0; i--)
                    {
                        var member = info.Properties[i].AttributeProvider as System.Reflection.MemberInfo;
                        var keep = member is not null && (HasAttribute<JsonPropertyNameAttribute>(member) || HasAttribute<JsonExtensionDataAttribute>(member));
                        if (!keep)
                        {
                            info.Properties.RemoveAt(i);
                        }
                    }
                },
            },
        },
    };

    // Attributes of a property, including those declared on the property it overrides.
    private static bool HasAttribute<T>(System.Reflection.MemberInfo member) where T : Attribute =>
        Attribute.IsDefined(member, typeof(T), inherit: true);

    public IReadOnlyList<IAdapterMethod> Methods => _methods;

    public void Add(IAdapterMethod method)
    {
        foreach (var key in new[] { method.PeftType, method.Name }.Concat(method.Aliases))
        {
            if (Find(key) is { } existing)
            {
                throw new PeftException($"method key '{key}' of {method.Name} is already registered by {existing.Name}");
            }
        }
        _methods.Add(method);
    }

    /// <summary>The method for a PEFT type or name (case-insensitive, '-' and '_' ignored), or throws listing the known ones.</summary>
    public IAdapterMethod Get(string peftTypeOrName) =>
        Find(peftTypeOrName) ?? throw new PeftException(
            $"unknown adapter method '{peftTypeOrName}'; known: {string.Join(", ", _methods.Select(m => $"{m.Name} ({m.PeftType})"))}");

    public IAdapterMethod? Find(string key)
    {
        var k = Normalise(key);
        return _methods.FirstOrDefault(m => Normalise(m.PeftType) == k || Normalise(m.Name) == k || m.Aliases.Any(a => Normalise(a) == k));
    }

    /// <summary>The method that owns a config object.</summary>
    public IAdapterMethod ForConfig(AdapterConfig config) => Get(config.PeftType);

    /// <summary>Reads adapter_config.json text; <paramref name="source"/> names the file in errors.</summary>
    public AdapterConfig ParseConfig(string json, string source)
    {
        JsonObject obj;
        try
        {
            obj = JsonNode.Parse(json) as JsonObject ?? throw new ConfigException($"{source}: the top level must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: not valid JSON ({e.Message})", e);
        }
        if (!obj.TryGetPropertyValue("peft_type", out var typeNode) || typeNode is not JsonValue v || !v.TryGetValue<string>(out var peftType))
        {
            throw new ConfigException($"{source}: \"peft_type\" is missing or not a string");
        }
        var method = Find(peftType) ?? throw new ConfigException(
            $"{source}: unknown peft_type \"{peftType}\"; supported: {string.Join(", ", _methods.Select(m => m.PeftType))}");
        obj.Remove("peft_type");
        AdapterConfig config;
        try
        {
            config = (AdapterConfig)(obj.Deserialize(method.ConfigType, JsonOptions)
                ?? throw new ConfigException($"{source}: empty config"));
        }
        catch (JsonException e)
        {
            var key = e.Path is { Length: > 2 } p ? p[2..] : "?";
            throw new ConfigException($"{source}: key \"{key}\" has the wrong type or value ({FirstSentence(e.Message)})", e);
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or FormatException or ArgumentException)
        {
            throw new ConfigException($"{source}: {e.Message}", e);
        }
        try
        {
            config.Validate();
        }
        catch (ConfigException e)
        {
            throw new ConfigException($"{source}: {e.Message}", e);
        }
        return config;
    }

    /// <summary>adapter_config.json text: keys sorted and indented by 2, as PEFT's <c>save_pretrained</c> writes them.</summary>
    public string SerializeConfig(AdapterConfig config)
    {
        var node = JsonSerializer.SerializeToNode(config, config.GetType(), JsonOptions)!.AsObject();
        node["peft_type"] = config.PeftType;
        var sorted = new JsonObject();
        foreach (var (key, value) in node.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            sorted[key] = value?.DeepClone();
        }
        return sorted.ToJsonString(JsonOptions);
    }

    private static string Normalise(string s) => s.Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal).ToUpperInvariant();

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(" Path:", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }
}
