using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>The bundled real models reproduce their reference outputs (PyTorch forwards over the same files).</summary>
public class PretrainedAssetTests(ITestOutputHelper output)
{
    private static string Stories => SharedPaths.Asset("models", "stories260K");

    private static string MiniLm => SharedPaths.Asset("models", "all-MiniLM-L6-v2");

    [Fact]
    public void Stories260K_prompt_and_sequence_logits_match_reference_within_1e4()
    {
        using var model = AutoModel.FromPretrained(Stories);
        using var reference = SafetensorsFile.Open(Path.Combine(Stories, "reference_logits.safetensors"));
        using var _ = torch.no_grad();
        for (var k = 0; k < 4; k++)
        {
            using var scope = torch.NewDisposeScope();
            // promptK.logits: the prompt ids alone; sequence_logits row t: logits after sequence_ids[0..t].
            var prompt = reference.Read($"prompt{k}.input_ids").unsqueeze(0);
            var promptDiff = ModelFixtures.MaxAbsDiff(model.Forward(prompt).Logits[0], reference.Read($"prompt{k}.logits"));
            var sequence = reference.Read($"prompt{k}.sequence_ids");
            var inputs = sequence.narrow(0, 0, sequence.shape[0] - 1).unsqueeze(0);
            var sequenceDiff = ModelFixtures.MaxAbsDiff(model.Forward(inputs).Logits[0], reference.Read($"prompt{k}.sequence_logits"));
            output.WriteLine($"prompt{k}: prompt {promptDiff:E2}, sequence {sequenceDiff:E2}");
            Assert.InRange(promptDiff, 0, 1e-4);
            Assert.InRange(sequenceDiff, 0, 1e-4);
        }
    }

    [Fact]
    public void MiniLM_hidden_states_pooler_and_sentence_embeddings_match_reference_within_1e4()
    {
        using var model = AutoModel.FromPretrained(MiniLm);
        Assert.Equal(ModelTask.Encoder, model.Task);
        using var reference = SafetensorsFile.Open(Path.Combine(MiniLm, "reference_outputs.safetensors"));
        using var _ = torch.no_grad();
        for (var k = 0; k < 7; k++)
        {
            using var scope = torch.NewDisposeScope();
            var ids = reference.Read($"case{k}.input_ids").unsqueeze(0);
            var mask = torch.ones_like(ids);
            var result = model.Forward(ids, mask, torch.zeros_like(ids));
            Assert.Same(result.Logits, result.LastHiddenState);
            var hiddenDiff = ModelFixtures.MaxAbsDiff(result.LastHiddenState![0], reference.Read($"case{k}.last_hidden_state"));
            var poolerDiff = ModelFixtures.MaxAbsDiff(result.PooledOutput![0], reference.Read($"case{k}.pooler_output"));
            var embedding = Pooling.L2Normalize(Pooling.Mean(result.LastHiddenState, mask));
            var embeddingDiff = ModelFixtures.MaxAbsDiff(embedding[0], reference.Read($"case{k}.mean_pooled_normalized"));
            output.WriteLine($"case{k}: hidden {hiddenDiff:E2}, pooler {poolerDiff:E2}, embedding {embeddingDiff:E2}");
            Assert.InRange(hiddenDiff, 0, 1e-4);
            Assert.InRange(poolerDiff, 0, 1e-4);
            Assert.InRange(embeddingDiff, 0, 1e-4);
        }
    }

    [Fact]
    public void MiniLM_mean_pooling_ignores_padding()
    {
        using var model = AutoModel.FromPretrained(MiniLm);
        using var reference = SafetensorsFile.Open(Path.Combine(MiniLm, "reference_outputs.safetensors"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        // case6 (9 tokens) right-padded to case4's 25 tokens in one batch: its embedding must not move.
        var longIds = reference.Read("case4.input_ids");
        var shortIds = reference.Read("case6.input_ids");
        var padded = torch.cat([shortIds, torch.zeros(longIds.shape[0] - shortIds.shape[0], dtype: ScalarType.Int64)]);
        var ids = torch.stack([longIds, padded]);
        var mask = torch.stack([torch.ones_like(longIds), torch.cat([torch.ones_like(shortIds), torch.zeros(longIds.shape[0] - shortIds.shape[0], dtype: ScalarType.Int64)])]);
        var result = model.Forward(ids, mask);
        var embedding = Pooling.L2Normalize(Pooling.Mean(result.LastHiddenState!, mask));
        Assert.InRange(ModelFixtures.MaxAbsDiff(embedding[1], reference.Read("case6.mean_pooled_normalized")), 0, 1e-4);
        Assert.InRange(ModelFixtures.MaxAbsDiff(embedding[0], reference.Read("case4.mean_pooled_normalized")), 0, 1e-4);
    }

    [Fact]
    public void MiniLM_as_sequence_classifier_with_fixture_head_matches_transformers_within_1e4()
    {
        var entry = ModelFixtures.Manifest["bases"]!["minilm-seqcls"]!.AsObject();
        var options = new ModelLoadOptions { Architecture = "BertForSequenceClassification", NumLabels = 2, AllowNewHead = true };
        using var model = AutoModel.FromPretrained(MiniLm, options);
        var report = model.LoadReport!;
        // transformers: every one of the 103 checkpoint tensors loaded into bert.*, only the head newly initialised.
        Assert.Equal(entry["checkpoint_tensors_loaded"]!.GetValue<int>(), report.LoadedTensors);
        Assert.Equal(entry["newly_initialised"]!.AsArray().Select(n => n!.GetValue<string>()).Order(), report.NewlyInitialized.Order());
        Assert.Empty(report.IgnoredKeys);

        using var scope = torch.NewDisposeScope();
        using (torch.no_grad())
        using (var head = SafetensorsFile.Open(SharedPaths.Fixture(entry["head"]!.GetValue<string>())))
        {
            var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var tensor in head.Entries)
            {
                parameters[tensor.Name].copy_(head.Read(tensor.Name));
            }
        }
        var (ids, mask, types) = ModelFixtures.Inputs(SharedPaths.Fixture(entry["input"]!.GetValue<string>()));
        using var _ = torch.no_grad();
        var logits = model.Forward(ids, mask, types).Logits;
        var diff = ModelFixtures.MaxAbsDiff(logits, ModelFixtures.Expected(entry["expected"]!["logits"]!.GetValue<string>()));
        output.WriteLine($"minilm-seqcls: {diff:E2}");
        Assert.InRange(diff, 0, entry["tolerance"]!.GetValue<double>());
    }

    [Fact]
    public void MiniLM_as_classifier_without_AllowNewHead_names_the_missing_head()
    {
        var options = new ModelLoadOptions { Architecture = "BertForSequenceClassification" };
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(MiniLm, options));
        Assert.Contains("classifier.weight", e.Message);
        Assert.Contains("AllowNewHead", e.Message);
    }
}
