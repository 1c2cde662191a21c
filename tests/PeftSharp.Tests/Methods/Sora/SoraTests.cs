using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.Sora;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Sora;

/// <summary>SoRA's defining rules: the threshold operators, exact zeros from training, and pruning to an equal LoRA.</summary>
[Collection(TorchRngCollection.Name)]
public class SoraTests
{
    private static float[] Values(Tensor t) => t.detach().cpu().reshape(-1).data<float>().ToArray();

    [Fact]
    public void Both_threshold_forms_give_the_reference_values()
    {
        // Reference §7 unit test (hand computed): both forms agree here ...
        using var g = torch.tensor(new[] { 0.5f, -0.05f, 0.0008f, -2.0f });
        foreach (var form in new[] { SoraThreshold.Soft, SoraThreshold.Official })
        {
            var got = Values(SoraThreshold.Apply(form, g, 0.1));
            Assert.Equal(0.4f, got[0], 6);
            Assert.Equal(0f, got[1]);
            Assert.Equal(0f, got[2]);
            Assert.Equal(-1.9f, got[3], 6);
        }
        // ... and differ for ξ < |v| < 2ξ: the official operator zeroes what the textbook one shrinks.
        using var h = torch.tensor(new[] { 0.15f, -0.15f, 0.25f });
        var soft = Values(SoraThreshold.SoftThreshold(h, 0.1));
        var official = Values(SoraThreshold.OfficialThreshold(h, 0.1));
        Assert.Equal(new[] { 0.05f, -0.05f, 0.15f }, soft.Select(v => MathF.Round(v, 6)));
        Assert.Equal(new[] { 0f, 0f, 0.15f }, official.Select(v => MathF.Round(v, 6)));
        Assert.True(official[0] == 0 && official[1] == 0, "exact zeros");
    }

    [Theory]
    [InlineData("linear", 0.1, 0.4, 4, new[] { 0.1, 0.1, 0.2, 0.3, 0.4, 0.4 })]
    [InlineData("exp_linear", 0.01, 1.0, 3, new[] { 0.01, 0.01, 0.1, 1.0, 1.0, 1.0 })]
    [InlineData("log_linear", 0.0, 1.0, 2, new[] { 0.0, 0.0, 1.0, 1.0, 1.0, 1.0 })]
    public void Schedule_raises_xi_per_stage_as_the_official_lists(string kind, double start, double max, int num, double[] expected)
    {
        var config = new SoraConfig { SparseLambda2 = start, LambdaSchedule = kind, MaxLambda = max, LambdaNum = num, LambdaStageSteps = 10, TargetModules = TargetModules.Of("q_proj") };
        config.Validate();
        long[] steps = [0, 9, 10, 20, 30, 100];
        for (var i = 0; i < steps.Length; i++)
        {
            Assert.Equal(expected[i], SoraThreshold.Xi(config, steps[i]), 12);
        }
        Assert.Equal(0.2, SoraThreshold.Xi(config with { LambdaSchedule = null, SparseLambda2 = 0.2 }, 55));
    }

    /// <summary>A 3 → 2 zero base layer with the reference's r = 4, s = 1 SoRA adapter.</summary>
    private static (Linear Net, PeftModel Peft) ReferenceLayer()
    {
        var net = nn.Linear(3, 2, hasBias: false);
        using (torch.no_grad())
        {
            net.weight!.zero_();
        }
        var wrapper = new Wrapper(net);
        var peft = PeftModel.Create(wrapper, new SoraConfig { Rank = 4, Alpha = 4, TargetModules = TargetModules.Of("inner") });
        var layer = peft.AdapterLayers().Select(l => l.Layer).OfType<SoraLayer>().Single();
        using (torch.no_grad())
        {
            layer.A("default").copy_(torch.tensor(new float[,] { { 1, 0, 1 }, { 0, 1, 0 }, { 2, 1, 0 }, { 1, 1, 1 } }));
            layer.B("default").copy_(torch.tensor(new float[,] { { 1, 0, 2, 1 }, { 0, 1, 1, 0 } }));
            layer.Gate("default").copy_(torch.tensor(new float[,] { { 0.4f, 0, 0, -1.9f } }));
        }
        return (net, peft);
    }

    private sealed class Wrapper : nn.Module<Tensor, Tensor>
    {
        public nn.Module<Tensor, Tensor> inner;

        public Wrapper(nn.Module<Tensor, Tensor> m) : base("wrapper")
        {
            inner = m;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => inner.call(x);
    }

    [Fact]
    public void Reference_example_gated_output_and_pruned_rank_two_lora_agree()
    {
        var (_, peft) = ReferenceLayer();
        peft.Model.eval();
        using var x = torch.tensor(new float[] { 1, 2, -1 }).unsqueeze(0);
        using var gated = ((nn.Module<Tensor, Tensor>)peft.Model).call(x);
        Assert.Equal(new[] { -3.8f, 0f }, Values(gated).Select(v => MathF.Round(v, 5)));

        using var pruned = SoraPruning.Prune(peft);
        Assert.Equal(2, pruned.Config.Rank);
        Assert.Equal(0.5, pruned.ZeroShare);
        Assert.Equal(new Dictionary<string, int> { ["inner"] = 2 }, pruned.Ranks);
        var b = Values(pruned.Tensors["base_model.model.inner.lora_B.weight"]);
        Assert.Equal(new[] { 0.4f, -1.9f, 0f, 0f }, b.Select(v => MathF.Round(v, 6)));
        Assert.Equal(new[] { 1f, 0, 1, 1, 1, 1 }, Values(pruned.Tensors["base_model.model.inner.lora_A.weight"]));

        // Loaded as a plain LoRA on a fresh zero base: the same function for any x.
        var fresh = nn.Linear(3, 2, hasBias: false);
        using (torch.no_grad())
        {
            fresh.weight!.zero_();
        }
        var wrapper = new Wrapper(fresh);
        var lora = LoadPruned(wrapper, pruned);
        wrapper.eval();
        using var xs = torch.randn(16, 3);
        using var expected = ((nn.Module<Tensor, Tensor>)peft.Model).call(xs);
        using var got = wrapper.call(xs);
        Assert.True(Weights.MaxAbsDiff(got, expected) <= 1e-6, $"pruned differs by {Weights.MaxAbsDiff(got, expected)}");
        Assert.Equal(LoraConfig.Type, lora.Configs["default"].PeftType);
    }

    private static PeftModel LoadPruned(nn.Module model, SoraPruned pruned)
    {
        var dir = Directory.CreateTempSubdirectory("peftsharp-sora-").FullName;
        try
        {
            SoraPruning.Save(pruned, dir);
            return PeftAdapterFiles.FromPretrained(model, dir);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static ToyTraining Toy(SoraConfig config) => new(dropout: 0, config: () => config);

    private static TrainerOptions Options(long steps) => new()
    {
        MaxSteps = steps,
        MaxGradNorm = null,
        Schedule = LearningRateSchedule.Constant(0.05),
        EvaluateBeforeTraining = false,
    };

    [Theory]
    [InlineData(SoraThreshold.Official)]
    [InlineData(SoraThreshold.Soft)]
    public void Training_drives_gates_to_exact_zeros_and_the_pruned_lora_gives_the_same_outputs(string form)
    {
        var config = new SoraConfig { Rank = 6, Alpha = 6, SparseLambda = 1e-2, SparseLambda2 = 0.1, ThresholdForm = form, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") };
        using var toy = Toy(config);
        var gates = toy.Peft.AdapterLayers().Select(l => l.Layer).OfType<SoraLayer>().Select(l => l.Gate("default")).ToList();
        var nonzeroBefore = gates.Sum(g => Values(g).Count(v => v != 0));
        Assert.Equal(gates.Count * 6, nonzeroBefore);
        using (var trainer = toy.Trainer(Options(steps: 6)))
        {
            var hooks = Assert.Single(trainer.Hooks.OfType<SoraHooks>());
            trainer.Train();
            Assert.Equal(0.1, hooks.LastThreshold);
        }
        var all = gates.SelectMany(Values).ToList();
        var zeros = all.Count(v => v == 0);
        Assert.True(zeros > 0 && zeros < all.Count, $"{zeros} of {all.Count} gates are exactly zero");
        // Every survivor is at least ξ away from 0 (soft: > 0 after the shift of entries above ξ; official: ≥ ξ after it).
        Assert.All(all.Where(v => v != 0), v => Assert.True(form == SoraThreshold.Official ? MathF.Abs(v) >= 0.1f - 1e-7f : MathF.Abs(v) > 0));

        toy.Net.eval();
        using var x = torch.randn(8, 4);
        using var gated = toy.Net.call(x);
        using var pruned = SoraPruning.Prune(toy.Peft);
        Assert.Equal((double)zeros / all.Count, pruned.ZeroShare, 12);
        var fresh = new NestedNet();
        CopyBase(toy.Net, fresh);
        LoadPruned(fresh, pruned);
        fresh.eval();
        using var got = fresh.call(x);
        Assert.True(Weights.MaxAbsDiff(got, gated) <= 1e-6, $"{form}: pruned LoRA differs by {Weights.MaxAbsDiff(got, gated)}");
    }

    private static void CopyBase(NestedNet from, NestedNet to)
    {
        var source = from.named_parameters().ToDictionary(
            p => p.name.Replace(".base_layer.", ".", StringComparison.Ordinal), p => p.parameter);
        using var _ = torch.no_grad();
        foreach (var (name, p) in to.named_parameters())
        {
            p.copy_(source[name]);
        }
    }

    [Fact]
    public void Gates_get_their_own_AdamW_without_weight_decay_and_A_B_stay_with_the_default()
    {
        using var toy = Toy(new SoraConfig { Rank = 2, SparseLearningRateScale = 3, TargetModules = TargetModules.Of("q_proj") });
        using var trainer = toy.Trainer(Options(steps: 1));
        var composite = Assert.IsType<CompositeOptimizer>(trainer.Optimizer);
        var gateGroup = Assert.Single(composite.Parts[0].Groups);
        Assert.Equal((0.0, 3.0), (gateGroup.WeightDecay, gateGroup.LearningRateScale));
        Assert.All(gateGroup.Parameters, p => Assert.EndsWith(".lora_gate.default", p.Name));
        Assert.DoesNotContain(composite.Parts[1].Parameters, p => p.Name.Contains("lora_gate", StringComparison.Ordinal));
    }

    [Fact]
    public void PreStep_adds_the_L1_gradient_lambda_sign_over_count_and_PostStep_scales_xi_by_lr_on_request()
    {
        var config = new SoraConfig { Rank = 3, SparseLambda = 0.6, SparseLambda2 = 0.2, ThresholdForm = SoraThreshold.Soft, ThresholdTimesLearningRate = true, TargetModules = TargetModules.Of("q_proj") };
        using var toy = Toy(config);
        var hooks = new SoraHooks(toy.Peft, "default");
        var gates = toy.Peft.AdapterLayers().Select(l => l.Layer).OfType<SoraLayer>().Select(l => l.Gate("default")).ToList();
        Assert.Equal(2, gates.Count);
        using (torch.no_grad())
        {
            gates[0].copy_(torch.tensor(new float[,] { { 0.5f, -0.05f, 0 } }));
            gates[1].copy_(torch.tensor(new float[,] { { -0.15f, 0.15f, 2 } }));
        }
        foreach (var g in gates)
        {
            g.grad = torch.zeros_like(g);
        }
        hooks.PreStep(new TrainingStep(0, 0.5, 0), []);
        // λ/N = 0.6 / 6 = 0.1 per entry, times sign(g) (0 at 0).
        Assert.Equal(new[] { 0.1f, -0.1f, 0f }, Values(gates[0].grad!).Select(v => MathF.Round(v, 6)));
        Assert.Equal(new[] { -0.1f, 0.1f, 0.1f }, Values(gates[1].grad!).Select(v => MathF.Round(v, 6)));

        hooks.PostStep(new TrainingStep(0, 0.5, 0));
        Assert.Equal(0.1, hooks.LastThreshold, 12);
        Assert.Equal(new[] { 0.4f, 0f, 0f }, Values(gates[0]).Select(v => MathF.Round(v, 6)));
        Assert.Equal(new[] { -0.05f, 0.05f, 1.9f }, Values(gates[1]).Select(v => MathF.Round(v, 6)));
    }

    [Fact]
    public void Prune_folder_writes_a_lora_adapter_and_refuses_other_methods()
    {
        var (net, peft) = ReferenceLayer();
        var src = Directory.CreateTempSubdirectory("peftsharp-sora-src-").FullName;
        var dst = Path.Combine(src, "pruned");
        try
        {
            PeftAdapterFiles.Save(peft, src);
            using (var pruned = SoraPruning.PruneFolder(src, dst))
            {
                Assert.Equal(2, pruned.Config.Rank);
            }
            var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(dst));
            Assert.Equal((2, 2.0, 1.0), (config.Rank, config.Alpha, config.Scaling));
            var e = Assert.Throws<PeftException>(() => SoraPruning.PruneFolder(dst, Path.Combine(src, "again")));
            Assert.Contains("not a SORA adapter", e.Message);
        }
        finally
        {
            Directory.Delete(src, true);
        }
        net.Dispose();
    }
}
