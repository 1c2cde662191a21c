using PeftSharp.Core;
using PeftSharp.Methods.Mole;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Mole;

/// <summary>The load-balancing loss: its value by hand, the attention mask, and how the trainer adds it.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class MoleBalanceTests
{
    private static readonly float[] s_p = [0.8438f, 0.1142f, 0.0420f];

    private static Tensor Rows(params float[][] rows) => torch.tensor(rows.SelectMany(r => r).ToArray()).reshape(1, rows.Length, rows[0].Length);

    [Fact]
    public void Four_tokens_on_expert_0_give_p0_and_uniform_routing_gives_one_third()
    {
        // Reference §1: every token has p = [0.8438, 0.1142, 0.0420] → f = [1, 0, 0], Σ P·f = 0.8438 (no factor K).
        var same = MoleBalanceLoss.Compute([Rows(s_p, s_p, s_p, s_p)], null).item<float>();
        Assert.Equal(0.8438, same, 5);
        // Two tokens per expert... with K = 2 and p = [0.5, 0.5]: P = [0.5, 0.5], f by argmax (ties → expert 0) = [1, 0] → 0.5.
        // With K = 3 and each token sure of a different expert: P = f = [1/3, 1/3, 1/3] → 1/3.
        var spread = MoleBalanceLoss.Compute([Rows([1, 0, 0], [0, 1, 0], [0, 0, 1])], null).item<float>();
        Assert.Equal(1.0 / 3, spread, 6);
    }

    [Fact]
    public void Padding_tokens_do_not_count()
    {
        var probs = Rows(s_p, s_p, s_p, s_p, [0, 1, 0]);
        var masked = MoleBalanceLoss.Compute([probs], torch.tensor(new long[] { 1, 1, 1, 1, 0 }).reshape(1, 5)).item<float>();
        Assert.Equal(0.8438, masked, 5);
        // Unmasked, by hand: f = [0.8, 0.2, 0], P = (4p + [0, 1, 0]) / 5 = [0.67504, 0.29136, 0.0336] → 0.540032 + 0.058272.
        var all = MoleBalanceLoss.Compute([probs], null).item<float>();
        Assert.Equal(0.598304, all, 5);
    }

    [Fact]
    public void Layers_pool_per_sample_and_samples_average()
    {
        // Sample 0: layer A puts both tokens on expert 0 (p 0.8438), layer B on expert 1 (p = [0.2, 0.8, 0]): pooled over 4
        // token-layers P = [(2·0.8438 + 0.4)/4, (2·0.1142 + 1.6)/4, 0.084/4], f = [0.5, 0.5, 0] → 0.5·(0.5219 + 0.4571) = 0.4895.
        // Sample 1: all four on expert 0 with 0.8438 → 0.8438. Mean 0.66665.
        var q = new float[] { 0.2f, 0.8f, 0f };
        var layerA = torch.tensor(new[] { s_p, s_p, s_p, s_p }.SelectMany(r => r).ToArray()).reshape(2, 2, 3);
        var layerB = torch.tensor(new[] { q, q, s_p, s_p }.SelectMany(r => r).ToArray()).reshape(2, 2, 3);
        var loss = MoleBalanceLoss.Compute([layerA, layerB], null).item<float>();
        Assert.Equal((0.4895 + 0.8438) / 2, loss, 5);
    }

    [Fact]
    public void Trainer_adds_the_weighted_balancing_loss_over_real_tokens_to_the_step_loss()
    {
        var x = torch.randn(2, 5, 6, generator: new torch.Generator(5));
        var y = torch.randn(2, 5, 6, generator: new torch.Generator(6));
        var mask = torch.tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 }).reshape(2, 5);
        var batch = new Batch(x, AttentionMask: mask, Labels: y);

        double FirstStepLoss(double weight, out double hand)
        {
            torch.manual_seed(21);
            var net = new ToyMoleNet();
            var config = MoleLayerTests.Config(weight: weight);
            var peft = PeftModel.Create(net, config);
            var routings = new List<Tensor>();
            using (torch.no_grad())
            {
                MoleLayerTests.Oracle(peft, x, config, 2, routings);
            }
            hand = MoleBalanceLoss.Compute(routings, mask).item<float>();
            var options = new TrainerOptions { MaxSteps = 1, EvaluateBeforeTraining = false, MaxGradNorm = null, Shuffle = false, Schedule = LearningRateSchedule.Constant(0.01) };
            using var trainer = new Trainer(peft, b => nn.functional.mse_loss(net.call(b.InputIds), b.Labels!), TrainingData.FromDataset(new InMemoryBatchDataset([batch]), false), options);
            return trainer.TrainStep().Loss;
        }

        var plain = FirstStepLoss(0, out var balance);
        var weighted = FirstStepLoss(0.5, out var again);
        Assert.Equal(balance, again);
        Assert.Equal(0.5 * balance, weighted - plain, 6);
        // The mask matters: padding tokens would change the value.
        Assert.True(Math.Abs(balance - MoleBalanceLoss.Compute(RoutingsOf(x), null).item<float>()) > 1e-5);

        List<Tensor> RoutingsOf(Tensor input)
        {
            torch.manual_seed(21);
            var peft = PeftModel.Create(new ToyMoleNet(), MoleLayerTests.Config());
            var r = new List<Tensor>();
            using var _ = torch.no_grad();
            MoleLayerTests.Oracle(peft, input, MoleLayerTests.Config(), 2, r);
            return r;
        }
    }

    [Theory]
    [InlineData(MoleConfig.Sparse, false)]
    [InlineData(MoleConfig.Switch, true)]
    [InlineData(MoleConfig.Dense, true)]
    public void Task_loss_reaches_the_router_only_through_switch_or_dense_routing(string routing, bool expected)
    {
        torch.manual_seed(22);
        var net = new ToyMoleNet();
        var peft = PeftModel.Create(net, MoleLayerTests.Config(routing));
        MoleLayerTests.Randomise(peft);
        var router = peft.AdapterLayers().Select(l => l.Layer).OfType<MoleLayer>().First(l => l.OwnsRouter("default")).RouterOf("default")!;
        var plan = ((MoleLayer)peft.AdapterLayers().First(l => l.Name.EndsWith("gate_proj", StringComparison.Ordinal)).Layer).PlanOf("default")!;
        var x = torch.randn(2, 4, 6);
        net.call(x).square().sum().backward();
        var taskGrad = router.weight!.grad is { } g ? g.abs().sum().item<float>() : 0f;
        Assert.Equal(expected, taskGrad > 0);

        // The balancing loss always reaches it (the official sparse path's only router signal).
        router.weight!.grad = null;
        plan.Recorder.Start();
        net.call(x);
        plan.Recorder.Stop();
        Assert.Equal(2, plan.Recorder.Recorded.Count);
        MoleBalanceLoss.Compute(plan.Recorder.Recorded, null).backward();
        plan.Recorder.Clear();
        Assert.True(router.weight!.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Training_without_any_expert_module_fails_naming_expert_modules()
    {
        var net = new ToyMoleNet();
        var peft = PeftModel.Create(net, MoleLayerTests.Config() with { TargetModules = TargetModules.Of("q_proj") });
        var batch = new Batch(torch.randn(1, 2, 6));
        var e = Assert.Throws<PeftException>(() => new Trainer(peft, b => net.call(b.InputIds).sum(), TrainingData.FromDataset(new InMemoryBatchDataset([batch]), false)));
        Assert.Contains("expert_modules", e.Message);
    }

    [Fact]
    public void Auxiliary_loss_hooks_see_each_micro_batch_and_their_term_is_optimised()
    {
        var hook = new ConstantTerm(0.25);
        var x = torch.ones(1, 1);
        var batch = new Batch(x);
        var net = new PeftSharp.Tests.Support.NestedNet();
        var peft = PeftModel.Create(net, new PeftSharp.Methods.Lora.LoraConfig { TargetModules = TargetModules.Of("q_proj") });
        var options = new TrainerOptions { MaxSteps = 1, EvaluateBeforeTraining = false, Hooks = [hook], GradientAccumulationSteps = 2, Shuffle = false };
        using var trainer = new Trainer(peft, b => net.call(torch.zeros(1, 4)).sum() * 0 + 1.0, TrainingData.FromDataset(new InMemoryBatchDataset([batch]), false), options);
        var record = trainer.TrainStep();
        Assert.Equal(1.25, record.Loss, 6);
        Assert.Equal(["begin", "end", "begin", "end"], hook.Calls);
    }

    [Fact]
    public void Training_steps_with_routing_and_the_balancing_loss_leak_no_tensors()
    {
        torch.manual_seed(23);
        var net = new ToyMoleNet();
        var peft = PeftModel.Create(net, MoleLayerTests.Config(MoleConfig.Switch) with { Dropout = 0.1 });
        var plan = ((MoleLayer)peft.AdapterLayers().First(l => l.Name.EndsWith("gate_proj", StringComparison.Ordinal)).Layer).PlanOf("default")!;
        net.train();
        var x = torch.randn(2, 4, 6);
        var mask = torch.ones(2, 4);
        long? live = null;
        for (var step = 0; step < 40; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                plan.Recorder.Start();
                var loss = net.call(x).square().mean();
                plan.Recorder.Stop();
                (loss + MoleBalanceLoss.Compute(plan.Recorder.Recorded, mask) * 0.01).backward();
                plan.Recorder.Clear();
                foreach (var p in peft.TrainableParameters())
                {
                    p.grad = null;
                }
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    private sealed class ConstantTerm(double value) : IAuxiliaryLoss
    {
        public List<string> Calls { get; } = [];

        public void BeginForward(Batch batch) => Calls.Add("begin");

        public Tensor? EndForward(Batch batch)
        {
            Calls.Add("end");
            return torch.tensor(value);
        }
    }
}
