using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Support;

/// <summary>
/// An adapter written as Python PEFT saves it (adapter_config.json + adapter_model.safetensors) must load into a fixture
/// base and give the expected logits, and save → load must give the same file tensors and the same logits bit for bit.
/// </summary>
public static class PeftFolderCheck
{
    public static void LoadsAsExpectedAndRoundTrips(string fixture, IReadOnlyDictionary<string, Tensor> tensors, JsonObject config, Tensor expected, double tolerance = 1e-5)
    {
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var dir = new TempDir();
        SafetensorsWriter.Save(dir.File("adapter_model.safetensors"), tensors);
        File.WriteAllText(dir.File("adapter_config.json"), config.ToJsonString());
        using var _ = torch.no_grad();
        using var model = AutoModel.FromPretrained(fixture);
        var peft = PeftAdapterFiles.FromPretrained(model, dir.Path);
        var logits = model.Forward(ids, mask).Logits;
        Assert.InRange(ModelFixtures.MaxAbsDiff(logits, expected), 0, tolerance);

        using var saved = new TempDir();
        PeftAdapterFiles.Save(peft, saved.Path);
        using (var file = SafetensorsFile.Open(saved.File("adapter_model.safetensors")))
        {
            Assert.Equal(tensors.Keys.Order(), file.Entries.Select(e => e.Name).Order());
            Assert.All(tensors, kv => Assert.True(Weights.Exact(file.Read(kv.Key), kv.Value), kv.Key));
        }
        using var again = AutoModel.FromPretrained(fixture);
        PeftAdapterFiles.FromPretrained(again, saved.Path);
        Assert.True(Weights.Exact(again.Forward(ids, mask).Logits, logits));
    }
}
