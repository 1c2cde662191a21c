using PeftSharp.Tests.Support;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Tests.Training.Jobs;

public class FineTuneJobSplitTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-split-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void Validation_split_zero_trains_on_every_row_without_evaluation()
    {
        var data = Path.Combine(_tmp, "lm.jsonl");
        File.WriteAllLines(data, File.ReadLines(SharedPaths.Asset("data", "tinystories", "validation.jsonl")).Take(10));
        var result = FineTuneJob.Run(new FineTuneOptions
        {
            Model = Path.Combine(SharedPaths.RepoRoot, "assets", "models", "stories260K"),
            Task = FineTuneTask.Lm,
            Data = data,
            ValidationSplit = 0,
            MaxSteps = 1,
            BatchSize = 10,
            MaxLength = 32,
            ShowExamples = 0,
            Output = Path.Combine(_tmp, "run"),
        });
        Assert.Equal(1, result.Training.Summary.Steps);
        Assert.Null(result.Training.Summary.After);
        Assert.True(File.Exists(Path.Combine(_tmp, "run", "adapter_model.safetensors")));
    }
}
