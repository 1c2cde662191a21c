using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Core;
using PeftSharp.Tests.IO;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

[Collection(TorchRngCollection.Name)]
public class CheckpointTests
{
    // Warm-up + cosine over 10 steps, 6 shuffled batches (so the run crosses an epoch), LoRA dropout on.
    private static TrainerOptions Options(string output, long maxSteps) => new()
    {
        MaxSteps = maxSteps,
        Seed = 5,
        LogEvery = 2,
        CheckpointEvery = 5,
        OutputDirectory = output,
        Schedule = new LearningRateSchedule { Kind = ScheduleKind.Cosine, PeakLearningRate = 2e-2, WarmupSteps = 2, TotalSteps = 10 },
        EvaluateBeforeTraining = false,
    };

    [Fact]
    public void Five_steps_then_resume_then_five_equals_ten_uninterrupted_steps_bitwise()
    {
        using var straightDir = new TempDir();
        using var splitDir = new TempDir();
        double[] straight;
        Dictionary<string, float[]> straightWeights;
        using (var toy = new ToyTraining())
        using (var trainer = toy.Trainer(Options(straightDir.Path, 10) with { GradientAccumulationSteps = 2 }))
        {
            straight = [.. trainer.Train().Steps.Select(s => s.Loss)];
            straightWeights = toy.Snapshot();
        }
        using (var toy = new ToyTraining())
        using (var trainer = toy.Trainer(Options(splitDir.Path, 5) with { GradientAccumulationSteps = 2 }))
        {
            trainer.Train();
        }
        var events = new EventLog();
        double[] resumed;
        using (var toy = new ToyTraining())
        using (var trainer = toy.Trainer(Options(splitDir.Path, 10) with { GradientAccumulationSteps = 2, Progress = events }))
        {
            trainer.Resume(Path.Combine(splitDir.Path, "checkpoint-5"));
            Assert.Equal(5, trainer.Step);
            resumed = [.. trainer.Train().Steps.Select(s => s.Loss)];
            Assert.Equal(straightWeights, toy.Snapshot());
        }
        Assert.Equal(10, straight.Length);
        Assert.Equal(straight, resumed);
        Assert.Equal(5, events.Of<StepCompleted>().Count());
        Assert.Single(events.Of<TrainingResumed>());
        static IEnumerable<string> Comparable(string dir) => MetricsLog.Read(Path.Combine(dir, MetricsLog.FileName))
            .Select(l => $"{l["step"]} {l["loss"]} {l["lr"]} {l["grad_norm"]}");
        Assert.Equal(Comparable(straightDir.Path), Comparable(splitDir.Path));
    }

    [Fact]
    public void Resume_without_the_checkpoint_rng_state_diverges()
    {
        // Guards the test above: dropout must actually draw from torch's generator.
        using var dir = new TempDir();
        using (var toy = new ToyTraining())
        using (var trainer = toy.Trainer(Options(dir.Path, 5)))
        {
            trainer.Train();
        }
        double[] WithRngFrom(bool restore)
        {
            using var toy = new ToyTraining();
            using var trainer = toy.Trainer(Options(dir.Path, 7));
            trainer.Resume(Path.Combine(dir.Path, "checkpoint-5"));
            if (!restore)
            {
                torch.manual_seed(99);
            }
            return [.. trainer.Train().Steps.Skip(5).Select(s => s.Loss)];
        }
        Assert.NotEqual(WithRngFrom(true), WithRngFrom(false));
    }

    [Fact]
    public void Checkpoint_holds_everything_a_resume_needs_and_a_loadable_peft_adapter()
    {
        using var dir = new TempDir();
        using var toy = new ToyTraining();
        using var trainer = toy.Trainer(Options(dir.Path, 5));
        trainer.Train();
        var checkpoint = Path.Combine(dir.Path, "checkpoint-5");
        foreach (var file in new[] { Checkpoints.TrainableFile, Checkpoints.OptimizerFile, Checkpoints.RngFile, Checkpoints.StateFile })
        {
            Assert.True(File.Exists(Path.Combine(checkpoint, file)), file);
        }
        var state = JsonFiles.ReadObject(Path.Combine(checkpoint, Checkpoints.StateFile));
        Assert.Equal(5, state["step"]!.GetValue<long>());
        Assert.Equal(5, state["seed"]!.GetValue<int>());
        Assert.Equal(5, ((JsonArray)state["history"]!).Count);

        using var x = torch.randn(3, 4);
        toy.Net.eval();
        using var trained = toy.Net.call(x);
        using var fresh = new ToyTraining();
        fresh.Peft.DeleteAdapter("default");
        PeftAdapterFiles.Load(fresh.Peft, Path.Combine(checkpoint, Checkpoints.AdapterFolder));
        fresh.Net.eval();
        using var loaded = fresh.Net.call(x);
        Assert.True(PeftSharp.Tests.Support.Weights.Exact(trained, loaded), "the checkpoint's PEFT adapter must reproduce the trained model");
    }

    [Fact]
    public void Pruning_keeps_the_newest_checkpoints_and_the_best_by_eval_loss()
    {
        using var dir = new TempDir();
        using var toy = new ToyTraining();
        var evalLoss = new Dictionary<long, double> { [2] = 0.5, [4] = 0.9, [6] = 0.8, [8] = 0.7, [10] = 0.6 };
        var options = Options(dir.Path, 10) with
        {
            CheckpointEvery = 2,
            EvalEvery = 2,
            KeepCheckpoints = 2,
            Evaluate = step => new EvaluationResult(evalLoss[step], new Dictionary<string, double>()),
        };
        using var trainer = toy.Trainer(options);
        trainer.Train();
        Assert.Equal([2L, 8L, 10L], Checkpoints.List(dir.Path).Select(c => c.Step));
        Assert.Empty(Directory.GetDirectories(dir.Path, ".tmp-*"));
    }

    [Fact]
    public void Failed_checkpoint_write_leaves_no_folder_behind()
    {
        using var dir = new TempDir();
        Assert.Throws<IOException>(() => Checkpoints.Write(dir.Path, 3, temp =>
        {
            File.WriteAllText(Path.Combine(temp, "partial"), "x");
            throw new IOException("disk full");
        }));
        Assert.Empty(Directory.GetDirectories(dir.Path));
        Assert.Null(Checkpoints.Latest(dir.Path));
    }

    [Fact]
    public void Rewriting_a_checkpoint_of_the_same_step_replaces_it_whole()
    {
        using var dir = new TempDir();
        Checkpoints.Write(dir.Path, 4, t => File.WriteAllText(Path.Combine(t, Checkpoints.StateFile), "old"));
        var path = Checkpoints.Write(dir.Path, 4, t => File.WriteAllText(Path.Combine(t, Checkpoints.StateFile), "new"));
        Assert.Equal("new", File.ReadAllText(Path.Combine(path, Checkpoints.StateFile)));
        Assert.Single(Directory.GetDirectories(dir.Path));
    }

    [Fact]
    public void Resume_into_another_adapter_setup_fails_naming_the_tensor()
    {
        using var dir = new TempDir();
        using (var toy = new ToyTraining())
        using (var trainer = toy.Trainer(Options(dir.Path, 5)))
        {
            trainer.Train();
        }
        using var other = new ToyTraining(config: () => new LoraConfig { Rank = 3, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });
        using var t = other.Trainer(Options(dir.Path, 10));
        var e = Assert.Throws<ModelMismatchException>(() => t.Resume(Path.Combine(dir.Path, "checkpoint-5")));
        Assert.Contains("lora_A.default.weight", e.Message);
        Assert.Contains("[2, ", e.Message);

        using var same = new ToyTraining();
        using var seeded = same.Trainer(Options(dir.Path, 10) with { Seed = 6 });
        var seedError = Assert.Throws<ConfigException>(() => seeded.Resume(Path.Combine(dir.Path, "checkpoint-5")));
        Assert.Contains("seed 5", seedError.Message);
    }
}
