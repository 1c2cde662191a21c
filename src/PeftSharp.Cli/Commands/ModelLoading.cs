using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Models;
using TorchSharp;

namespace PeftSharp.Cli.Commands;

/// <summary>Loads a model folder with zero or more adapters, optionally merged: shared by forward, generate, eval and merge.</summary>
internal static class ModelLoading
{
    /// <summary>
    /// Loads the model and its adapters, all active; adapter <c>i</c> is named <c>names[i]</c> when given, else
    /// <c>default</c> (the first) or <c>adapter&lt;i&gt;</c>.
    /// </summary>
    public static (PretrainedModel Model, PeftModel? Peft) Load(string modelDir, IReadOnlyList<DirectoryInfo> adapters, bool merge, torch.Device device, IReadOnlyList<string?>? names = null)
    {
        var model = AutoModel.FromPretrained(modelDir, LoadOptionsFor(modelDir, adapters, device));
        if (adapters.Count == 0)
        {
            return (model, null);
        }
        var peft = PeftModel.Wrap(model);
        for (var i = 0; i < adapters.Count; i++)
        {
            PeftAdapterFiles.Load(peft, adapters[i].FullName, AdapterName(names, i));
        }
        peft.SetActiveAdapters([.. peft.Configs.Keys]);
        if (merge)
        {
            return ((PretrainedModel)peft.MergeAndUnload(), null);
        }
        return (model, peft);
    }

    /// <summary>The name <see cref="Load"/> gives adapter <paramref name="index"/>.</summary>
    public static string AdapterName(IReadOnlyList<string?>? names, int index) =>
        names?[index] ?? (index == 0 ? PeftAdapterFiles.DefaultAdapterName : $"adapter{index}");

    /// <summary>
    /// A SEQ_CLS adapter trained on a bare encoder or LM (e.g. <c>peft train</c> on MiniLM) carries its head in
    /// modules_to_save: load the matching *ForSequenceClassification class with the head's number of labels.
    /// </summary>
    private static ModelLoadOptions LoadOptionsFor(string modelDir, IReadOnlyList<DirectoryInfo> adapters, torch.Device device)
    {
        var options = new ModelLoadOptions { Device = device };
        if (adapters.Count == 0)
        {
            return options;
        }
        var config = PeftAdapterFiles.ReadConfigJson(adapters[0].FullName).Json;
        if (config["task_type"]?.GetValue<string>() != "SEQ_CLS")
        {
            return options;
        }
        var model = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        if (model.Architectures.Any(a => a.EndsWith("ForSequenceClassification", StringComparison.Ordinal)))
        {
            return options;
        }
        using var weights = PeftAdapterFiles.OpenWeights(adapters[0].FullName);
        var head = weights.Entries.FirstOrDefault(e => e.Name is "base_model.model.classifier.weight" or "base_model.model.score.weight")
            ?? throw new PeftException($"{adapters[0].FullName}: a SEQ_CLS adapter for a model without a classification head must hold the head (classifier or score) in modules_to_save");
        var architecture = model.ModelType switch
        {
            "bert" => "BertForSequenceClassification",
            "gpt2" => "GPT2ForSequenceClassification",
            "qwen2" => "Qwen2ForSequenceClassification",
            _ => "LlamaForSequenceClassification",
        };
        return options with { Architecture = architecture, NumLabels = (int)head.Shape[0], AllowNewHead = true };
    }
}
