using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.Methods.Diffora;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Tests.Methods.Diffora;

/// <summary><c>peft train --method diffora</c>'s job on the bundled MiniLM and sentiment sentences.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class DifforaTrainingTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-diffora-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private string Subset(string file, int lines)
    {
        var path = Path.Combine(_tmp, $"{Path.GetFileNameWithoutExtension(file)}-{lines}.jsonl");
        File.WriteAllLines(path, File.ReadLines(Path.Combine(SharedPaths.RepoRoot, "assets", "data", "sentiment_sentences", file)).Take(lines));
        return path;
    }

    [Fact]
    public void Search_then_discretised_lora_lowers_eval_loss_and_reports_and_saves_the_selected_modules()
    {
        var output = Path.Combine(_tmp, "run");
        var lines = new List<string>();
        var result = FineTuneJob.Run(new FineTuneOptions
        {
            Method = "diffora",
            Data = Subset("train.jsonl", 640),
            Validation = Subset("test.jsonl", 128),
            MaxSteps = 40,
            BatchSize = 16,
            LearningRate = 5e-3,
            MaxLength = 48,
            ShowExamples = 0,
            Output = output,
            MethodOptions = new Dictionary<string, JsonNode?> { ["search_steps"] = 10 },
        }, log: lines.Add);

        var before = result.Training.Before!.Loss!.Value;
        var after = result.Training.After!.Loss!.Value;
        // Runs are bit-reproducible on CPU (fixed seed), so this margin is not a flaky threshold.
        Assert.True(after < before - 0.05, $"eval loss {before} -> {after}");

        // MiniLM's default targets are query and value in 6 layers: 12 candidates, ρ = 0.5 keeps 6.
        var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(output));
        var selected = config.UnknownKeys![DifforaConfig.SelectedModulesKey].EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Equal(6, selected.Count);
        Assert.Equal(selected, config.TargetModules!.Names);
        Assert.Equal(12, config.UnknownKeys[DifforaConfig.GatesKey].EnumerateObject().Count());
        var report = Assert.Single(lines, l => l.Contains("became LORA", StringComparison.Ordinal));
        Assert.All(selected, m => Assert.Contains(m, report));
    }
}
