using System.Text.Json.Nodes;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using TorchSharp;

namespace PeftSharp.IO;

/// <summary>
/// Writes a model as a Hugging Face model folder (<c>config.json</c> + <c>model.safetensors</c> with transformers'
/// tensor names, plus the source folder's tokenizer and generation files), so a merged adapter loads again here and
/// in transformers. Each file is written atomically.
/// </summary>
public static class HfModelWriter
{
    private static readonly string[] s_sideFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "generation_config.json",
        "modules.json", "sentence_bert_config.json", "LICENSE",
    ];

    /// <summary>Saves <paramref name="model"/> to <paramref name="directory"/>; <paramref name="sourceFolder"/> supplies the side files.</summary>
    public static void Save(PretrainedModel model, string directory, string? sourceFolder = null, torch.ScalarType dtype = torch.ScalarType.Float32)
    {
        if (model.named_modules().Any(m => m.module is Core.AdapterLayer or Core.ModulesToSaveWrapper))
        {
            throw new PeftException("the model still holds adapter layers; merge and unload them first (PeftModel.MergeAndUnload)");
        }
        Directory.CreateDirectory(directory);
        using var scope = torch.NewDisposeScope();
        var tensors = model.named_parameters()
            .Select(p => KeyValuePair.Create(p.name, p.parameter.detach().to(dtype).cpu().contiguous()))
            .Concat(model.named_buffers().Select(b => KeyValuePair.Create(b.name, b.buffer.to(b.buffer.is_floating_point() ? dtype : b.buffer.dtype).cpu().contiguous())))
            .ToList();
        SafetensorsWriter.Save(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        var config = (JsonObject)model.Config.Raw.DeepClone();
        config["architectures"] = new JsonArray(model.Architecture);
        config["torch_dtype"] = dtype switch
        {
            torch.ScalarType.Float16 => "float16",
            torch.ScalarType.BFloat16 => "bfloat16",
            _ => "float32",
        };
        if (model.Task == ModelTask.SequenceClassification && model.OutputHeadNames.Count > 0)
        {
            var head = model.named_parameters().First(p => p.name.StartsWith(model.OutputHeadNames[0] + ".", StringComparison.Ordinal) && p.name.EndsWith("weight", StringComparison.Ordinal));
            var labels = (int)head.parameter.shape[0];
            if (config["id2label"] is not JsonObject existing || existing.Count != labels)
            {
                config["id2label"] = new JsonObject(Enumerable.Range(0, labels).Select(i => KeyValuePair.Create(i.ToString(System.Globalization.CultureInfo.InvariantCulture), (JsonNode?)$"LABEL_{i}")));
                config["label2id"] = new JsonObject(Enumerable.Range(0, labels).Select(i => KeyValuePair.Create($"LABEL_{i}", (JsonNode?)i)));
            }
        }
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        if (sourceFolder is not null && Path.GetFullPath(sourceFolder) != Path.GetFullPath(directory))
        {
            foreach (var name in s_sideFiles)
            {
                var src = Path.Combine(sourceFolder, name);
                if (File.Exists(src))
                {
                    File.Copy(src, Path.Combine(directory, name), overwrite: true);
                }
            }
        }
    }
}
