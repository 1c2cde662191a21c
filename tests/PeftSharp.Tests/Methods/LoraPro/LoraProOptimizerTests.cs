using PeftSharp.Core;
using PeftSharp.Methods.LoraPro;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoraPro;

/// <summary>LoRA-Pro's optimizer: one step by hand, its state size, and its place in the trainer (hooks, checkpoints).</summary>
[Collection(TorchRngCollection.Name)]
public class LoraProOptimizerTests
{
    private static Parameter P(double[,] v) => new(torch.tensor(v, dtype: ScalarType.Float32));

    [Fact]
    public void First_step_from_B_zero_moves_B_by_lr_over_s_times_sign_times_the_pseudo_inverse_of_A()
    {
        // Reference case (A = [[1,0,1]], s = 2, g as in §3) with B = 0: G_A = 0, G_B = s·g·Aᵀ = [[2],[6],[6]].
        // By hand: g_B = G_B (AAᵀ)⁻¹ / s², g̃ = g·P_A = [[.5,0,.5],[1.5,0,1.5],[1.5,0,1.5]], Adam's first ĝ = sign(g̃)
        // (to ε), G_B' = s·ĝ·Aᵀ = [[4],[4],[4]], final g_B = G_B'(AAᵀ)⁻¹/s² = 0.5 each, so with lr 0.1 B = −0.05 and A stays.
        var a = P(new double[,] { { 1, 0, 1 } });
        var b = P(new double[,] { { 0 }, { 0 }, { 0 } });
        a.grad = torch.zeros(1, 3);
        b.grad = torch.tensor(new float[,] { { 2 }, { 6 }, { 6 } });
        using var optimizer = new LoraProOptimizer([new LoraProPair(new NamedParameter("l.lora_A", a), new NamedParameter("l.lora_B", b), 2.0)]);
        optimizer.Step(0.1);
        Assert.Equal(new[] { 1f, 0f, 1f }, a.data<float>().ToArray());
        Assert.All(b.data<float>().ToArray(), v => Assert.Equal(-0.05, v, 6));
        var state = optimizer.StateOf(a)!;
        Assert.Equal(1, state.Step);
        Assert.Equal(new long[] { 3, 3 }, state.Tensors["exp_avg"].shape);
    }

    [Fact]
    public void Optimizer_state_is_two_full_weight_matrices_per_layer_against_two_lora_sized_for_adamw()
    {
        torch.manual_seed(3);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraProConfig { Rank = 2, Alpha = 4, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });
        var x = torch.randn(3, 4);
        var trainable = peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter)).ToList();
        var hooks = new LoraProMethod().CreateHooks(peft, "default")!;
        using var optimizer = Assert.IsType<LoraProOptimizer>(hooks.CustomOptimizer(trainable));
        using var adamw = AdamWOptimizer.Create(trainable);
        net.call(x).square().sum().backward();
        optimizer.Step(1e-3);
        adamw.Step(1e-3);
        // By hand: stem.proj 4 → 6 and four 6 → 6 projections, r = 2, fp32 moments (4 bytes), two moments each.
        long loraPro = 2 * 4 * (6 * 4 + 4 * 6 * 6);
        long lora = 2 * 4 * (2 * (4 + 6) + 4 * 2 * (6 + 6));
        Assert.Equal(loraPro, optimizer.StateBytes);
        var adamwBytes = adamw.StateDict().Where(kv => !kv.Key.EndsWith("/step", StringComparison.Ordinal)).Sum(kv => kv.Value.numel() * kv.Value.ElementSize);
        Assert.Equal(lora, adamwBytes);
        Assert.Equal(5, optimizer.Pairs.Count);
    }

    private static ToyTraining Toy() => new(config: () => new LoraProConfig { Rank = 2, Alpha = 4, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });

    private static TrainerOptions Options(string output, long steps) => new()
    {
        MaxSteps = steps,
        Seed = 5,
        CheckpointEvery = 3,
        OutputDirectory = output,
        Schedule = LearningRateSchedule.Constant(1e-2),
        EvaluateBeforeTraining = false,
    };

    [Fact]
    public void Trainer_gets_the_LoRA_Pro_optimizer_from_the_method_hook_and_it_lowers_the_loss()
    {
        using var dir = new PeftSharp.Tests.IO.TempDir();
        using var toy = Toy();
        using var trainer = toy.Trainer(Options(dir.Path, 6) with { CheckpointEvery = 0, OutputDirectory = null, Shuffle = false });
        var optimizer = Assert.IsType<LoraProOptimizer>(trainer.Optimizer);
        Assert.Equal(5, optimizer.Pairs.Count);
        Assert.All(optimizer.Pairs, p => Assert.Contains("lora_A", p.A.Name));
        Assert.All(optimizer.Pairs, p => Assert.Contains("lora_B", p.B.Name));
        var losses = trainer.Train().Steps.Select(s => s.Loss).ToList();
        // Six batches in storage order, so step 7 would see batch 1 again: compare the loss of batch 1 before and after.
        using var batchOneAfter = toy.Loss(toy.Batches[0]);
        Assert.True(batchOneAfter.item<float>() < losses[0], $"loss on batch 1: {losses[0]} → {batchOneAfter.item<float>()}");
    }

    [Fact]
    public void Resume_restores_the_full_size_moments_and_continues_bitwise()
    {
        using var straightDir = new PeftSharp.Tests.IO.TempDir();
        using var splitDir = new PeftSharp.Tests.IO.TempDir();
        double[] straight;
        Dictionary<string, float[]> straightWeights;
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(straightDir.Path, 6)))
        {
            straight = [.. trainer.Train().Steps.Select(s => s.Loss)];
            straightWeights = toy.Snapshot();
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(splitDir.Path, 3)))
        {
            trainer.Train();
        }
        var checkpoint = Path.Combine(splitDir.Path, "checkpoint-3");
        using (var file = PeftSharp.IO.Safetensors.SafetensorsFile.Open(Path.Combine(checkpoint, Checkpoints.OptimizerFile)))
        {
            var moment = Assert.Single(file.Entries, e => e.Name.EndsWith("blocks.0.q_proj.lora_A.default.weight/exp_avg_sq", StringComparison.Ordinal));
            Assert.Equal(new long[] { 6, 6 }, moment.Shape);
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(splitDir.Path, 6)))
        {
            trainer.Resume(checkpoint);
            var resumed = trainer.Train().Steps.Select(s => s.Loss).ToArray();
            Assert.Equal(straight, resumed);
            Assert.Equal(straightWeights, toy.Snapshot());
        }
        // Without the moments (a fresh optimizer from the same weights) the run differs: the state matters.
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(splitDir.Path, 6)))
        {
            trainer.Resume(checkpoint);
            trainer.Optimizer.LoadStateDict(new Dictionary<string, Tensor>(), "empty");
            trainer.Train();
            Assert.NotEqual(straightWeights, toy.Snapshot());
        }
    }

    [Fact]
    public void Loading_moments_of_the_wrong_shape_names_the_key()
    {
        using var toy = Toy();
        using var trainer = toy.Trainer(Options(Path.GetTempPath(), 1) with { CheckpointEvery = 0, OutputDirectory = null });
        var a = ((LoraProOptimizer)trainer.Optimizer).Pairs[0].A.Name;
        var e = Assert.Throws<ModelMismatchException>(() => trainer.Optimizer.LoadStateDict(
            new Dictionary<string, Tensor> { [a + "/exp_avg"] = torch.zeros(2, 2) }, "opt.safetensors"));
        Assert.Contains(a + "/exp_avg", e.Message);
    }
}
