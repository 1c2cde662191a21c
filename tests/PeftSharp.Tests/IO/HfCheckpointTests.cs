using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.IO;

public class HfCheckpointTests
{
    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    [InlineData("qwen2")]
    [InlineData("mistral")]
    [InlineData("bert-seqcls")]
    [InlineData("toy-conv")]
    public void Fixture_base_folder_exposes_every_tensor_of_model_safetensors(string name)
    {
        var folder = SharedPaths.Fixture("bases", name);
        using var checkpoint = HfCheckpoint.Open(folder);
        using var file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        Assert.Equal(file.Entries.Select(e => e.Name).Order(), checkpoint.Keys.Order());
        foreach (var entry in file.Entries)
        {
            Assert.Equal(entry.Shape, checkpoint.Shape(entry.Name));
            using var a = file.Read(entry.Name);
            using var b = checkpoint.Read(entry.Name);
            Assert.True(a.bytes.SequenceEqual(b.bytes));
        }
    }

    [Fact]
    public void Llama_checkpoint_has_transformers_names_and_shapes()
    {
        using var checkpoint = HfCheckpoint.Open(SharedPaths.Fixture("bases", "llama"));
        // config.json: hidden 64, 4 heads x head_dim 16, 2 kv heads, intermediate 128, vocab 256, 2 layers.
        Assert.Equal(new long[] { 256, 64 }, checkpoint.Shape("model.embed_tokens.weight"));
        Assert.Equal(new long[] { 32, 64 }, checkpoint.Shape("model.layers.1.self_attn.k_proj.weight"));
        Assert.Equal(new long[] { 128, 64 }, checkpoint.Shape("model.layers.0.mlp.up_proj.weight"));
        Assert.True(checkpoint.Contains("lm_head.weight"));
        Assert.False(checkpoint.Contains("model.layers.2.mlp.up_proj.weight"));
        using var t = checkpoint.Read("model.norm.weight", torch.ScalarType.Float64);
        Assert.Equal(torch.ScalarType.Float64, t.dtype);
    }

    [Fact]
    public void Sharded_index_reads_every_tensor_from_the_shard_the_weight_map_names()
    {
        using var dir = new TempDir();
        var source = SharedPaths.Fixture("bases", "llama", "model.safetensors");
        var shardOf = new Dictionary<string, string>();
        using (var scope = torch.NewDisposeScope())
        using (var file = SafetensorsFile.Open(source))
        {
            var names = file.Entries.Select(e => e.Name).ToList();
            string[] shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
            for (var s = 0; s < 2; s++)
            {
                var mine = names.Where((_, i) => i % 2 == s).ToList();
                SafetensorsWriter.Save(dir.File(shards[s]), mine.Select(n => new KeyValuePair<string, torch.Tensor>(n, file.Read(n))), file.Metadata);
                mine.ForEach(n => shardOf[n] = shards[s]);
            }
        }
        WriteIndex(dir, shardOf);

        using var checkpoint = HfCheckpoint.Open(dir.Path);
        using var original = SafetensorsFile.Open(source);
        Assert.Equal(2, checkpoint.Files.Count);
        Assert.Equal(original.Entries.Select(e => e.Name).Order(), checkpoint.Keys.Order());
        foreach (var entry in original.Entries)
        {
            Assert.Equal(entry.Shape, checkpoint.Shape(entry.Name));
            using var a = original.Read(entry.Name);
            using var b = checkpoint.Read(entry.Name);
            Assert.True(a.bytes.SequenceEqual(b.bytes), entry.Name);
        }
    }

    [Fact]
    public void Missing_shard_file_is_an_error_naming_index_tensor_and_shard()
    {
        using var dir = new TempDir();
        File.Copy(SharedPaths.Fixture("bases", "llama", "model.safetensors"), dir.File("model-00001-of-00002.safetensors"));
        WriteIndex(dir, new Dictionary<string, string>
        {
            ["model.norm.weight"] = "model-00001-of-00002.safetensors",
            ["lm_head.weight"] = "model-00002-of-00002.safetensors",
        });
        var e = Assert.Throws<PeftException>(() => HfCheckpoint.Open(dir.Path));
        Assert.Contains(dir.File("model.safetensors.index.json"), e.Message);
        Assert.Contains("'lm_head.weight'", e.Message);
        Assert.Contains("model-00002-of-00002.safetensors", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Index_naming_a_tensor_its_shard_lacks_is_an_error()
    {
        using var dir = new TempDir();
        File.Copy(SharedPaths.Fixture("bases", "llama", "model.safetensors"), dir.File("shard.safetensors"));
        WriteIndex(dir, new Dictionary<string, string> { ["model.layers.9.mlp.up_proj.weight"] = "shard.safetensors" });
        var e = Assert.Throws<PeftException>(() => HfCheckpoint.Open(dir.Path));
        Assert.Contains("'model.layers.9.mlp.up_proj.weight' in shard 'shard.safetensors', which has no such tensor", e.Message);
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/etc/passwd")]
    public void Index_pointing_outside_the_folder_is_refused(string shard)
    {
        using var dir = new TempDir();
        WriteIndex(dir, new Dictionary<string, string> { ["w"] = shard });
        Assert.Contains("not a file inside the model folder", Assert.Throws<ConfigException>(() => HfCheckpoint.Open(dir.Path)).Message);
    }

    [Fact]
    public void Malformed_index_json_is_a_config_error_with_its_line()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model.safetensors.index.json"), "{\n  \"weight_map\": {\n    \"a\": \"x.safetensors\",\n  }\n}");
        var e = Assert.Throws<ConfigException>(() => HfCheckpoint.Open(dir.Path));
        Assert.Contains("model.safetensors.index.json", e.Message);
        Assert.Contains("line 4", e.Message);
        File.WriteAllText(dir.File("model.safetensors.index.json"), "{\"weight_map\": {\"a\": 3}}");
        Assert.Contains("weight_map value of 'a'", Assert.Throws<ConfigException>(() => HfCheckpoint.Open(dir.Path)).Message);
        File.WriteAllText(dir.File("model.safetensors.index.json"), "{\"metadata\": {}}");
        Assert.Contains("\"weight_map\"", Assert.Throws<ConfigException>(() => HfCheckpoint.Open(dir.Path)).Message);
    }

    [Theory]
    [InlineData("pytorch_model.bin")]
    [InlineData("model.pt")]
    [InlineData("weights.PTH")]
    public void Pickle_only_folder_is_refused_with_advice_to_convert(string pickle)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{}");
        // Not a real pickle: the loader must refuse before looking inside.
        File.WriteAllBytes(dir.File(pickle), [0x80, 0x02, 0x7D, 0x71, 0x00, 0x2E]);
        var e = Assert.Throws<PeftException>(() => HfCheckpoint.Open(dir.Path));
        Assert.Contains(pickle, e.Message);
        Assert.Contains("safetensors", e.Message);
        Assert.Contains("Convert", e.Message);
    }

    [Fact]
    public void Safetensors_is_preferred_when_pickle_weights_sit_beside_it()
    {
        using var dir = new TempDir();
        File.Copy(SharedPaths.Fixture("bases", "llama", "model.safetensors"), dir.File("model.safetensors"));
        File.WriteAllBytes(dir.File("pytorch_model.bin"), [1, 2, 3]);
        using var checkpoint = HfCheckpoint.Open(dir.Path);
        Assert.True(checkpoint.Contains("lm_head.weight"));
    }

    [Fact]
    public void Empty_or_missing_folder_and_missing_key_are_clear_errors()
    {
        using var dir = new TempDir();
        Assert.Contains("no model.safetensors or model.safetensors.index.json", Assert.Throws<PeftException>(() => HfCheckpoint.Open(dir.Path)).Message);
        Assert.Contains("not found", Assert.Throws<PeftException>(() => HfCheckpoint.Open(dir.File("nope"))).Message);
        File.Copy(SharedPaths.Fixture("bases", "llama", "model.safetensors"), dir.File("model-00001-of-00002.safetensors"));
        Assert.Contains("found model-00001-of-00002.safetensors; shards need their index file", Assert.Throws<PeftException>(() => HfCheckpoint.Open(dir.Path)).Message);
        using var checkpoint = HfCheckpoint.Open(SharedPaths.Fixture("bases", "llama"));
        var e = Assert.Throws<ModelMismatchException>(() => checkpoint.Read("model.layers.7.mlp.up_proj.weight"));
        Assert.Contains("'model.layers.7.mlp.up_proj.weight'", e.Message);
        Assert.Throws<ModelMismatchException>(() => checkpoint.Shape("x"));
    }

    [Fact]
    public void Corrupt_model_safetensors_surfaces_as_safetensors_exception()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(SharedPaths.Fixture("bases", "llama", "model.safetensors"));
        File.WriteAllBytes(dir.File("model.safetensors"), bytes[..^1]);
        var e = Assert.Throws<SafetensorsException>(() => HfCheckpoint.Open(dir.Path));
        Assert.Contains(dir.File("model.safetensors"), e.Message);
    }

    private static void WriteIndex(TempDir dir, Dictionary<string, string> weightMap)
    {
        var index = new System.Text.Json.Nodes.JsonObject
        {
            ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["total_size"] = 0 },
            ["weight_map"] = new System.Text.Json.Nodes.JsonObject(weightMap.Select(kv => new KeyValuePair<string, System.Text.Json.Nodes.JsonNode?>(kv.Key, kv.Value))),
        };
        File.WriteAllText(dir.File("model.safetensors.index.json"), index.ToJsonString());
    }
}
