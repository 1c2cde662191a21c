using System.Text.Json;
using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Bench;

/// <summary>
/// Writes a Hugging Face folder for a config: <c>config.json</c>, F32 safetensors shards (one per decoder layer plus
/// one for the rest) and <c>model.safetensors.index.json</c>. Names and shapes come from the model built on the
/// <c>meta</c> device (no memory); values are drawn shard by shard (N(0, 0.02²), norms 1), so at most one layer's
/// tensors exist at a time.
/// </summary>
internal static class SyntheticCheckpoint
{
    /// <summary>Writes the folder; returns the total bytes of the shards.</summary>
    public static long Write(ModelConfig config, string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.Raw.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        List<(string Name, long[] Shape)> shapes;
        using (var meta = AutoModel.FromConfig(config, new ModelLoadOptions { Device = torch.META }))
        {
            shapes = [.. meta.named_parameters().Select(p => (p.name, p.parameter.shape))];
        }
        var shards = shapes.GroupBy(s => ShardKey(s.Name)).OrderBy(g => g.Key).ToList();
        var weightMap = new JsonObject();
        long total = 0;
        using var generator = new torch.Generator(0);
        for (var i = 0; i < shards.Count; i++)
        {
            var file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            using var scope = torch.NewDisposeScope();
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (name, shape) in shards[i])
            {
                tensors[name] = shape.Length == 1
                    ? torch.ones(shape, ScalarType.Float32)
                    : torch.randn(shape, ScalarType.Float32, generator: generator).mul_(0.02);
                weightMap[name] = file;
                total += tensors[name].numel() * 4;
            }
            SafetensorsWriter.Save(Path.Combine(folder, file), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.IndexFileName), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return total;
    }

    /// <summary>-1 for tensors outside the decoder layers, else the layer index.</summary>
    private static int ShardKey(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal))
        {
            return -1;
        }
        var rest = name[prefix.Length..];
        return int.Parse(rest[..rest.IndexOf('.')], System.Globalization.CultureInfo.InvariantCulture);
    }
}
