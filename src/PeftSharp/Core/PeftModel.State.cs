using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

public sealed partial class PeftModel
{
    /// <summary>PEFT's names of the input/output embedding layers whose base weight is saved with an adapter that targets them.</summary>
    private static readonly string[] s_embeddingLayerNames = ["embed_tokens", "lm_head"];

    /// <summary>Keys of tensors shared model-wide start with this (PEFT: <c>base_model.vera_A</c>).</summary>
    private const string SharedKeyPrefix = "base_model.";

    /// <summary>
    /// One adapter's tensors under the names PEFT saves them with (<c>get_peft_model_state_dict</c>):
    /// <c>base_model.model.&lt;module&gt;.lora_A.weight</c> (no adapter name), modules_to_save copies under the module's own
    /// name, the base weight of an adapted embedding, and trained biases.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> AdapterStateDict(string adapterName)
    {
        var config = _configs.TryGetValue(adapterName, out var c) ? c : throw new PeftException($"no adapter '{adapterName}'");
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var saveEmbeddings = config.TargetModules?.Names?.Any(n => s_embeddingLayerNames.Contains(n)) == true;
        foreach (var (name, layer) in AdapterLayers())
        {
            if (!layer.AdapterNames.Contains(adapterName))
            {
                continue;
            }
            foreach (var (key, t) in layer.AdapterTensors(adapterName))
            {
                var saved = SavedKey(name, key);
                if (result.TryGetValue(saved, out var existing) && !ReferenceEquals(existing, t))
                {
                    throw new PeftException($"shared adapter tensor '{key}' differs between layers (layer '{name}')");
                }
                result[saved] = t;
            }
            if (saveEmbeddings && layer.Base.Kind == BaseLayerKind.Embedding)
            {
                result[SavedKey(name, BaseWeightKey)] = layer.Base.Weight;
            }
            if (BiasMode(adapterName) == "lora_only" && layer.Base.Bias is { } bias)
            {
                result[SavedKey(name, BaseBiasKey)] = bias;
            }
        }
        foreach (var (name, wrapper) in SavedModules())
        {
            if (wrapper.Has(adapterName))
            {
                foreach (var (key, p) in wrapper.AdapterTensors(adapterName))
                {
                    result[NamePrefix + name + "." + key] = p;
                }
            }
        }
        if (BiasMode(adapterName) == "all")
        {
            foreach (var (name, p) in Model.named_parameters())
            {
                if ((name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal)) && !name.Contains(".original_module.", StringComparison.Ordinal))
                {
                    result.TryAdd(NamePrefix + name, p);
                }
            }
        }
        return result;
    }

    /// <summary>A layer's base bias saved with the adapter (LoRA's <c>bias: lora_only</c>), relative to the layer.</summary>
    public const string BaseBiasKey = "base_layer.bias";

    private const string BaseWeightKey = "base_layer.weight";

    /// <summary>
    /// The saved name of tensor <paramref name="key"/> of the adapter layer <paramref name="layerName"/> (a key of
    /// <see cref="AdapterLayer.AdapterTensors"/>): <c>base_model.model.&lt;layer&gt;.&lt;key&gt;</c>, or the key itself for a
    /// tensor shared model-wide (<c>base_model.vera_A</c>).
    /// </summary>
    public static string SavedKey(string layerName, string key) =>
        key.StartsWith(SharedKeyPrefix, StringComparison.Ordinal) ? key : NamePrefix + layerName + "." + key;

    /// <summary>Keys that may be absent from a PEFT file (PEFT only writes an embedding's base weight in some versions/modes).</summary>
    internal static bool IsOptionalKey(string key) => key.EndsWith("." + BaseWeightKey, StringComparison.Ordinal);

    /// <summary>
    /// The config as it is saved: all-linear resolved to the adapted module names, as PEFT writes it, then passed through
    /// the method's <see cref="IAdapterMethod.ConfigForSave"/>.
    /// </summary>
    public AdapterConfig ConfigForSave(string adapterName)
    {
        var config = _configs[adapterName];
        var layers = AdapterLayers().Where(l => l.Layer.AdapterNames.Contains(adapterName)).ToList();
        if (config.TargetModules is { IsAllLinear: true })
        {
            config = config with { TargetModules = TargetModules.Of([.. layers.Select(l => l.Name)]) };
        }
        config = Registry.ForConfig(config).ConfigForSave(config, [.. layers.Select(l => l.Layer)], adapterName);
        return config with { InferenceMode = true };
    }
}
