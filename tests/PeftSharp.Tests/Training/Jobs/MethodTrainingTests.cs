using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Tests.Support;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Tests.Training.Jobs;

/// <summary>Every registered method and preset trains through the one common trainer on the bundled model.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class MethodTrainingTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-methods-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private static string Sentiment(string file) => Path.Combine(SharedPaths.RepoRoot, "assets", "data", "sentiment_sentences", file);

    private string Subset(string file, int lines)
    {
        var path = Path.Combine(_tmp, $"{Path.GetFileNameWithoutExtension(file)}-{lines}.jsonl");
        if (!File.Exists(path))
        {
            File.WriteAllLines(path, File.ReadLines(Sentiment(file)).Take(lines));
        }
        return path;
    }

    public static TheoryData<string> AllMethodNames()
    {
        var d = new TheoryData<string>();
        foreach (var m in MethodRegistry.Default.Methods)
        {
            d.Add(m.Name);
        }
        foreach (var p in MethodRegistry.Default.Presets)
        {
            d.Add(p.Name);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(AllMethodNames))]
    public void Method_takes_training_steps_and_saves_a_loadable_adapter(string method)
    {
        var output = Path.Combine(_tmp, method);
        var result = FineTuneJob.Run(new FineTuneOptions
        {
            Method = method,
            Data = Subset("train.jsonl", 48),
            Validation = Subset("test.jsonl", 16),
            MaxSteps = 2,
            BatchSize = 8,
            MaxLength = 32,
            ShowExamples = 0,
            Output = output,
        });
        Assert.Equal(2, result.Training.Summary.Steps);
        Assert.All(result.Training.Steps, s => Assert.True(double.IsFinite(s.Loss)));
        var config = PeftAdapterFiles.ReadConfig(output);
        // A method may save as another PEFT method's adapter (lora_squeeze saves a plain LoRA); its ConfigForSave says which.
        var defaults = MethodRegistry.Default.DefaultConfig(method);
        Assert.Equal(MethodRegistry.Default.ForConfig(defaults).ConfigForSave(defaults, [], "default").PeftType, config.PeftType);
        Assert.Contains("classifier", config.ModulesToSave ?? []);
        // A preset is its method's config with some keys set (dora: use_dora): they must reach the saved file.
        if (MethodRegistry.Default.Presets.FirstOrDefault(p => p.Name == method) is { } preset)
        {
            var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, "adapter_config.json")))!.AsObject();
            var declared = System.Text.Json.Nodes.JsonNode.Parse(MethodRegistry.Default.SerializeConfig(preset.CreateConfig()))!.AsObject();
            foreach (var key in new[] { "use_dora", "init_lora_weights" })
            {
                Assert.Equal(declared[key]?.ToJsonString(), saved[key]?.ToJsonString());
            }
        }
    }

    [Theory]
    [InlineData("lora", 5e-3)]
    [InlineData("dora", 5e-3)]
    [InlineData("vera", 1e-2)]
    [InlineData("ia3", 1e-2)]
    public void Short_run_lowers_eval_loss(string method, double lr)
    {
        var result = FineTuneJob.Run(new FineTuneOptions
        {
            Method = method,
            Data = Subset("train.jsonl", 640),
            Validation = Subset("test.jsonl", 128),
            MaxSteps = 40,
            BatchSize = 16,
            LearningRate = lr,
            MaxLength = 48,
            ShowExamples = 0,
            Output = Path.Combine(_tmp, "short-" + method),
        });
        var before = result.Training.Before!.Loss!.Value;
        var after = result.Training.After!.Loss!.Value;
        // Runs are bit-reproducible on CPU (fixed seed), so this margin is not a flaky threshold.
        Assert.True(after < before - 0.05, $"{method}: eval loss {before} -> {after}");
    }
}
