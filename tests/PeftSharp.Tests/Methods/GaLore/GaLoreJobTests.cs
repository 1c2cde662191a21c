using PeftSharp.Tests.Support;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Tests.Methods.GaLore;

/// <summary><c>peft train --full-finetune --optimizer galore</c>: GaLore as the optimizer of a plain full fine-tuning run.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class GaLoreJobTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-galore-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private string Subset(string name, int skip, int take)
    {
        var path = Path.Combine(_tmp, name);
        File.WriteAllLines(path, File.ReadLines(Path.Combine(SharedPaths.RepoRoot, "assets", "data", "tinystories", "validation.jsonl")).Skip(skip).Take(take));
        return path;
    }

    [Fact]
    public void Full_finetune_with_the_galore_optimizer_takes_finite_steps_on_stories260K()
    {
        var result = FineTuneJob.Run(new FineTuneOptions
        {
            Model = Path.Combine(SharedPaths.RepoRoot, "assets", "models", "stories260K"),
            Data = Subset("train.jsonl", 0, 16),
            Validation = Subset("eval.jsonl", 100, 4),
            Task = FineTuneTask.Lm,
            FullFineTune = true,
            Optimizer = "galore",
            Rank = 4,
            MaxSteps = 2,
            BatchSize = 4,
            MaxLength = 32,
            ShowExamples = 0,
            Output = Path.Combine(_tmp, "run"),
        });
        Assert.Equal(2, result.Training.Summary.Steps);
        Assert.All(result.Training.Steps, s => Assert.True(double.IsFinite(s.Loss) && !s.Skipped));
    }

    [Fact]
    public void Unknown_optimizer_is_rejected_listing_galore()
    {
        var e = Assert.Throws<ConfigException>(() => FineTuneJob.Run(new FineTuneOptions { Optimizer = "lion", Output = Path.Combine(_tmp, "bad") }));
        Assert.Contains("adamw, sgd or galore", e.Message);
    }
}
