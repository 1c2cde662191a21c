using PeftSharp.Core;
using PeftSharp.Methods.DyLora;
using PeftSharp.Methods.Sora;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Training;
using PeftSharp.Training;

namespace PeftSharp.Tests.Methods.DyLora;

/// <summary>DyLoRA's sampled ranks and SoRA's scheduled threshold depend on (seed, step) only: a resumed run is bitwise the straight one.</summary>
[Collection(TorchRngCollection.Name)]
public class HookResumeTests
{
    private static TrainerOptions Options(string output, long maxSteps) => new()
    {
        MaxSteps = maxSteps,
        Seed = 9,
        CheckpointEvery = 3,
        OutputDirectory = output,
        MaxGradNorm = null,
        Schedule = LearningRateSchedule.Constant(0.02),
        EvaluateBeforeTraining = false,
    };

    public static TheoryData<string> Methods() => new() { "dylora", "sora" };

    private static AdapterConfig Config(string method) => method == "dylora"
        ? new DyLoraConfig { Rank = 4, Alpha = 8, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") }
        : new SoraConfig { Rank = 4, SparseLambda2 = 0.02, LambdaSchedule = "linear", MaxLambda = 0.1, LambdaNum = 3, LambdaStageSteps = 2, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") };

    [Theory]
    [MemberData(nameof(Methods))]
    public void Three_steps_then_resume_equals_six_straight_steps_bitwise(string method)
    {
        using var straightDir = new TempDir();
        using var splitDir = new TempDir();
        Dictionary<string, float[]> straight;
        double[] straightLoss;
        using (var toy = new ToyTraining(dropout: 0, config: () => Config(method)))
        using (var trainer = toy.Trainer(Options(straightDir.Path, 6)))
        {
            straightLoss = [.. trainer.Train().Steps.Select(s => s.Loss)];
            straight = toy.Snapshot();
        }
        using (var toy = new ToyTraining(dropout: 0, config: () => Config(method)))
        using (var trainer = toy.Trainer(Options(splitDir.Path, 3)))
        {
            trainer.Train();
        }
        using (var toy = new ToyTraining(dropout: 0, config: () => Config(method)))
        using (var trainer = toy.Trainer(Options(splitDir.Path, 6)))
        {
            trainer.Resume(Path.Combine(splitDir.Path, "checkpoint-3"));
            var resumedLoss = trainer.Train().Steps.Select(s => s.Loss).ToArray();
            Assert.Equal(straightLoss, resumedLoss);
            Assert.Equal(straight, toy.Snapshot());
        }
    }
}
