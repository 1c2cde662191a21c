using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.LoraSqueeze;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoraSqueeze;

/// <summary>One Linear called proj: with the loss Σ c∘proj(x), ∂L/∂W = cᵀx does not depend on the weights.</summary>
internal sealed class OneLinear : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> proj;

    public OneLinear(int inFeatures, int outFeatures) : base(nameof(OneLinear))
    {
        proj = nn.Linear(inFeatures, outFeatures);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => proj.call(x);
}

[Collection(TorchRngCollection.Name)]
public class LoraSqueezeTests
{
    private static double MaxAbs(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    private static Tensor F64(Tensor t) => t.detach().to(ScalarType.Float64).clone();

    [Theory]
    [InlineData(32, 4, 3, new[] { 16, 8, 4 })]
    [InlineData(8, 2, 1, new[] { 2 })]
    [InlineData(16, 4, 2, new[] { 8, 4 })]
    [InlineData(6, 6, 2, new[] { 6, 6 })]
    public void Ranks_follow_the_geometric_schedule_and_end_at_target_r(int r, int target, int stages, int[] expected)
    {
        var c = new LoraSqueezeConfig { Rank = r, TargetRank = target, SqueezeSteps = [.. Enumerable.Range(1, stages).Select(i => (long)i * 10)] };
        Assert.Equal(r, c.RankAfterStage(0));
        Assert.Equal(expected, Enumerable.Range(1, stages).Select(c.RankAfterStage));
    }

    [Theory]
    [InlineData(4, 5, new long[] { 3 }, "target_r")]
    [InlineData(4, 2, new long[] { 3, 3 }, "squeeze_steps")]
    [InlineData(4, 2, new long[] { 0 }, "squeeze_steps")]
    [InlineData(4, 2, new long[0], "squeeze_steps")]
    public void Bad_config_names_the_key(int r, int target, long[] steps, string key)
    {
        var c = new LoraSqueezeConfig { Rank = r, TargetRank = target, SqueezeSteps = steps, TargetModules = TargetModules.Of("proj") };
        var e = Assert.Throws<ConfigException>(c.Validate);
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void Squeeze_gives_the_best_rank_k_update_at_the_same_scale()
    {
        torch.manual_seed(4);
        var net = new OneLinear(9, 7);
        var peft = PeftModel.Create(net, new LoraSqueezeConfig { Rank = 5, Alpha = 3, TargetRank = 2, SqueezeSteps = [1], TargetModules = TargetModules.Of("proj") });
        var layer = (LoraSqueezeLayer)peft.AdapterLayers().Single().Layer;
        using (torch.no_grad())
        {
            layer.B("default").copy_(torch.randn_like(layer.B("default")));
        }
        using var before = F64(layer.DeltaWeight("default")!);
        var (u, s, vh) = torch.linalg.svd(before, fullMatrices: false);
        using var best = u.narrow(1, 0, 2).matmul(torch.diag(s.narrow(0, 0, 2))).matmul(vh.narrow(0, 0, 2));
        layer.Squeeze("default", 2);
        Assert.Equal(2, layer.RankOf("default"));
        Assert.Equal([2L, 9L], layer.A("default").shape);
        Assert.True(MaxAbs(layer.DeltaWeight("default")!.detach(), best) < 1e-5);
        Assert.Equal(0.6, layer.ScalingOf("default"), 12);
    }

    // The StateMap: moments of the old factors are carried to the new ones through B' = B·P, A' = Q·A.
    [Fact]
    public void Optimizer_state_after_a_squeeze_has_the_new_shapes_and_the_mapped_moments()
    {
        torch.manual_seed(5);
        var net = new OneLinear(7, 5);
        var peft = PeftModel.Create(net, new LoraSqueezeConfig { Rank = 4, Alpha = 8, TargetRank = 2, SqueezeSteps = [1], TargetModules = TargetModules.Of("proj") });
        var layer = (LoraSqueezeLayer)peft.AdapterLayers().Single().Layer;
        using (torch.no_grad())
        {
            layer.B("default").copy_(torch.randn_like(layer.B("default")) * 0.5);
        }
        var trainable = peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter)).ToList();
        using var optimizer = AdamWOptimizer.Create(trainable, new AdamWOptions { WeightDecay = 0 });
        using var x = torch.randn(3, 7);
        using var c = torch.randn(3, 5);
        (net.call(x) * c).sum().backward();
        // lr 0: the moments are built (m = 0.1·g, v = 0.001·g²) and the factors stay where the gradient was taken.
        optimizer.Step(0);
        optimizer.ZeroGrad();
        var oldA = layer.A("default");
        var oldB = layer.B("default");
        using var a0 = F64(oldA);
        using var b0 = F64(oldB);
        var stateA = optimizer.StateOf(oldA)!;
        var stateB = optimizer.StateOf(oldB)!;
        using var mA = F64(stateA.Tensors["exp_avg"]);
        using var vA = F64(stateA.Tensors["exp_avg_sq"]);
        using var mB = F64(stateB.Tensors["exp_avg"]);
        using var vB = F64(stateB.Tensors["exp_avg_sq"]);

        var hooks = ((ITrainingHooksProvider)MethodRegistry.Default.Get("lora_squeeze")).CreateHooks(peft, "default")!;
        Assert.Empty(hooks.OnSchedule(new TrainingStep(-1, 0, 0), optimizer));
        var changes = hooks.OnSchedule(new TrainingStep(0, 0, 0), optimizer);
        Assert.Equal(2, changes.Count);
        foreach (var change in changes)
        {
            optimizer.RebuildState(change.Old, change.Replacement, change.Map);
        }
        var newA = layer.A("default");
        var newB = layer.B("default");
        Assert.Equal([2L, 7L], newA.shape);
        Assert.Equal([5L, 2L], newB.shape);
        Assert.Null(optimizer.StateOf(oldA));
        var s2A = optimizer.StateOf(newA)!;
        var s2B = optimizer.StateOf(newB)!;
        Assert.Equal(1, s2A.Step);
        Assert.Equal([2L, 7L], s2A.Tensors["exp_avg"].shape);
        Assert.Equal([2L, 7L], s2A.Tensors["exp_avg_sq"].shape);
        Assert.Equal([5L, 2L], s2B.Tensors["exp_avg"].shape);
        Assert.Equal([5L, 2L], s2B.Tensors["exp_avg_sq"].shape);

        // The maps, recomputed here from the factors alone: P = B⁺B', Q = A'A⁺.
        using var p = torch.linalg.pinv(b0).matmul(F64(newB));
        using var q = F64(newA).matmul(torch.linalg.pinv(a0));
        Assert.True(MaxAbs(b0.matmul(p), newB) < 1e-5);
        Assert.True(MaxAbs(q.matmul(a0), newA) < 1e-5);
        Assert.True(MaxAbs(s2A.Tensors["exp_avg"], p.t().matmul(mA)) < 1e-6);
        Assert.True(MaxAbs(s2A.Tensors["exp_avg_sq"], p.t().square().matmul(vA)) < 1e-8);
        Assert.True(MaxAbs(s2B.Tensors["exp_avg"], mB.matmul(q.t())) < 1e-6);
        Assert.True(MaxAbs(s2B.Tensors["exp_avg_sq"], vB.matmul(q.t().square())) < 1e-8);

        // And the first moment is what Adam would hold had it seen the new factors' gradient: 0.1·∂L/∂A', 0.1·∂L/∂B'.
        (net.call(x) * c).sum().backward();
        Assert.True(MaxAbs(s2A.Tensors["exp_avg"], newA.grad! * 0.1) < 1e-5);
        Assert.True(MaxAbs(s2B.Tensors["exp_avg"], newB.grad! * 0.1) < 1e-5);
    }

    private static ToyTraining Toy() => new(
        dropout: 0.1,
        config: () => new LoraSqueezeConfig { Rank = 4, Alpha = 4, Dropout = 0.1, TargetRank = 1, SqueezeSteps = [2, 4], TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });

    private static TrainerOptions Options(long steps) => new()
    {
        MaxSteps = steps,
        Schedule = LearningRateSchedule.Constant(0.02),
        EvaluateBeforeTraining = false,
    };

    [Fact]
    public void Trained_adapter_ends_at_target_r_and_saves_as_a_plain_peft_lora()
    {
        using var toy = Toy();
        var baseState = toy.Net.named_parameters().Where(p => !p.name.Contains("lora_", StringComparison.Ordinal))
            .ToDictionary(p => p.name.Replace(".base_layer", "", StringComparison.Ordinal), p => p.parameter.detach().clone());
        using var trainer = toy.Trainer(Options(5));
        var result = trainer.Train();
        Assert.All(result.Steps, s => Assert.True(double.IsFinite(s.Loss) && !s.Skipped));
        var layers = toy.Peft.AdapterLayers().Select(l => (LoraSqueezeLayer)l.Layer).ToList();
        Assert.All(layers, l => Assert.Equal(1, l.RankOf("default")));
        // The trainer trains the replaced parameters: 5 modules × (A, B), each of rank 1.
        Assert.Equal(10, trainer.Trainable.Count);
        Assert.All(trainer.Trainable, p => Assert.Equal(1, p.Name.Contains("lora_A", StringComparison.Ordinal) ? p.Parameter.shape[0] : p.Parameter.shape[1]));

        using var dir = new TempDir();
        PeftAdapterFiles.Save(toy.Peft, dir.Path);
        var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(dir.Path));
        Assert.Equal("LORA", config.PeftType);
        Assert.Equal(1, config.Rank);
        Assert.Equal(1.0, config.Alpha, 12); // s = 4/4 kept: α = s·1
        Assert.Equal(0.1, config.Dropout);
        Assert.DoesNotContain("target_r", File.ReadAllText(Path.Combine(dir.Path, PeftAdapterFiles.ConfigFileName)));
        using (var file = PeftAdapterFiles.OpenWeights(dir.Path))
        {
            Assert.Equal(10, file.Entries.Count);
            Assert.All(file.Entries, e => Assert.True(e.Name.EndsWith("lora_A.weight", StringComparison.Ordinal) ? e.Shape[0] == 1 : e.Shape[1] == 1, e.Name));
        }

        var fresh = new NestedNet();
        using (torch.no_grad())
        {
            foreach (var (n, p) in fresh.named_parameters())
            {
                p.copy_(baseState[n]);
            }
        }
        var loaded = PeftAdapterFiles.FromPretrained(fresh, dir.Path);
        Assert.All(loaded.AdapterLayers(), l => Assert.IsType<LoraLayer>(l.Layer));
        toy.Net.eval();
        fresh.eval();
        using var x = torch.randn(5, 4);
        using var expected = toy.Net.call(x);
        using var got = fresh.call(x);
        Assert.True(Weights.Exact(got, expected), $"reloaded LoRA differs by {Weights.MaxAbsDiff(got, expected)}");
    }

    [Fact]
    public void Resume_from_a_checkpoint_between_squeezes_reproduces_the_uninterrupted_run_bitwise()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        double[] straight;
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(6) with { OutputDirectory = a.Path }))
        {
            straight = [.. trainer.Train().Steps.Select(s => s.Loss)];
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(3) with { OutputDirectory = b.Path, CheckpointEvery = 3 }))
        {
            trainer.Train();
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(6) with { OutputDirectory = b.Path }))
        {
            trainer.Resume(Path.Combine(b.Path, "checkpoint-3"));
            Assert.All(toy.Peft.AdapterLayers(), l => Assert.Equal(2, ((LoraSqueezeLayer)l.Layer).RankOf("default")));
            Assert.Equal(straight, trainer.Train().Steps.Select(s => s.Loss));
        }
    }
}
