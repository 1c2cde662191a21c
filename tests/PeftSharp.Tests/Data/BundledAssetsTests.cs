using PeftSharp.Data;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Data;

/// <summary>The repository's own assets/ folder: found from the test binary, complete, and the F16 MiniLM as accurate as documented.</summary>
[Collection(nameof(EnvironmentVariableTests))]
public sealed class BundledAssetsTests(ITestOutputHelper output)
{
    [Fact]
    public void Root_is_the_repository_assets_folder()
    {
        Assert.Equal(Path.Combine(SharedPaths.RepoRoot, "assets"), BundledAssets.Root());
        Assert.True(File.Exists(Path.Combine(BundledAssets.Model(BundledAssets.MiniLmL6V2), "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(BundledAssets.Model(BundledAssets.Stories260K), "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "train.jsonl")));
        Assert.True(File.Exists(Path.Combine(BundledAssets.Data(BundledAssets.TinyStories), "validation.jsonl")));
        Assert.Contains("no such bundled asset", Assert.Throws<PeftException>(() => BundledAssets.Model("gpt-5")).Message);
    }

    [Fact]
    public void Environment_variable_wins_and_must_point_at_an_assets_folder()
    {
        var previous = Environment.GetEnvironmentVariable(BundledAssets.EnvironmentVariable);
        try
        {
            var elsewhere = SharedPaths.Assets; // ../shared/assets has models/ and data/ too
            Environment.SetEnvironmentVariable(BundledAssets.EnvironmentVariable, elsewhere);
            Assert.Equal(Path.GetFullPath(elsewhere), BundledAssets.Root());
            Environment.SetEnvironmentVariable(BundledAssets.EnvironmentVariable, Path.GetTempPath());
            Assert.Null(BundledAssets.TryFindRoot());
            Assert.Contains(BundledAssets.EnvironmentVariable, Assert.Throws<PeftException>(() => BundledAssets.Root()).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(BundledAssets.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void Walking_up_from_elsewhere_finds_nothing()
    {
        var previous = Environment.GetEnvironmentVariable(BundledAssets.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(BundledAssets.EnvironmentVariable, null);
            Assert.Null(BundledAssets.TryFindRoot(Path.GetTempPath()));
            Assert.Equal(Path.Combine(SharedPaths.RepoRoot, "assets"), BundledAssets.TryFindRoot(Path.Combine(SharedPaths.RepoRoot, "src", "PeftSharp")));
        }
        finally
        {
            Environment.SetEnvironmentVariable(BundledAssets.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void Bundled_defaults_make_classification_and_lm_batches()
    {
        var data = DataSplits.FromFiles(Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "train.jsonl"),
            Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "test.jsonl"));
        Assert.Equal((2400, 600, 2), (data.Train.Count, data.Validation!.Count, data.Labels!.Count));
        var tokenizer = PeftSharp.Tokenization.HfTokenizer.FromFolder(BundledAssets.Model(BundledAssets.MiniLmL6V2));
        var encoded = ClassificationEncoder.Encode(data.Train.Examples.Take(64), tokenizer, maxLength: 128);
        var loader = new DataLoader(encoded.Examples, Collator.For(tokenizer), torch.CPU, new DataLoaderOptions { BatchSize = 16 });
        using var scope = torch.NewDisposeScope();
        var batch = loader.Get(0);
        Assert.Equal(16, batch.Rows);
        Assert.Equal(batch.InputIds.shape, batch.TokenTypeIds!.shape);
        Assert.Equal([16L], batch.ClassLabels!.shape);

        var stories = DataReader.Read(Path.Combine(BundledAssets.Data(BundledAssets.TinyStories), "validation.jsonl"));
        var lmTokenizer = PeftSharp.Tokenization.HfTokenizer.FromFolder(BundledAssets.Model(BundledAssets.Stories260K));
        var blocks = TextLmEncoder.Encode(stories.Examples.Take(20), lmTokenizer, new TextLmOptions { MaxLength = 128, Packing = true });
        var lm = new DataLoader(blocks.Examples, Collator.For(lmTokenizer), torch.CPU, new DataLoaderOptions { BatchSize = 4 }).Get(0);
        Assert.Equal([4L, 128L], lm.Labels!.shape);
    }

    [Fact]
    public void Bundled_MiniLM_is_F16_and_loads_as_F32()
    {
        var folder = Path.Combine(SharedPaths.RepoRoot, "assets", "models", "all-MiniLM-L6-v2");
        using (var file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors")))
        using (var original = SafetensorsFile.Open(SharedPaths.Asset("models", "all-MiniLM-L6-v2", "model.safetensors")))
        {
            Assert.All(file.Entries, e => Assert.Equal(SafetensorsDType.F16, e.DType));
            Assert.Equal(original.Entries.Select(e => (e.Name, string.Join(",", e.Shape))), file.Entries.Select(e => (e.Name, string.Join(",", e.Shape))));
        }
        using var model = AutoModel.FromPretrained(folder);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
    }

    [Fact]
    public void F16_MiniLM_matches_F32_reference_outputs_within_5e3()
    {
        // README of assets/models/all-MiniLM-L6-v2 reports these maxima; F16 weights round at ~1e-3 relative.
        var folder = Path.Combine(SharedPaths.RepoRoot, "assets", "models", "all-MiniLM-L6-v2");
        using var model = AutoModel.FromPretrained(folder);
        using var reference = SafetensorsFile.Open(SharedPaths.Asset("models", "all-MiniLM-L6-v2", "reference_outputs.safetensors"));
        using var _ = torch.no_grad();
        double hidden = 0, pooler = 0, embedding = 0, cosine = 1;
        for (var k = 0; k < 7; k++)
        {
            using var scope = torch.NewDisposeScope();
            var ids = reference.Read($"case{k}.input_ids").unsqueeze(0);
            var mask = torch.ones_like(ids);
            var result = model.Forward(ids, mask, torch.zeros_like(ids));
            hidden = Math.Max(hidden, ModelFixtures.MaxAbsDiff(result.LastHiddenState![0], reference.Read($"case{k}.last_hidden_state")));
            pooler = Math.Max(pooler, ModelFixtures.MaxAbsDiff(result.PooledOutput![0], reference.Read($"case{k}.pooler_output")));
            var mine = Pooling.L2Normalize(Pooling.Mean(result.LastHiddenState, mask))[0];
            var expected = reference.Read($"case{k}.mean_pooled_normalized");
            embedding = Math.Max(embedding, ModelFixtures.MaxAbsDiff(mine, expected));
            cosine = Math.Min(cosine, (mine * expected).sum().ToDouble());
        }
        output.WriteLine($"F16 vs F32 reference: last_hidden_state {hidden:E2}, pooler {pooler:E2}, embedding {embedding:E2}, min cosine {cosine:F6}");
        Assert.InRange(hidden, 0, 5e-3);
        Assert.InRange(pooler, 0, 5e-3);
        Assert.InRange(embedding, 0, 1e-3);
        Assert.InRange(cosine, 0.9999, 1.0001);
    }
}

/// <summary>Tests that set process environment variables run one at a time.</summary>
[CollectionDefinition(nameof(EnvironmentVariableTests), DisableParallelization = true)]
public sealed class EnvironmentVariableTests;
