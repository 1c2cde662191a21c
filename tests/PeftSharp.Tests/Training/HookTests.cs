using PeftSharp.Core;
using PeftSharp.Tests.IO;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

/// <summary>The test method <see cref="GrowMethod"/> drives every hook through the real trainer.</summary>
[Collection(TorchRngCollection.Name)]
public class HookTests
{
    private static ToyTraining Toy(GrowConfig? config = null) => new(
        dropout: 0,
        registry: GrowMethod.Registry(),
        config: () => config ?? new GrowConfig { TargetModules = TargetModules.Of("q_proj") });

    private static TrainerOptions Options(long steps = 4) => new()
    {
        MaxSteps = steps,
        MaxGradNorm = null,
        Schedule = LearningRateSchedule.Constant(0.05),
        EvaluateBeforeTraining = false,
    };

    [Fact]
    public void Hooks_are_found_on_layers_and_method_descriptors_and_run_in_step_order()
    {
        using var toy = Toy();
        using var trainer = toy.Trainer(Options(steps: 3));
        var model = Assert.Single(trainer.Hooks.OfType<GrowHooks>());
        var layers = trainer.Hooks.OfType<GrowLayer>().ToList();
        Assert.Equal(2, layers.Count);
        trainer.Train();

        Assert.Equal(2, model.CalibrationBatches);
        Assert.Equal(["begin", "schedule", "begin", "schedule", "begin", "schedule"], model.Calls);
        Assert.All(layers, l => Assert.Equal(["pre", "post", "pre", "post", "pre", "post"], l.Calls));
        Assert.Equal(3, model.Draws.Distinct().Count());
    }

    [Fact]
    public void Plain_lora_has_no_hooks_and_one_default_optimizer()
    {
        using var toy = new ToyTraining();
        using var trainer = toy.Trainer(Options());
        Assert.Empty(trainer.Hooks);
        Assert.IsType<AdamWOptimizer>(trainer.Optimizer);
    }

    [Fact]
    public void Custom_optimizer_claims_its_parameters_and_the_default_takes_the_rest()
    {
        using var toy = Toy();
        using var trainer = toy.Trainer(Options());
        var composite = Assert.IsType<CompositeOptimizer>(trainer.Optimizer);
        Assert.Equal(3, composite.Parts.Count);
        Assert.All(composite.Parts.Take(2), p => Assert.IsType<SgdOptimizer>(p));
        var adamw = Assert.IsType<AdamWOptimizer>(composite.Parts[2]);
        Assert.All(composite.Parts.Take(2).SelectMany(p => p.Parameters), p => Assert.EndsWith(".grow_B.default", p.Name));
        Assert.All(adamw.Parameters, p => Assert.EndsWith(".grow_A.default", p.Name));
    }

    [Fact]
    public void PreStep_doubles_the_gradient_the_optimizer_applies_and_PostStep_clamps()
    {
        using var toy = Toy(new GrowConfig { TargetModules = TargetModules.Of("q_proj"), Clamp = 0.25, GrowAfterStep = 100, BLearningRateScale = 1 });
        using var trainer = toy.Trainer(Options(steps: 1) with { Hooks = [] });
        trainer.Train();
        foreach (var layer in trainer.Hooks.OfType<GrowLayer>())
        {
            var (before, grad) = layer.LastPreStep!.Value;
            var after = layer.B("default").detach().data<float>().ToArray();
            for (var i = 0; i < before.Length; i++)
            {
                // SGD with lr 0.05 on the doubled gradient, then the clamp to ±0.25.
                var expected = Math.Clamp(before[i] - 0.05f * 2 * grad[i], -0.25f, 0.25f);
                Assert.Equal(expected, after[i], 6);
            }
            Assert.Contains(after, v => Math.Abs(v) == 0.25f);
        }
    }

    [Fact]
    public void OnSchedule_growth_rebuilds_optimizer_state_into_the_new_shapes()
    {
        using var toy = Toy();
        using var trainer = toy.Trainer(Options(steps: 2));
        var composite = (CompositeOptimizer)trainer.Optimizer;
        var adamw = (AdamWOptimizer)composite.Parts[2];
        var layer = trainer.Hooks.OfType<GrowLayer>().First();
        trainer.TrainStep();
        var aBefore = layer.A("default");
        var expAvgBefore = adamw.StateOf(aBefore)!.Tensors["exp_avg"].data<float>().ToArray();

        trainer.TrainStep();
        var aAfterStep2 = layer.A("default");
        Assert.NotSame(aBefore, aAfterStep2);
        Assert.Equal([2L, 6L], aAfterStep2.shape);
        Assert.Equal([6L, 2L], layer.B("default").shape);
        var state = adamw.StateOf(aAfterStep2)!;
        Assert.Equal(2, state.Step);
        Assert.Equal([2L, 6L], state.Tensors["exp_avg"].shape);
        Assert.Equal([2L, 6L], state.Tensors["exp_avg_sq"].shape);
        Assert.Equal(new float[6], state.Tensors["exp_avg"][1].data<float>().ToArray());
        Assert.Contains(trainer.Trainable, p => ReferenceEquals(p.Parameter, aAfterStep2));
        Assert.DoesNotContain(trainer.Trainable, p => ReferenceEquals(p.Parameter, aBefore));
        Assert.NotEqual(expAvgBefore, state.Tensors["exp_avg"][0].data<float>().ToArray());

        // The new rank trains on the next step.
        var grownB = layer.B("default");
        trainer.TrainStep();
        Assert.NotEqual(0f, layer.B("default")[.., 1].abs().sum().item<float>());
        Assert.Same(grownB, layer.B("default"));
    }

    [Fact]
    public void Resume_after_a_structural_change_reproduces_the_uninterrupted_run_bitwise()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        double[] straight;
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(steps: 6) with { OutputDirectory = a.Path }))
        {
            straight = [.. trainer.Train().Steps.Select(s => s.Loss)];
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(steps: 3) with { OutputDirectory = b.Path, CheckpointEvery = 3 }))
        {
            trainer.Train();
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(steps: 6) with { OutputDirectory = b.Path }))
        {
            trainer.Resume(Path.Combine(b.Path, "checkpoint-3"));
            Assert.True(trainer.Hooks.OfType<GrowHooks>().Single().Grown);
            Assert.Equal(straight, trainer.Train().Steps.Select(s => s.Loss));
        }
    }
}
