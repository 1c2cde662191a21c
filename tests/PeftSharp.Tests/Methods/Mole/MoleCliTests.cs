using System.Text.Json;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Methods.Mole;

/// <summary><c>peft train --method mole --experts N</c> on the bundled stories260K (one step).</summary>
public class MoleCliTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-mole-cli-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private string Data()
    {
        var path = Path.Combine(_tmp, "text.jsonl");
        File.WriteAllLines(path, File.ReadLines(Path.Combine(SharedPaths.RepoRoot, "assets", "data", "tinystories", "validation.jsonl")).Take(8));
        return path;
    }

    private static string Model => Path.Combine(SharedPaths.RepoRoot, "assets", "models", "stories260K");

    [Fact]
    public void Experts_flag_sets_num_experts_and_the_default_targets_include_the_mlp()
    {
        var run = Path.Combine(_tmp, "run");
        var r = CliRunner.Run("train", "--model", Model, "--task", "lm", "--data", Data(), "--validation", Data(), "--method", "mole", "--experts", "2",
            "--max-steps", "1", "--batch-size", "2", "--max-length", "16", "--output", run);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "adapter_config.json")));
        Assert.Equal("MOLE", config.RootElement.GetProperty("peft_type").GetString());
        Assert.Equal(2, config.RootElement.GetProperty("num_experts").GetInt32());
        var targets = config.RootElement.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Contains("gate_proj", targets);
        Assert.Contains("q_proj", targets);
    }

    [Fact]
    public void Experts_flag_on_a_method_without_experts_fails_naming_the_key()
    {
        var r = CliRunner.Run("train", "--model", Model, "--task", "lm", "--data", Data(), "--method", "lora", "--experts", "2",
            "--max-steps", "1", "--batch-size", "2", "--max-length", "16", "--output", Path.Combine(_tmp, "bad"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("num_experts", r.Stderr);
    }
}
