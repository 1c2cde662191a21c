using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using PeftSharp.Core;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// LoRA (Hu et al., arXiv 2106.09685): <c>y = W x + s · B A dropout(x)</c>, <c>s = lora_alpha / r</c>
/// (<c>lora_alpha / √r</c> with rsLoRA, arXiv 2312.03732). Keys and defaults are PEFT's <c>LoraConfig</c>; <c>r</c>,
/// <c>lora_alpha</c>, <c>lora_dropout</c> and <c>use_rslora</c> are declared in <see cref="RsLoraKeysConfig"/>.
/// </summary>
public sealed record LoraConfig : RsLoraKeysConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "LORA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>PiSSA and OLoRA rewrite the base weight into a residual when an adapter is created.</summary>
    public override bool RewritesBaseWeights => InitLoraWeights.IsPissa || InitLoraWeights.Method == "olora";

    /// <summary>Which biases train: <c>none</c>, <c>all</c> or <c>lora_only</c> (PEFT default none).</summary>
    [JsonPropertyName("bias")]
    public string Bias { get; init; } = "none";

    /// <summary>DoRA (PEFT stores it as LoRA with this flag).</summary>
    [JsonPropertyName("use_dora")]
    public bool UseDora { get; init; }

    /// <summary>True when the target stores its weight as <c>[in, out]</c> (GPT-2 Conv1D).</summary>
    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary>
    /// A trainable bias on lora_B (PEFT's <c>lora_bias</c>, saved as <c>lora_B.bias</c>): the branch is
    /// <c>s·(B·A·x + b_B)</c>, and merging adds <c>s·b_B</c> to the base bias. Linear, Conv1D and Conv2d targets only.
    /// </summary>
    [JsonPropertyName("lora_bias")]
    public bool LoraBias { get; init; }

    /// <summary>
    /// <c>true</c> (A Kaiming-uniform, B = 0), <c>false</c> (both random: the adapter is not a no-op),
    /// <c>"gaussian"</c>, <c>"pissa"</c>, <c>"pissa_niter_K"</c> or <c>"olora"</c>.
    /// </summary>
    [JsonPropertyName("init_lora_weights")]
    public InitLoraWeights InitLoraWeights { get; init; } = InitLoraWeights.Default;

    /// <summary>Per-module rank overrides: key matches the end of the module name. PEFT: <c>rank_pattern</c>.</summary>
    [JsonPropertyName("rank_pattern")]
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Per-module α overrides. PEFT: <c>alpha_pattern</c>.</summary>
    [JsonPropertyName("alpha_pattern")]
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>
    /// A LoRA config with PEFT's defaults and the keys every method shares taken from <paramref name="source"/>
    /// (target_modules, exclude_modules, layers_to_transform, layers_pattern, modules_to_save, base_model_name_or_path,
    /// revision, task_type, inference_mode): the start of any tool that turns another method's adapter into a LoRA.
    /// </summary>
    public static LoraConfig WithSharedKeysOf(AdapterConfig source) => new()
    {
        TargetModules = source.TargetModules,
        ExcludeModules = source.ExcludeModules,
        LayersToTransform = source.LayersToTransform,
        LayersPattern = source.LayersPattern,
        ModulesToSave = source.ModulesToSave,
        BaseModelNameOrPath = source.BaseModelNameOrPath,
        Revision = source.Revision,
        TaskType = source.TaskType,
        InferenceMode = source.InferenceMode,
    };

    public override AdapterConfig ForModule(string qualifiedName)
    {
        var rank = PatternKeys.Find(RankPattern, qualifiedName);
        var alpha = PatternKeys.Find(AlphaPattern, qualifiedName);
        return rank is null && alpha is null ? this : this with { Rank = rank ?? Rank, Alpha = alpha ?? Alpha };
    }

    public override void Validate()
    {
        base.Validate();
        if (Bias is not ("none" or "all" or "lora_only"))
        {
            throw new ConfigException($"bias must be \"none\", \"all\" or \"lora_only\", got \"{Bias}\"");
        }
        PatternKeys.ValidateRanks(RankPattern);
        if (LoraBias && InitLoraWeights.Method is not null)
        {
            throw new ConfigException(
                $"lora_bias=true works only with init_lora_weights true or false (as in PEFT), got \"{InitLoraWeights.Method}\"");
        }
        if (LoraBias && UseDora)
        {
            throw new ConfigException("lora_bias=true is not supported with DoRA (use_dora), as in PEFT");
        }
        InitLoraWeights.Validate();
        foreach (var key in s_unsupportedKeys)
        {
            if (UnknownKeys?.TryGetValue(key, out var value) == true && IsSet(value))
            {
                throw new ConfigException(
                    $"\"{key}\": {JsonSerializer.Serialize(value)} is not supported by PeftSharp; the adapter would not compute what PEFT computes with it");
            }
        }
    }

    // PEFT LoraConfig keys that change what the adapter computes when set; ignoring one would load silently wrong.
    private static readonly string[] s_unsupportedKeys =
    [
        "layer_replication", "trainable_token_indices", "target_parameters", "alora_invocation_tokens", "use_qalora",
        "use_bdlora", "arrow_config", "kasa_config", "monteclora_config",
    ];

    private static bool IsSet(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.False or JsonValueKind.Undefined => false,
        JsonValueKind.Array => value.GetArrayLength() > 0,
        JsonValueKind.Object => value.EnumerateObject().Any(),
        _ => true,
    };
}

/// <summary>PEFT's <c>init_lora_weights</c>: a bool or a method name.</summary>
[JsonConverter(typeof(InitLoraWeightsConverter))]
public sealed record InitLoraWeights(bool? Flag, string? Method)
{
    public static InitLoraWeights Default { get; } = new(true, null);

    public static InitLoraWeights Random { get; } = new(false, null);

    public static InitLoraWeights Gaussian { get; } = new(null, "gaussian");

    public static InitLoraWeights Pissa { get; } = new(null, "pissa");

    public static InitLoraWeights Olora { get; } = new(null, "olora");

    public static InitLoraWeights PissaWithNiter(int k) => new(null, "pissa_niter_" + k);

    /// <summary>The value of a method whose <c>init_lora_weights</c> is a plain bool (SoRA, DyLoRA, the conv-kernel LoRAs).</summary>
    public static InitLoraWeights FromFlag(bool flag) => flag ? Default : Random;

    /// <summary>Subspace iterations for a randomized PiSSA SVD, or null for the exact SVD.</summary>
    [JsonIgnore]
    public int? PissaNiter => Method is not null && Method.StartsWith("pissa_niter_", StringComparison.Ordinal)
        ? int.Parse(Method["pissa_niter_".Length..], System.Globalization.CultureInfo.InvariantCulture)
        : null;

    [JsonIgnore]
    public bool IsPissa => Method == "pissa" || PissaNiter is not null;

    internal void Validate()
    {
        // "eva": PEFT's layer init only zeroes B (EVA's data-driven A is a separate initialize_lora_eva_weights call),
        // so a fresh adapter starts as the default init and a saved one loads as any LoRA.
        if (Method is null or "gaussian" or "pissa" or "olora" or "orthogonal" or "eva")
        {
            return;
        }
        if (Method.StartsWith("pissa_niter_", StringComparison.Ordinal) && int.TryParse(Method["pissa_niter_".Length..], out var k) && k >= 0)
        {
            return;
        }
        throw new ConfigException(
            $"init_lora_weights \"{Method}\" is not supported (true, false, \"gaussian\", \"pissa\", \"pissa_niter_K\", \"olora\", "
            + "\"orthogonal\", \"eva\"); LoftQ, CorDA and LoRA-GA rewrite the base weights from data PeftSharp does not have");
    }

    private sealed class InitLoraWeightsConverter : JsonConverter<InitLoraWeights>
    {
        public override InitLoraWeights Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
        {
            JsonTokenType.True => Default,
            JsonTokenType.False => Random,
            JsonTokenType.String => new InitLoraWeights(null, reader.GetString()),
            _ => throw new JsonException($"expected true, false or a method name, got {reader.TokenType}"),
        };

        public override void Write(Utf8JsonWriter writer, InitLoraWeights value, JsonSerializerOptions options)
        {
            if (value.Flag is bool b)
            {
                writer.WriteBooleanValue(b);
            }
            else
            {
                writer.WriteStringValue(value.Method);
            }
        }
    }
}
