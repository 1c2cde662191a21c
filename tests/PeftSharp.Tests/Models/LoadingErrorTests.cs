using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>Bad folders and inputs give a PeftException naming the culprit; nothing is loaded silently.</summary>
public class LoadingErrorTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static string Llama => SharedPaths.Fixture("bases", "llama");

    /// <summary>A copy of a fixture folder with config edits and a rewritten weight file.</summary>
    private static TempDir CopyFolder(string source, Action<JsonObject>? editConfig = null, Action<Dictionary<string, Tensor>>? editWeights = null)
    {
        var dir = new TempDir();
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        editConfig?.Invoke(config);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        if (editWeights is null)
        {
            File.Copy(Path.Combine(source, "model.safetensors"), dir.File("model.safetensors"));
            return dir;
        }
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            foreach (var entry in file.Entries)
            {
                tensors[entry.Name] = file.Read(entry.Name);
            }
        }
        editWeights(tensors);
        SafetensorsWriter.Save(dir.File("model.safetensors"), tensors);
        return dir;
    }

    [Fact]
    public void Unknown_architecture_is_named_with_the_supported_list()
    {
        using var dir = CopyFolder(Llama, c => c["architectures"] = new JsonArray("FalconForCausalLM"));
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains("FalconForCausalLM", e.Message);
        Assert.Contains("LlamaForCausalLM", e.Message);
        Assert.Contains("BertForSequenceClassification", e.Message);
    }

    [Fact]
    public void Unknown_model_type_without_architectures_is_named()
    {
        using var dir = CopyFolder(Llama, c =>
        {
            c.Remove("architectures");
            c["model_type"] = "falcon";
        });
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains("'falcon'", e.Message);
        Assert.Contains("qwen2", e.Message);
    }

    [Fact]
    public void Model_type_alone_selects_the_default_class()
    {
        using var dir = CopyFolder(Llama, c => c.Remove("architectures"));
        using var model = AutoModel.FromPretrained(dir.Path);
        Assert.Equal("LlamaForCausalLM", model.Architecture);
    }

    [Fact]
    public void Missing_tensor_is_named()
    {
        using var dir = CopyFolder(Llama, editWeights: w => w.Remove("model.layers.1.mlp.up_proj.weight"));
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains("missing", e.Message);
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void Unexpected_tensor_is_named()
    {
        using var dir = CopyFolder(Llama, editWeights: w => w["model.layers.0.self_attn.q_norm.weight"] = torch.ones(16));
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains("unexpected", e.Message);
        Assert.Contains("model.layers.0.self_attn.q_norm.weight", e.Message);
    }

    [Fact]
    public void Wrong_shape_names_the_tensor_and_both_shapes()
    {
        using var dir = CopyFolder(Llama, editWeights: w => w["model.norm.weight"] = torch.ones(65));
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("[65]", e.Message);
        Assert.Contains("[64]", e.Message);
    }

    [Fact]
    public void Pickle_only_folder_is_refused_by_name()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Llama, "config.json"), dir.File("config.json"));
        File.WriteAllBytes(dir.File("pytorch_model.bin"), [0x80, 0x02]);
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains("pytorch_model.bin", e.Message);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("intermediate_size")]
    [InlineData("vocab_size")]
    public void Missing_shape_key_is_a_config_error_naming_the_key(string key)
    {
        using var dir = CopyFolder(Llama, c => c.Remove(key));
        var e = Assert.Throws<ConfigException>(() => AutoModel.FromPretrained(dir.Path));
        output.WriteLine(e.Message);
        Assert.Contains($"'{key}'", e.Message);
    }

    [Fact]
    public void Failed_load_leaves_the_model_untouched()
    {
        using var dir = CopyFolder(Llama, editWeights: w => w["model.norm.weight"] = torch.ones(65));
        using var model = AutoModel.FromConfig(ModelConfig.Load(Path.Combine(Llama, "config.json")));
        using var scope = torch.NewDisposeScope();
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone());
        using var checkpoint = HfCheckpoint.Open(dir.Path);
        Assert.ThrowsAny<PeftException>(() => CheckpointLoader.Load(model, checkpoint, new ModelLoadOptions()));
        foreach (var (name, p) in model.named_parameters())
        {
            Assert.Equal(0, ModelFixtures.MaxAbsDiff(p, before[name]));
        }
    }

    [Fact]
    public void Token_id_outside_the_vocabulary_is_refused()
    {
        using var model = AutoModel.FromPretrained(Llama);
        using var scope = torch.NewDisposeScope();
        var e = Assert.ThrowsAny<PeftException>(() => model.Forward(torch.tensor(new long[] { 1, 256 }).unsqueeze(0)));
        output.WriteLine(e.Message);
        Assert.Contains("256", e.Message);
        Assert.Contains("vocab_size", e.Message);
        Assert.ThrowsAny<PeftException>(() => model.Forward(torch.tensor(new long[] { -1, 3 }).unsqueeze(0)));
    }

    [Fact]
    public void Attention_mask_of_the_wrong_length_is_refused()
    {
        using var model = AutoModel.FromPretrained(Llama);
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[] { 1, 5, 7 }).unsqueeze(0);
        var e = Assert.ThrowsAny<PeftException>(() => model.Forward(ids, torch.ones(1, 4, dtype: ScalarType.Int64)));
        output.WriteLine(e.Message);
        Assert.Contains("attention_mask", e.Message);
    }
}
