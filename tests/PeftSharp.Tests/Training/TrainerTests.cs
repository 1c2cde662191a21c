using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

[Collection(TorchRngCollection.Name)]
public class TrainerTests
{
    private static TrainerOptions Options(long steps = 12, int seed = 1) => new()
    {
        MaxSteps = steps,
        Seed = seed,
        Schedule = new LearningRateSchedule { Kind = ScheduleKind.Cosine, PeakLearningRate = 1e-2, WarmupSteps = 3, TotalSteps = steps },
        EvaluateBeforeTraining = false,
    };

    private static double[] Losses(TrainingResult r) => [.. r.Steps.Select(s => s.Loss)];

    [Fact]
    public void Same_seed_gives_bit_identical_losses_and_another_seed_does_not()
    {
        double[] Run(int seed)
        {
            using var toy = new ToyTraining();
            using var trainer = toy.Trainer(Options(seed: seed));
            return Losses(trainer.Train());
        }
        var a = Run(1);
        var b = Run(1);
        var c = Run(2);
        Assert.Equal(12, a.Length);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.True(a[^1] < a[0], $"loss should fall: {a[0]} → {a[^1]}");
    }

    [Fact]
    public void Hundred_steps_leak_no_tensors()
    {
        using var toy = new ToyTraining();
        using var trainer = toy.Trainer(Options(steps: 100) with { GradientAccumulationSteps = 2 });
        long live = 0;
        for (var i = 0; i < 100; i++)
        {
            trainer.TrainStep();
            if (i == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Two_accumulated_halves_equal_one_step_on_the_whole_batch()
    {
        using var halves = new ToyTraining(dropout: 0, batches: 2, rows: 4);
        using var whole = new ToyTraining(dropout: 0, batches: 2, rows: 4);
        var sgd = new TrainerOptions
        {
            MaxSteps = 1,
            Shuffle = false,
            MaxGradNorm = null,
            Schedule = LearningRateSchedule.Constant(0.5),
            Optimizer = ps => SgdOptimizer.Create(ps),
            EvaluateBeforeTraining = false,
        };
        using (var t = halves.Trainer(sgd with { GradientAccumulationSteps = 2 }))
        {
            t.Train();
        }
        var joined = new Batch(
            torch.cat([whole.Batches[0].InputIds, whole.Batches[1].InputIds]),
            Labels: torch.cat([whole.Batches[0].Labels!, whole.Batches[1].Labels!]));
        using (var t = whole.Trainer(sgd, TrainingData.FromStream([joined])))
        {
            t.Train();
        }
        var a = halves.Snapshot();
        var b = whole.Snapshot();
        var before = new ToyTraining(dropout: 0).Snapshot();
        foreach (var (name, values) in a)
        {
            Assert.NotEqual(before[name], values);
            Assert.All(values.Zip(b[name]), v => Assert.True(Math.Abs(v.First - v.Second) <= 1e-6, $"{name}: {v.First} vs {v.Second}"));
        }
    }

    [Fact]
    public void Nan_step_is_skipped_without_update_and_reported()
    {
        using var toy = new ToyTraining();
        var events = new EventLog();
        var calls = 0;
        BatchLoss loss = b =>
        {
            var l = toy.Loss(b);
            return ++calls == 3 ? l * double.NaN : l;
        };
        using var trainer = new Trainer(toy.Peft, loss, TrainingData.FromDataset(toy.Data), Options() with { Progress = events });
        trainer.TrainStep();
        trainer.TrainStep();
        var before = toy.Snapshot();
        var stats = trainer.Optimizer.Parameters.Select(p => ((PerParameterOptimizer)trainer.Optimizer).StateOf(p.Parameter)!.Step).ToList();
        var skipped = trainer.TrainStep();
        Assert.True(skipped.Skipped);
        Assert.Equal(3, skipped.Step);
        Assert.Equal(before, toy.Snapshot());
        Assert.Equal(stats, trainer.Optimizer.Parameters.Select(p => ((PerParameterOptimizer)trainer.Optimizer).StateOf(p.Parameter)!.Step));
        Assert.All(trainer.Trainable, p => Assert.Null(p.Parameter.grad));
        var warning = Assert.Single(events.Of<StepSkipped>());
        Assert.Equal(3, warning.Step);
        Assert.Contains("NaN", warning.Reason);
        var next = trainer.TrainStep();
        Assert.False(next.Skipped);
        Assert.NotEqual(before, toy.Snapshot());
    }

    [Fact]
    public void Five_bad_steps_in_a_row_stop_training_and_leave_the_last_checkpoint_intact()
    {
        using var dir = new PeftSharp.Tests.IO.TempDir();
        using var toy = new ToyTraining();
        var calls = 0;
        BatchLoss loss = b =>
        {
            var l = toy.Loss(b);
            return ++calls > 2 ? l * double.PositiveInfinity : l;
        };
        var options = Options() with { OutputDirectory = dir.Path, CheckpointEvery = 2 };
        using var trainer = new Trainer(toy.Peft, loss, TrainingData.FromDataset(toy.Data), options);
        var e = Assert.Throws<PeftException>(() => trainer.Train());
        Assert.Contains("5 consecutive", e.Message);
        Assert.Contains("checkpoint-2", e.Message);
        Assert.Equal(7, trainer.Step);
        var checkpoint = Assert.Single(Checkpoints.List(dir.Path));
        Assert.Equal(2, checkpoint.Step);
        using var fresh = new ToyTraining();
        using var resumed = fresh.Trainer(Options());
        resumed.Resume(checkpoint.Path);
        Assert.Equal(2, resumed.Step);
        Assert.All(fresh.Snapshot().Values.SelectMany(v => v), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Clipping_scales_gradients_to_the_max_norm_as_torch()
    {
        var p = new NamedParameter("p", new TorchSharp.Modules.Parameter(torch.zeros(2)));
        using (var g = torch.tensor(new[] { 3f, 4f }))
        {
            p.Parameter.grad = g;
        }
        var norm = Gradients.ClipByGlobalNorm([p], 1.0);
        Assert.Equal(5.0, norm, 6);
        var clipped = p.Parameter.grad!.data<float>().ToArray();
        // torch: coefficient = 1 / (5 + 1e-6)
        Assert.Equal(0.6f / (1 + 2e-7f), clipped[0], 6);
        Assert.Equal(0.8f / (1 + 2e-7f), clipped[1], 6);
        Assert.Equal(1.0, Gradients.GlobalNorm([p]), 5);
        Assert.Equal(1.0, Gradients.ClipByGlobalNorm([p], 10.0), 5);
        Assert.Equal(0.6f / (1 + 2e-7f), p.Parameter.grad!.data<float>()[0], 6);
    }

    [Fact]
    public void Step_records_pre_clip_norm_and_the_scheduled_learning_rate()
    {
        using var toy = new ToyTraining();
        using var trainer = toy.Trainer(Options() with { MaxGradNorm = 1e-3 });
        var first = trainer.TrainStep();
        var second = trainer.TrainStep();
        Assert.Equal(0.0, first.LearningRate);
        Assert.Equal(1e-2 / 3, second.LearningRate, 15);
        Assert.True(second.GradNorm > 1e-3, $"the recorded norm is before clipping: {second.GradNorm}");
    }

    [Fact]
    public void Model_without_trainable_parameters_is_refused()
    {
        using var toy = new ToyTraining();
        toy.Peft.InferenceMode = true;
        Assert.Throws<PeftException>(() => toy.Trainer(Options()));
    }
}
