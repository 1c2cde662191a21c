using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.Mole;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using PeftSharp.Tokenization;
using PeftSharp.Training.Jobs;
using TorchSharp;

namespace PeftSharp.Tests.Compression;

/// <summary>
/// Cont-Squeeze (<c>peft compress --finetune-steps K</c>) on the bundled stories260K: a perturbed rank-8 LoRA is
/// compressed to rank 2 and trained K steps. The saved adapter keeps rank 2, the loss on the training data (measured by
/// the model forward through <see cref="EvalJob"/>, the same way before and after) goes down, the run repeats exactly
/// with its seed, and the CLI gives the library's result.
/// </summary>
public sealed class ContinuedSqueezeTests : IDisposable
{
    private const int Steps = 6;
    private const int MaxLength = 64;
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-cont-squeeze-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private static string Model => Path.Combine(SharedPaths.RepoRoot, "assets", "models", "stories260K");

    private string Data()
    {
        var path = Path.Combine(_tmp, "train.jsonl");
        if (!File.Exists(path))
        {
            File.WriteAllLines(path, File.ReadLines(Path.Combine(SharedPaths.RepoRoot, "assets", "data", "tinystories", "validation.jsonl")).Take(12));
        }
        return path;
    }

    // A rank-8 LoRA on q/v whose B is random (a trained-looking update), saved with its base model's path.
    private string Source(AdapterConfig? config = null, string name = "source")
    {
        var dir = Path.Combine(_tmp, name);
        if (Directory.Exists(dir))
        {
            return dir;
        }
        torch.manual_seed(5);
        using var model = AutoModel.FromPretrained(Model);
        var peft = PeftModel.Create(model, config ?? new LoraConfig
        {
            Rank = 8,
            Alpha = 16,
            TargetModules = TargetModules.Of("q_proj", "v_proj"),
            TaskType = "CAUSAL_LM",
            BaseModelNameOrPath = Model,
        });
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.add_(torch.randn_like(p) * 0.05);
            }
        }
        PeftAdapterFiles.Save(peft, dir);
        return dir;
    }

    private CompressJobOptions Options(string output, int seed) => new()
    {
        Adapter = Source(),
        Output = Path.Combine(_tmp, output),
        Compression = new CompressionOptions { Rank = 2 },
        FineTuneSteps = Steps,
        Training = new FineTuneOptions
        {
            Data = Data(),
            Task = FineTuneTask.Lm,
            ValidationSplit = 0,
            BatchSize = 4,
            MaxLength = MaxLength,
            LearningRate = 5e-3,
            Scheduler = "constant",
            WarmupRatio = 0,
            Seed = seed,
        },
    };

    private double TrainingLoss(string adapter)
    {
        using var model = AutoModel.FromPretrained(Model);
        PeftAdapterFiles.FromPretrained(model, adapter);
        var result = EvalJob.Run(model, HfTokenizer.FromFolder(Model), Data(), new EvalOptions { Task = FineTuneTask.Lm, MaxLength = MaxLength });
        return result.Loss!.Value;
    }

    private static byte[] Weights(string adapter) => File.ReadAllBytes(Path.Combine(adapter, PeftAdapterFiles.WeightsFileName));

    // Every module of the source holds rank-2 factors in the file, and r = 2 in the config.
    private void AssertRank2(string adapter)
    {
        using var source = PeftAdapterFiles.OpenWeights(Source());
        var modules = source.Entries.Count(e => e.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal));
        var config = Assert.IsType<LoraConfig>(PeftAdapterFiles.ReadConfig(adapter));
        Assert.Equal(2, config.Rank);
        Assert.Empty(config.RankPattern);
        using var file = PeftAdapterFiles.OpenWeights(adapter);
        var a = file.Entries.Where(e => e.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal)).ToList();
        var b = file.Entries.Where(e => e.Name.EndsWith(".lora_B.weight", StringComparison.Ordinal)).ToList();
        Assert.Equal(modules, a.Count);
        Assert.Equal(modules, b.Count);
        Assert.All(a, e => Assert.Equal(2, e.Shape[0]));
        Assert.All(b, e => Assert.Equal(2, e.Shape[1]));
    }

    [Fact]
    public void Finetuning_keeps_rank_k_lowers_the_training_loss_and_repeats_with_its_seed()
    {
        var options = Options("run", seed: 11);
        var result = CompressJob.Run(options);

        Assert.Equal(Path.Combine(options.Output, CompressJob.CompressedFolder), result.CompressedDirectory);
        Assert.NotNull(result.FineTune);
        Assert.Equal(Steps, result.FineTune!.Training.Steps.Count);
        AssertRank2(result.CompressedDirectory);
        AssertRank2(options.Output);
        Assert.NotEqual(Weights(result.CompressedDirectory), Weights(options.Output));

        var afterCompression = TrainingLoss(result.CompressedDirectory);
        var afterFinetuning = TrainingLoss(options.Output);
        Assert.True(afterFinetuning < afterCompression, $"loss after {Steps} steps {afterFinetuning} is not below the compressed adapter's {afterCompression}");

        var again = CompressJob.Run(Options("again", seed: 11));
        Assert.Equal(Weights(options.Output), Weights(again.FineTune!.OutputDirectory));
        var otherSeed = CompressJob.Run(Options("other-seed", seed: 12));
        Assert.Equal(Weights(result.CompressedDirectory), Weights(otherSeed.CompressedDirectory));
        Assert.NotEqual(Weights(options.Output), Weights(otherSeed.FineTune!.OutputDirectory));
    }

    [Fact]
    public void Cli_finetune_steps_gives_the_library_result()
    {
        var library = Options("library", seed: 3);
        CompressJob.Run(library);
        var t = library.Training;
        var outDir = Path.Combine(_tmp, "cli");
        var r = CliRunner.Run("compress", library.Adapter, "--rank", "2", "--finetune-steps", Steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--model", Model, "--data", t.Data!, "--task", "lm", "--validation-split", "0", "--batch-size", "4", "--max-length", MaxLength.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--lr", "5e-3", "--lr-scheduler", "constant", "--warmup-ratio", "0", "--seed", "3", "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Contains("r 8 -> 2", r.Stdout);
        Assert.Contains($"fine-tuned {Steps} steps at the new rank", r.Stdout);
        AssertRank2(Path.Combine(outDir, CompressJob.CompressedFolder));
        AssertRank2(outDir);
        using var cli = PeftAdapterFiles.OpenWeights(outDir);
        using var lib = PeftAdapterFiles.OpenWeights(library.Output);
        Assert.Equal(lib.Entries.Select(e => e.Name), cli.Entries.Select(e => e.Name));
        foreach (var e in lib.Entries)
        {
            using var expected = lib.Read(e.Name);
            using var got = cli.Read(e.Name);
            Assert.True(Support.Weights.MaxAbsDiff(got, expected) <= 1e-6, $"{e.Name}: the CLI run differs from the library run by {Support.Weights.MaxAbsDiff(got, expected)}");
        }
    }

    [Fact]
    public void Cli_names_a_method_without_a_closed_form_update()
    {
        var source = Source(new MoleConfig
        {
            Rank = 2,
            NumExperts = 2,
            TargetModules = TargetModules.Of("q_proj", "gate_proj"),
            ExpertModules = TargetModules.Of("gate_proj"),
            TaskType = "CAUSAL_LM",
            BaseModelNameOrPath = Model,
        }, "mole");
        var outDir = Path.Combine(_tmp, "mole-out");
        var r = CliRunner.Run("compress", source, "--rank", "1", "--out", outDir);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("MOLE", r.Stderr);
        Assert.Contains("no closed-form", r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(outDir));
    }
}
