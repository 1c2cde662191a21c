using PeftSharp.IO;
using PeftSharp.Models.Bert;
using PeftSharp.Models.Gpt2;
using PeftSharp.Models.Llama;
using TorchSharp;

namespace PeftSharp.Models;

/// <summary>
/// Builds the model a Hugging Face folder describes: <c>config.json</c>'s <c>architectures[0]</c> (or, when absent,
/// the default class of its <c>model_type</c>) selects the class, then the safetensors weights are loaded strictly
/// (every parameter present with its shape, no unknown tensor) through <see cref="HfCheckpoint"/>.
/// </summary>
public static class AutoModel
{
    private static readonly Dictionary<string, Func<ModelConfig, ModelLoadOptions, PretrainedModel>> s_architectures = new(StringComparer.Ordinal)
    {
        ["LlamaForCausalLM"] = (c, o) => new LlamaForCausalLM(c, o),
        ["LlamaForSequenceClassification"] = (c, o) => new LlamaForSequenceClassification(c, o),
        ["Qwen2ForCausalLM"] = (c, o) => new Qwen2ForCausalLM(c, o),
        ["Qwen2ForSequenceClassification"] = (c, o) => new Qwen2ForSequenceClassification(c, o),
        ["MistralForCausalLM"] = (c, o) => new MistralForCausalLM(c, o),
        ["MistralForSequenceClassification"] = (c, o) => new MistralForSequenceClassification(c, o),
        ["GPT2LMHeadModel"] = (c, o) => new Gpt2LMHeadModel(c, o),
        ["GPT2ForSequenceClassification"] = (c, o) => new Gpt2ForSequenceClassification(c, o),
        ["BertModel"] = (c, o) => new BertModel(c, o),
        ["BertForSequenceClassification"] = (c, o) => new BertForSequenceClassification(c, o),
    };

    /// <summary>The class used when config.json has no <c>architectures</c>.</summary>
    private static readonly Dictionary<string, string> s_defaultByModelType = new(StringComparer.Ordinal)
    {
        ["llama"] = "LlamaForCausalLM",
        ["qwen2"] = "Qwen2ForCausalLM",
        ["mistral"] = "MistralForCausalLM",
        ["gpt2"] = "GPT2LMHeadModel",
        ["bert"] = "BertModel",
    };

    /// <summary>transformers class names this library builds.</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = [.. s_architectures.Keys];

    /// <summary>
    /// Loads <paramref name="folder"/> (config.json + model.safetensors or a sharded index). Every name and shape is
    /// checked before any weight is copied; a mismatch throws a <see cref="PeftException"/> naming the tensor. The
    /// model is returned in eval mode with <see cref="PretrainedModel.LoadReport"/> set.
    /// </summary>
    public static PretrainedModel FromPretrained(string folder, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var architecture = ResolveArchitecture(config, options);
        using var checkpoint = HfCheckpoint.Open(folder);
        var model = Build(architecture, config, options);
        try
        {
            model.LoadReport = CheckpointLoader.Load(model, checkpoint, options);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// The load options for a base model that adapter <paramref name="adapterDir"/> will be loaded into: a SEQ_CLS adapter
    /// trained on a bare encoder or LM (e.g. <c>peft train</c> on MiniLM) carries its head in modules_to_save, so the
    /// matching *ForSequenceClassification class is loaded with the head's number of labels; otherwise the defaults.
    /// </summary>
    public static ModelLoadOptions OptionsForAdapter(string modelDir, string adapterDir, torch.Device device)
    {
        var options = new ModelLoadOptions { Device = device };
        var config = PeftAdapterFiles.ReadConfigJson(adapterDir).Json;
        if (config["task_type"]?.GetValue<string>() != "SEQ_CLS")
        {
            return options;
        }
        var model = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        if (model.Architectures.Any(a => a.EndsWith("ForSequenceClassification", StringComparison.Ordinal)))
        {
            return options;
        }
        using var weights = PeftAdapterFiles.OpenWeights(adapterDir);
        var head = weights.Entries.FirstOrDefault(e => e.Name is "base_model.model.classifier.weight" or "base_model.model.score.weight")
            ?? throw new PeftException($"{adapterDir}: a SEQ_CLS adapter for a model without a classification head must hold the head (classifier or score) in modules_to_save");
        var architecture = model.ModelType switch
        {
            "bert" => "BertForSequenceClassification",
            "gpt2" => "GPT2ForSequenceClassification",
            "qwen2" => "Qwen2ForSequenceClassification",
            _ => "LlamaForSequenceClassification",
        };
        return options with { Architecture = architecture, NumLabels = (int)head.Shape[0], AllowNewHead = true };
    }

    /// <summary>Builds a model with initial (random) weights from a config, in eval mode; for tests and benchmarks.</summary>
    public static PretrainedModel FromConfig(ModelConfig config, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        return Build(ResolveArchitecture(config, options), config, options);
    }

    private static string ResolveArchitecture(ModelConfig config, ModelLoadOptions options)
    {
        if (options.DType is not (torch.ScalarType.Float32 or torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Float64))
        {
            throw new PeftException($"ModelLoadOptions.DType must be a floating-point type (Float32, Float16, BFloat16), got {options.DType}");
        }
        string architecture;
        if (options.Architecture is not null)
        {
            architecture = options.Architecture;
        }
        else if (config.Architectures.Count > 0)
        {
            architecture = config.Architectures[0];
        }
        else if (!s_defaultByModelType.TryGetValue(config.ModelType, out architecture!))
        {
            throw new PeftException(
                $"{config.Source}: model_type '{config.ModelType}' is not supported; supported model types: {string.Join(", ", s_defaultByModelType.Keys)}; "
                + $"architectures: {string.Join(", ", SupportedArchitectures)}");
        }
        if (!s_architectures.ContainsKey(architecture))
        {
            throw new PeftException(
                $"{config.Source}: architecture '{architecture}' (model_type '{config.ModelType}') is not supported; supported: {string.Join(", ", SupportedArchitectures)}");
        }
        return architecture;
    }

    private static PretrainedModel Build(string architecture, ModelConfig config, ModelLoadOptions options)
    {
        if (options.NumLabels is int labels)
        {
            if (labels <= 0)
            {
                throw new PeftException($"ModelLoadOptions.NumLabels must be > 0, got {labels}");
            }
            config = config.With("num_labels", labels);
        }
        var model = s_architectures[architecture](config, options);
        model.GradientCheckpointing = options.GradientCheckpointing;
        model.eval();
        return model;
    }
}
