using System.Text.Json.Nodes;
using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>Reads the transformers fixtures (inputs.json, expected.safetensors, manifest.json) for model tests.</summary>
internal static class ModelFixtures
{
    public static JsonObject Manifest => (JsonObject)JsonNode.Parse(File.ReadAllText(SharedPaths.Fixture("manifest.json")))!;

    /// <summary>input_ids, attention_mask (and token_type_ids when present) of an inputs.json file, int64 [B, T].</summary>
    public static (Tensor Ids, Tensor Mask, Tensor? TokenTypes) Inputs(string path)
    {
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;
        var ids = Matrix((JsonArray)json["input_ids"]!);
        var mask = Matrix((JsonArray)json["attention_mask"]!);
        var types = json["token_type_ids"] is JsonArray t ? Matrix(t) : null;
        return (ids, mask, types);
    }

    public static Tensor Matrix(JsonArray rows)
    {
        var data = rows.Select(r => ((JsonArray)r!).Select(v => v!.GetValue<long>()).ToArray()).ToArray();
        var flat = data.SelectMany(r => r).ToArray();
        return torch.tensor(flat, [data.Length, data[0].Length], ScalarType.Int64);
    }

    /// <summary>Reads "file:key" (relative to the fixtures folder) as float32.</summary>
    public static Tensor Expected(string reference)
    {
        var colon = reference.LastIndexOf(':');
        return Read(SharedPaths.Fixture(reference[..colon]), reference[(colon + 1)..]);
    }

    public static Tensor Read(string file, string key)
    {
        using var st = SafetensorsFile.Open(file);
        return st.Read(key);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        Assert.Equal(b.shape, a.shape);
        using var scope = torch.NewDisposeScope();
        return (a.to_type(ScalarType.Float64) - b.to_type(ScalarType.Float64)).abs().max().item<double>();
    }
}
