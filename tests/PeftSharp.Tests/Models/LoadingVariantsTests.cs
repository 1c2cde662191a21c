using System.Text.Json.Nodes;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>transformers' loading rules beyond name-for-name: base-model prefix, stored buffers, dtypes.</summary>
public class LoadingVariantsTests
{
    private static TempDir Rewrite(string fixture, Func<string, string?> rename, Action<Dictionary<string, Tensor>>? extra = null, Action<JsonObject>? editConfig = null)
    {
        var source = SharedPaths.Fixture("bases", fixture);
        var dir = new TempDir();
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        editConfig?.Invoke(config);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            foreach (var entry in file.Entries)
            {
                if (rename(entry.Name) is string name)
                {
                    tensors[name] = file.Read(entry.Name);
                }
            }
        }
        extra?.Invoke(tensors);
        SafetensorsWriter.Save(dir.File("model.safetensors"), tensors);
        return dir;
    }

    private static double FixtureDiff(PretrainedModel model, string fixture)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        var types = model.Config.ModelType == "bert" ? torch.zeros_like(ids) : null;
        var logits = model.Forward(ids, mask, types).Logits.to_type(ScalarType.Float32);
        return ModelFixtures.MaxAbsDiff(logits, ModelFixtures.Expected($"bases/{fixture}/expected.safetensors:logits"));
    }

    [Fact]
    public void Gpt2_hub_layout_without_prefix_and_with_mask_buffers_loads()
    {
        // The Hub's gpt2 checkpoint is a bare GPT2Model (no "transformer.") and stores attn.bias / attn.masked_bias.
        using var dir = Rewrite("gpt2", k => k.StartsWith("transformer.", StringComparison.Ordinal) ? k["transformer.".Length..] : k, t =>
        {
            t["h.0.attn.bias"] = torch.ones(1, 1, 128, 128).tril();
            t["h.1.attn.masked_bias"] = torch.tensor(-1e4f);
        });
        using var model = AutoModel.FromPretrained(dir.Path);
        Assert.Equal(["h.0.attn.bias", "h.1.attn.masked_bias"], model.LoadReport!.IgnoredKeys.Order());
        Assert.InRange(FixtureDiff(model, "gpt2"), 0, 1e-4);
    }

    [Fact]
    public void Bert_classifier_checkpoint_without_bert_prefix_loads()
    {
        using var dir = Rewrite("bert-seqcls", k => k.StartsWith("bert.", StringComparison.Ordinal) ? k["bert.".Length..] : k);
        using var model = AutoModel.FromPretrained(dir.Path);
        Assert.Empty(model.LoadReport!.NewlyInitialized);
        Assert.InRange(FixtureDiff(model, "bert-seqcls"), 0, 1e-4);
    }

    [Fact]
    public void Bert_classifier_checkpoint_loads_as_bare_encoder_ignoring_the_head()
    {
        var folder = SharedPaths.Fixture("bases", "bert-seqcls");
        using var encoder = AutoModel.FromPretrained(folder, new ModelLoadOptions { Architecture = "BertModel" });
        using var classifier = AutoModel.FromPretrained(folder);
        Assert.Equal(["classifier.bias", "classifier.weight"], encoder.LoadReport!.IgnoredKeys.Order());
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        var a = encoder.Forward(ids, mask);
        var b = classifier.Forward(ids, mask);
        Assert.Equal(0, ModelFixtures.MaxAbsDiff(a.LastHiddenState!, b.LastHiddenState!));
        Assert.Equal(0, ModelFixtures.MaxAbsDiff(a.PooledOutput!, b.PooledOutput!));
    }

    [Fact]
    public void Tied_checkpoint_that_also_stores_lm_head_loads_and_ignores_it()
    {
        using var dir = Rewrite("llama-tied-rope-scaling", k => k, t => t["lm_head.weight"] = t["model.embed_tokens.weight"].clone());
        using var model = AutoModel.FromPretrained(dir.Path);
        Assert.Equal(["lm_head.weight"], model.LoadReport!.IgnoredKeys);
        Assert.InRange(FixtureDiff(model, "llama-tied-rope-scaling"), 0, 1e-4);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 0.15)]
    [InlineData(ScalarType.Float16, 0.02)]
    public void Half_precision_load_converts_every_weight_and_stays_close(ScalarType dtype, double tolerance)
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"), new ModelLoadOptions { DType = dtype });
        Assert.All(model.parameters(), p => Assert.Equal(dtype, p.dtype));
        Assert.InRange(FixtureDiff(model, "llama"), 0, tolerance);
    }

    [Theory]
    [InlineData("llama-tied-rope-scaling")]
    [InlineData("gpt2")]
    [InlineData("bert-seqcls")]
    public void Moving_to_float64_after_loading_converts_every_parameter_and_keeps_the_logits(string fixture)
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", fixture));
        model.to(ScalarType.Float64);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        Assert.InRange(FixtureDiff(model, fixture), 0, 1e-4);
    }

    [Fact]
    public void Linear_rope_scaling_at_scaled_positions_equals_plain_rope()
    {
        // rope_type linear divides every frequency by the factor: positions f·p then rotate exactly as p unscaled.
        using var dir = Rewrite("llama", k => k, editConfig: c => c["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 2.0 });
        using var scaled = AutoModel.FromPretrained(dir.Path);
        using var plain = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (ids, _, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        var positions = torch.arange(12, dtype: ScalarType.Int64).unsqueeze(0).expand(2, 12);
        var a = scaled.Forward(ids, positionIds: positions * 2).Logits;
        var b = plain.Forward(ids, positionIds: positions).Logits;
        Assert.InRange(ModelFixtures.MaxAbsDiff(a, b), 0, 1e-5);
        var c = scaled.Forward(ids, positionIds: positions).Logits;
        Assert.True(ModelFixtures.MaxAbsDiff(c, b) > 1e-3, "linear scaling must change the rotation");
    }

    [Fact]
    public void Dynamic_rope_scaling_uses_the_grown_base_only_beyond_max_positions()
    {
        // Dynamic NTK: base' = θ·(f·L/max − (f − 1))^(D/(D−2)) once the length L exceeds max_position_embeddings.
        const double Factor = 2, Theta = 10000, HeadDim = 16;
        const int MaxPositions = 8, Length = 12;
        var grownTheta = Theta * Math.Pow(Factor * Length / MaxPositions - (Factor - 1), HeadDim / (HeadDim - 2));
        using var dynamic = Rewrite("llama", k => k, editConfig: c =>
        {
            c["rope_scaling"] = new JsonObject { ["rope_type"] = "dynamic", ["factor"] = Factor };
            c["max_position_embeddings"] = MaxPositions;
        });
        using var grown = Rewrite("llama", k => k, editConfig: c => c["rope_theta"] = grownTheta);
        using var dynamicModel = AutoModel.FromPretrained(dynamic.Path);
        using var grownModel = AutoModel.FromPretrained(grown.Path);
        using var plainModel = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (ids, _, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        Assert.InRange(ModelFixtures.MaxAbsDiff(dynamicModel.Forward(ids).Logits, grownModel.Forward(ids).Logits), 0, 1e-5);
        var shortIds = ids.narrow(1, 0, MaxPositions);
        Assert.InRange(ModelFixtures.MaxAbsDiff(dynamicModel.Forward(shortIds).Logits, plainModel.Forward(shortIds).Logits), 0, 1e-6);
    }

    [Fact]
    public void Hundred_forwards_with_cache_leak_no_tensors()
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        var ids = torch.tensor(new long[] { 1, 5, 7, 9 }).unsqueeze(0);
        var stats = DisposeScopeManager.Statistics;
        long? afterFirst = null;
        using var _ = torch.no_grad();
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            using (var cache = model.CreateCache())
            {
                model.Forward(ids, cache: cache);
                model.Forward(ids.narrow(1, 0, 1), cache: cache);
                model.Forward(ids.narrow(1, 0, 1), cache: cache);
            }
            if (step == 1)
            {
                afterFirst = stats.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(afterFirst, stats.ThreadTotalLiveCount);
        ids.Dispose();
    }
}
