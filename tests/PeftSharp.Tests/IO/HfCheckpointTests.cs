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
}
