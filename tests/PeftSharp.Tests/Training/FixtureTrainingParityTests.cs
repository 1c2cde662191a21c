using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Models;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

/// <summary>
/// Three optimizer steps on the llama fixture against torch 1.13 + PEFT (cases llama-lora-qv-train-adamw / -sgd): the
/// loss before each step, the gradients of step 1, the adapter tensors, loss and logits after step 3.
/// </summary>
public class FixtureTrainingParityTests
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string> Cases => new() { "llama-lora-qv-train-adamw", "llama-lora-qv-train-sgd" };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Three_steps_reproduce_torch_losses_gradients_and_weights_within_1e4(string caseId)
    {
        var manifest = (JsonObject)ModelFixtures.Manifest["cases"]![caseId]!;
        var expected = (JsonObject)manifest["expected"]!;
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        var peft = PeftAdapterFiles.FromPretrained(model, SharedPaths.Fixture("cases", "llama-lora-qv", "adapter"), isTrainable: true);
        var batch = FixtureBatch();
        var recorder = new GradientRecorder();
        var adamw = caseId.EndsWith("adamw", StringComparison.Ordinal);
        var options = new TrainerOptions
        {
            MaxSteps = 3,
            MaxGradNorm = null,
            Schedule = LearningRateSchedule.Constant(adamw ? 1e-2 : 0.1),
            Optimizer = adamw
                ? ps => AdamWOptimizer.Create(ps, new AdamWOptions { WeightDecay = 0.01 })
                : ps => SgdOptimizer.Create(ps),
            Hooks = [recorder],
        };
        using var trainer = new Trainer(peft, Objectives.CausalLm(model), TrainingData.FromStream([batch]), options);
        var result = trainer.Train();

        var torchLosses = ((JsonArray)manifest["losses"]!).Select(v => v!.GetValue<double>()).ToArray();
        for (var k = 0; k < 3; k++)
        {
            Assert.True(Math.Abs(result.Steps[k].Loss - torchLosses[k]) <= Tolerance, $"loss before step {k + 1}: {result.Steps[k].Loss} vs torch {torchLosses[k]}");
        }
        Assert.Equal(8, recorder.FirstStep.Count);
        foreach (var (key, reference) in expected.Where(e => e.Key.StartsWith("grad_step1.", StringComparison.Ordinal)))
        {
            var name = key["grad_step1.".Length..];
            var diff = ModelFixtures.MaxAbsDiff(recorder.FirstStep[name], ModelFixtures.Expected(reference!.GetValue<string>()));
            Assert.True(diff <= Tolerance, $"{name}: step-1 gradient differs by {diff}");
        }
        var named = peft.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (key, reference) in expected.Where(e => e.Key.StartsWith("after_step3.", StringComparison.Ordinal)))
        {
            var name = key["after_step3.".Length..];
            var diff = ModelFixtures.MaxAbsDiff(named[name].detach(), ModelFixtures.Expected(reference!.GetValue<string>()));
            Assert.True(diff <= Tolerance, $"{name}: after 3 steps differs by {diff}");
        }
        using (torch.no_grad())
        {
            var logits = model.Forward(batch.InputIds, batch.AttentionMask).Logits;
            var lossAfter = Losses.CausalLm(logits, batch.Labels!).item<float>();
            Assert.True(Math.Abs(lossAfter - manifest["loss_after_step3"]!.GetValue<double>()) <= Tolerance, $"loss after step 3: {lossAfter}");
            var logitsDiff = ModelFixtures.MaxAbsDiff(logits, ModelFixtures.Expected(expected["logits_after_step3"]!.GetValue<string>()));
            Assert.True(logitsDiff <= Tolerance, $"logits after step 3 differ by {logitsDiff}");
        }
    }

    [Fact]
    public void Causal_lm_loss_of_the_fixture_adapter_equals_torch_step1_loss()
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        PeftAdapterFiles.FromPretrained(model, SharedPaths.Fixture("cases", "llama-lora-qv", "adapter"));
        var batch = FixtureBatch();
        using var _ = torch.no_grad();
        var loss = Objectives.For(model)(batch).item<float>();
        var torchLoss = ModelFixtures.Expected("cases/llama-lora-qv-train-sgd/expected.safetensors:loss_step1").item<float>();
        Assert.True(Math.Abs(loss - torchLoss) <= 1e-5, $"{loss} vs {torchLoss}");
    }

    internal static Batch FixtureBatch()
    {
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(SharedPaths.Fixture("inputs.json")))!;
        var labels = ModelFixtures.Matrix((JsonArray)json["labels"]!);
        return new Batch(ids, mask, labels);
    }

    /// <summary>Copies the gradients the optimizer is about to use on the first step.</summary>
    private sealed class GradientRecorder : ITrainingHooks
    {
        public Dictionary<string, Tensor> FirstStep { get; } = [];

        public void PreStep(TrainingStep step, IReadOnlyList<NamedParameter> parameters)
        {
            if (step.Step != 0)
            {
                return;
            }
            foreach (var p in parameters)
            {
                var g = p.Parameter.grad!.detach().clone();
                g.DetachFromDisposeScope();
                FirstStep[p.Name] = g;
            }
        }
    }
}

/// <summary>The classification evaluator on the llama-seqcls fixture, whose logits transformers computed.</summary>
public class FixtureClassificationEvaluationTests
{
    [Fact]
    public void Classification_evaluation_scores_the_fixture_logits()
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama-seqcls"));
        var torchLogits = ModelFixtures.Expected("bases/llama-seqcls/expected.safetensors:logits");
        var torchClasses = torchLogits.argmax(-1).data<long>().ToArray();
        Assert.True(torchLogits[0, torchClasses[0]].item<float>() - torchLogits[0, 1 - torchClasses[0]].item<float>() > 1e-3, "fixture row 0 must have a clear winner");
        Assert.True(torchLogits[1, torchClasses[1]].item<float>() - torchLogits[1, 1 - torchClasses[1]].item<float>() > 1e-3, "fixture row 1 must have a clear winner");
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        // Row 0 labelled as transformers predicts it, row 1 as the other class.
        var labels = torch.tensor(new[] { torchClasses[0], 1 - torchClasses[1] });
        var data = new InMemoryBatchDataset([new Batch(ids, mask, ClassLabels: labels)]);
        using var noGrad = torch.no_grad();
        var result = PeftSharp.Training.Evaluation.Evaluator.Classification(model, data);
        Assert.Equal(0.5, result.Metrics["accuracy"]);
        // Same predicted class twice: that class has F1 2/3, the other 0; if they differ, each class has F1 0 or 1.
        var expectedF1 = torchClasses[0] == torchClasses[1] ? (2.0 / 3) / 2 : 0.5;
        Assert.Equal(expectedF1, result.Metrics["macro_f1"], 12);
        var lse = torchLogits.to_type(ScalarType.Float64).logsumexp(-1);
        var expectedLoss = ((lse[0] - torchLogits[0, labels[0]].to_type(ScalarType.Float64)) + (lse[1] - torchLogits[1, labels[1]].to_type(ScalarType.Float64))).item<double>() / 2;
        Assert.True(Math.Abs(result.Loss!.Value - expectedLoss) <= 1e-4, $"{result.Loss} vs {expectedLoss}");
    }

    [Fact]
    public void A_bare_encoder_has_no_training_objective()
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromConfig(ModelConfig.Load(SharedPaths.Fixture("bases", "bert-seqcls", "config.json")), new ModelLoadOptions { Architecture = "BertModel" });
        var e = Assert.Throws<PeftException>(() => Objectives.For(model));
        Assert.Contains("encoder", e.Message);
    }
}
