using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>
/// Gradient checkpointing (per-layer recompute in the backward) must change memory, never numbers: the loss and every
/// trainable parameter's gradient equal a plain backward's on the same weights, batch and seed. The reference is the
/// model's own plain backward, which the fixture tests pin to transformers.
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public sealed class CheckpointingTests
{
    private const double Tolerance = 1e-6;

    /// <summary>Fixture folder, LoRA targets, and the config keys that switch the base model's dropouts on.</summary>
    public static TheoryData<string> Fixtures => ["llama", "gpt2", "bert-seqcls"];

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Lora_loss_and_gradients_with_checkpointing_equal_plain_backward_within_1e6(string fixture)
    {
        using var model = Load(fixture);
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 4, TargetModules = LoraTargets(fixture) });
        RandomiseLoraB(model);
        model.train();
        var batch = Batch(model);

        var plain = Step(model, batch, checkpoint: false, seed: 1);
        var checkpointed = Step(model, batch, checkpoint: true, seed: 1);

        AssertSame(plain, checkpointed);
        // Every adapter matrix got a real gradient (layer 0's input does not require grad: the frozen embeddings).
        Assert.Equal(peft.TrainableParameters().Count(), checkpointed.Grads.Count);
        Assert.All(checkpointed.Grads, g => Assert.True(g.Value.abs().max().item<float>() > 1e-6, $"{g.Key} has a zero gradient"));
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Full_fine_tuning_loss_and_gradients_with_checkpointing_equal_plain_backward_within_1e6(string fixture)
    {
        using var model = Load(fixture);
        model.train();
        var batch = Batch(model);

        var plain = Step(model, batch, checkpoint: false, seed: 1);
        var checkpointed = Step(model, batch, checkpoint: true, seed: 1);

        Assert.Equal(model.parameters().Count(), plain.Grads.Count);
        AssertSame(plain, checkpointed);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void With_dropout_the_same_seed_gives_the_same_loss_and_gradients_with_checkpointing(string fixture)
    {
        // Llama has no dropout of its own: the LoRA dropout inside its attention is the one replayed.
        using var model = Load(fixture, DropoutKeys(fixture));
        PeftModel.Create(model, new LoraConfig { Rank = 4, Dropout = 0.3, TargetModules = LoraTargets(fixture) });
        RandomiseLoraB(model);
        model.train();
        var batch = Batch(model);

        var plain = Step(model, batch, checkpoint: false, seed: 5);
        var otherSeed = Step(model, batch, checkpoint: false, seed: 6);
        var checkpointed = Step(model, batch, checkpoint: true, seed: 5);

        Assert.NotEqual(plain.Loss, otherSeed.Loss);
        AssertSame(plain, checkpointed);
    }

    [Fact]
    public void Checkpointing_leaves_the_generator_where_a_plain_step_leaves_it()
    {
        using var model = Load("gpt2", DropoutKeys("gpt2"));
        model.train();
        var batch = Batch(model);

        Step(model, batch, checkpoint: false, seed: 3);
        var afterPlain = torch.rand(4).data<float>().ToArray();
        Step(model, batch, checkpoint: true, seed: 3);
        var afterCheckpointed = torch.rand(4).data<float>().ToArray();

        Assert.Equal(afterPlain, afterCheckpointed);
    }

    [Theory]
    [InlineData("llama", true, true, false, false, 2)]
    [InlineData("llama", true, false, false, false, 1)]
    [InlineData("llama", false, true, false, false, 1)]
    [InlineData("llama", true, true, true, false, 1)]
    [InlineData("llama", true, true, false, true, 1)]
    [InlineData("gpt2", true, true, false, false, 2)]
    [InlineData("gpt2", true, true, false, true, 1)]
    [InlineData("bert-seqcls", true, true, false, false, 2)]
    [InlineData("bert-seqcls", true, false, false, false, 1)]
    public void Layers_run_twice_per_step_only_when_checkpointing_applies(
        string fixture, bool enabled, bool training, bool noGrad, bool cache, int expectedCallsPerLayer)
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", fixture), new ModelLoadOptions { GradientCheckpointing = enabled });
        Assert.Equal(enabled, model.GradientCheckpointing);
        model.train(training);
        var calls = CountLayerCalls(model);
        var batch = Batch(model);

        using (var scope = torch.NewDisposeScope())
        using (noGrad ? torch.no_grad() : null)
        {
            var output = model.Forward(batch.Ids, cache ? null : batch.Mask, batch.TokenTypes, cache: cache ? model.CreateCache() : null);
            var loss = Loss(output.Logits, batch.Targets);
            if (loss.requires_grad)
            {
                loss.backward();
            }
        }

        Assert.All(calls, c => Assert.Equal(expectedCallsPerLayer, c));
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Eval_mode_output_and_gradients_are_unaffected_exactly(string fixture)
    {
        using var model = Load(fixture);
        model.eval();
        var batch = Batch(model);

        var plain = Step(model, batch, checkpoint: false, seed: 1);
        var flagged = Step(model, batch, checkpoint: true, seed: 1);

        Assert.Equal(plain.Loss, flagged.Loss);
        Assert.All(plain.Grads, g => Assert.True(g.Value.eq(flagged.Grads[g.Key]).all().item<bool>(), g.Key));
    }

    [Fact]
    public void Hundred_checkpointed_steps_leak_no_tensors()
    {
        using var model = Load("llama");
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 4, Dropout = 0.1, TargetModules = TargetModules.Of("q_proj", "v_proj") });
        model.train();
        model.GradientCheckpointing = true;
        var batch = Batch(model);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                var output = model.Forward(batch.Ids, batch.Mask);
                Loss(output.Logits, batch.Targets).backward();
                foreach (var p in peft.TrainableParameters())
                {
                    p.grad?.zero_();
                }
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    private sealed record TrainingBatch(Tensor Ids, Tensor Mask, Tensor? TokenTypes, Tensor Targets);

    private sealed record StepResult(double Loss, Dictionary<string, Tensor> Grads);

    private static void AssertSame(StepResult expected, StepResult actual)
    {
        Assert.True(Math.Abs(expected.Loss - actual.Loss) <= Tolerance, $"loss {actual.Loss} vs {expected.Loss}");
        Assert.Equal(expected.Grads.Keys.Order(), actual.Grads.Keys.Order());
        foreach (var (name, grad) in expected.Grads)
        {
            var diff = ModelFixtures.MaxAbsDiff(actual.Grads[name], grad);
            Assert.True(diff <= Tolerance, $"{name}: gradients differ by {diff}");
        }
    }

    /// <summary>One forward + backward from zeroed gradients; returns the loss and a copy of every defined gradient.</summary>
    private static StepResult Step(PretrainedModel model, TrainingBatch batch, bool checkpoint, long seed)
    {
        model.GradientCheckpointing = checkpoint;
        model.zero_grad();
        torch.manual_seed(seed);
        using var scope = torch.NewDisposeScope();
        var output = model.Forward(batch.Ids, batch.Mask, batch.TokenTypes);
        var loss = Loss(output.Logits, batch.Targets);
        loss.backward();
        var grads = new Dictionary<string, Tensor>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (p.requires_grad && p.grad is Tensor grad)
            {
                grads[name] = grad.detach().clone().DetachFromDisposeScope();
            }
        }
        return new StepResult(loss.item<float>(), grads);
    }

    private static Tensor Loss(Tensor logits, Tensor targets) =>
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1));

    /// <summary>Two rows of 10 tokens, the second right-padded by 3; targets are the ids (LM) or one label per row.</summary>
    private static TrainingBatch Batch(PretrainedModel model)
    {
        var generator = new torch.Generator(11);
        var vocab = model.Config.VocabSize!.Value;
        var ids = torch.randint(3, vocab, [2, 10], dtype: ScalarType.Int64, generator: generator);
        var mask = torch.ones([2, 10], dtype: ScalarType.Int64);
        mask[1, TensorIndex.Slice(7)] = torch.tensor(0L);
        Tensor? types = null;
        if (model.Config.ModelType == "bert")
        {
            types = torch.zeros([2, 10], dtype: ScalarType.Int64);
            types[TensorIndex.Colon, TensorIndex.Slice(5)] = torch.tensor(1L);
        }
        var targets = model.Task == ModelTask.CausalLM ? ids : torch.tensor(new long[] { 0, 1 });
        return new TrainingBatch(ids, mask, types, targets);
    }

    private static PretrainedModel Load(string fixture, params (string Key, double Value)[] overrides)
    {
        var folder = SharedPaths.Fixture("bases", fixture);
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        foreach (var (key, value) in overrides)
        {
            config = config.With(key, JsonValue.Create(value));
        }
        var model = AutoModel.FromConfig(config);
        using var checkpoint = HfCheckpoint.Open(folder);
        CheckpointLoader.Load(model, checkpoint, new ModelLoadOptions());
        return model;
    }

    private static (string, double)[] DropoutKeys(string fixture) => fixture switch
    {
        "gpt2" => [("attn_pdrop", 0.2), ("resid_pdrop", 0.2), ("embd_pdrop", 0.2)],
        "bert-seqcls" => [("attention_probs_dropout_prob", 0.2), ("hidden_dropout_prob", 0.2)],
        _ => [],
    };

    private static TargetModules LoraTargets(string fixture) => fixture switch
    {
        "gpt2" => TargetModules.Of("c_attn"),
        "bert-seqcls" => TargetModules.Of("query", "value"),
        _ => TargetModules.Of("q_proj", "v_proj"),
    };

    private static void RandomiseLoraB(nn.Module model)
    {
        // PEFT starts lora_B at zero, which would make every lora_A gradient zero and the comparison vacuous.
        using var _ = torch.no_grad();
        torch.manual_seed(2);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith(".lora_B.default.weight", StringComparison.Ordinal))
            {
                nn.init.normal_(p, 0, 0.2);
            }
        }
    }

    /// <summary>One counter per decoder/encoder layer, bumped by a forward hook on each call of that layer.</summary>
    private static int[] CountLayerCalls(PretrainedModel model)
    {
        var calls = new int[model.NumLayers];
        for (var i = 0; i < calls.Length; i++)
        {
            var index = i;
            Action<nn.Module> hook = _ => calls[index]++;
            if (model is PeftSharp.Models.Llama.LlamaForCausalLM llama)
            {
                llama.model.layers[i].register_forward_hook(hook);
            }
            else if (model is PeftSharp.Models.Gpt2.Gpt2LMHeadModel gpt2)
            {
                gpt2.transformer.h[i].register_forward_hook(hook);
            }
            else
            {
                ((PeftSharp.Models.Bert.BertForSequenceClassification)model).bert.encoder.layer[i].register_forward_hook(hook);
            }
        }
        return calls;
    }
}
