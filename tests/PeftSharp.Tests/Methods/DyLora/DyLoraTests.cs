using PeftSharp.Core;
using PeftSharp.Methods.DyLora;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.DyLora;

/// <summary>DyLoRA's defining rules (reference §8): scale α/b, the frozen-prefix gradient mask, one rank per step for all layers.</summary>
[Collection(TorchRngCollection.Name)]
public class DyLoraTests
{
    private static (NestedNet Net, PeftModel Peft, List<DyLoraLayer> Layers) Model(bool frozen = true, int rank = 4, double alpha = 8)
    {
        torch.manual_seed(5);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new DyLoraConfig { Rank = rank, Alpha = alpha, FrozenPrefix = frozen, TargetModules = TargetModules.Of("q_proj", "v_proj", "left") });
        var layers = peft.AdapterLayers().Select(l => l.Layer).OfType<DyLoraLayer>().ToList();
        using (torch.no_grad())
        {
            foreach (var l in layers)
            {
                l.B("default").copy_(torch.randn_like(l.B("default")));
            }
        }
        return (net, peft, layers);
    }

    [Theory]
    [InlineData(1, 8.0)]
    [InlineData(2, 4.0)]
    [InlineData(4, 2.0)]
    public void Scale_at_rank_b_is_alpha_over_b_and_the_forward_uses_the_first_b_components(int b, double scale)
    {
        var config = new DyLoraConfig { Rank = 4, Alpha = 8, TargetModules = TargetModules.Of("q_proj") };
        Assert.Equal(scale, config.ScalingAt(b));
        // (α/r)·√(r/b)·√(r/b) = α/b: the official code's two √(r/b) factors.
        Assert.Equal(scale, 8.0 / 4 * Math.Sqrt(4.0 / b) * Math.Sqrt(4.0 / b), 12);

        var (net, peft, layers) = Model();
        net.eval();
        var layer = layers[0];
        layer.SetEvaluationRank("default", b);
        using var x = torch.randn(3, layer.Base.InFeatures);
        using var got = layer.call(x);
        using var manual = layer.Base.Module.call(x) + x.matmul(layer.A("default")[..b].t()).matmul(layer.B("default")[.., ..b].t()) * scale;
        Assert.True(Weights.MaxAbsDiff(got, manual) <= 1e-6);
        Assert.Equal(b, layer.ActiveRank("default"));
        Assert.NotNull(peft);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Gradient_mask_at_rank_three_matches_the_reference(bool frozen)
    {
        var (net, _, layers) = Model(frozen);
        net.train();
        foreach (var l in layers)
        {
            l.SetTrainingRank("default", 3);
        }
        using var x = torch.randn(5, 4);
        net.call(x).pow(2).sum().backward();
        foreach (var l in layers)
        {
            var ga = l.A("default").grad!;
            var gb = l.B("default").grad!;
            for (var i = 0; i < 4; i++)
            {
                var rowA = ga[i].abs().max().item<float>();
                var colB = gb[.., i].abs().max().item<float>();
                // Frozen: rows/columns 0 and 1 exactly 0, 2 non-zero, 3 unused (0). Un-frozen: 0..2 non-zero, 3 zero.
                var live = frozen ? i == 2 : i < 3;
                Assert.True(live ? rowA > 0 && colB > 0 : rowA == 0 && colB == 0, $"frozen={frozen} component {i}: |∂A|={rowA}, |∂B|={colB}");
            }
        }
    }

    [Fact]
    public void One_rank_per_step_for_every_layer_uniform_over_1_to_r_and_a_function_of_seed_and_step()
    {
        var (net, peft, layers) = Model(rank: 5);
        var hooks = new DyLoraHooks(peft, "default");
        net.train();
        var seen = new int[6];
        for (var step = 0; step < 300; step++)
        {
            var info = new TrainingStep(step, 1e-3, 42);
            hooks.OnStepBegin(info);
            var b = hooks.CurrentRank;
            Assert.InRange(b, 1, 5);
            Assert.All(layers, l => Assert.Equal(b, l.ActiveRank("default")));
            Assert.Equal(b, DyLoraHooks.SampleRank(info, 5));
            seen[b]++;
        }
        Assert.All(seen.Skip(1), count => Assert.InRange(count, 30, 90));
        // Another seed gives another sequence; eval mode ignores the sampled rank.
        var other = Enumerable.Range(0, 20).Select(s => DyLoraHooks.SampleRank(new TrainingStep(s, 0, 43), 5));
        var same = Enumerable.Range(0, 20).Select(s => DyLoraHooks.SampleRank(new TrainingStep(s, 0, 42), 5));
        Assert.NotEqual(same, other);
        net.eval();
        Assert.All(layers, l => Assert.Equal(5, l.ActiveRank("default")));
    }

    [Fact]
    public void Trainer_finds_the_hook_and_each_step_updates_only_component_b()
    {
        using var toy = new ToyTraining(dropout: 0, config: () => new DyLoraConfig { Rank = 4, Alpha = 8, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });
        var options = new TrainerOptions
        {
            MaxSteps = 1,
            MaxGradNorm = null,
            Schedule = LearningRateSchedule.Constant(0.05),
            EvaluateBeforeTraining = false,
            // SGD: a zero gradient leaves a row exactly where it was (AdamW's decay and momentum would move it, trap 2).
            Optimizer = p => PeftSharp.Training.Optim.SgdOptimizer.Create(p),
        };
        using var trainer = toy.Trainer(options);
        var hooks = Assert.Single(trainer.Hooks.OfType<DyLoraHooks>());
        var before = toy.Peft.AdapterLayers().Select(l => l.Layer).OfType<DyLoraLayer>().Select(l => l.A("default").detach().clone()).ToList();
        trainer.Train();
        var b = hooks.CurrentRank;
        Assert.Equal(DyLoraHooks.SampleRank(new TrainingStep(0, 0.05, options.Seed), 4), b);
        var after = toy.Peft.AdapterLayers().Select(l => l.Layer).OfType<DyLoraLayer>().Select(l => l.A("default")).ToList();
        for (var k = 0; k < after.Count; k++)
        {
            for (var i = 0; i < 4; i++)
            {
                var changed = !after[k][i].eq(before[k][i]).all().item<bool>();
                Assert.Equal(i == b - 1, changed);
            }
        }
    }

    [Fact]
    public void Merge_uses_the_evaluation_rank_unmerge_restores_and_the_rank_of_a_merged_adapter_is_locked()
    {
        var (net, peft, layers) = Model();
        net.eval();
        using var x = torch.randn(3, 4);
        var weights = layers.Select(l => l.Base.Weight.detach().clone()).ToList();
        Assert.Equal(layers.Count, RankTruncation.SetEvaluationRank(net, 2));
        using var unmerged = net.call(x);
        peft.Merge();
        using var merged = net.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5);
        Assert.Throws<PeftException>(() => layers[0].SetEvaluationRank("default", 3));
        peft.Unmerge();
        for (var i = 0; i < layers.Count; i++)
        {
            Assert.True(Weights.MaxAbsDiff(layers[i].Base.Weight, weights[i]) <= 1e-6);
        }
        Assert.Throws<PeftException>(() => RankTruncation.SetEvaluationRank(net, 5));
        Assert.All(layers, l => Assert.Equal(2, l.EvaluationRank("default")));
    }
}
