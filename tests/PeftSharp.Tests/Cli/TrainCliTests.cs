using System.Text.Json;
using PeftSharp.IO.Safetensors;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Cli;

/// <summary>The main job as a user runs it: `peft train` on the bundled default, then eval and merge of its output.</summary>
public class TrainCliTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-train-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void Default_train_raises_validation_accuracy_and_writes_the_run_folder()
    {
        var run = Path.Combine(_tmp, "run");
        var r = CliRunner.Run("train", "--max-steps", "60", "--output", run);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "summary.json", "run_config.json", "loss.png", "lr.png" })
        {
            Assert.True(File.Exists(Path.Combine(run, f)), $"{f} missing");
        }
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "summary.json")));
        var s = summary.RootElement;
        Assert.Equal("accuracy", s.GetProperty("metric").GetString());
        var before = s.GetProperty("before").GetDouble();
        var after = s.GetProperty("after").GetDouble();
        Assert.True(after > 0.75 && after > before + 0.15, $"accuracy {before} -> {after}");
        foreach (var key in new[] { "task", "trainable_parameters", "total_parameters", "train_seconds", "tokens_per_second", "peak_memory_bytes" })
        {
            Assert.True(s.TryGetProperty(key, out _), key);
        }
        Assert.Contains("before", r.Stdout);

        // The saved adapter evaluates to the same accuracy, and so does the merged model folder.
        var model = Path.Combine(SharedPaths.RepoRoot, "assets", "models", "all-MiniLM-L6-v2");
        var data = Path.Combine(SharedPaths.RepoRoot, "assets", "data", "sentiment_sentences", "test.jsonl");
        var eval = CliRunner.Run("eval", "--model", model, "--adapter", run, "--data", data, "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.Equal(after, JsonDocument.Parse(eval.Stdout).RootElement.GetProperty("accuracy").GetDouble(), 6);
        var merged = Path.Combine(_tmp, "merged");
        Assert.Equal(0, CliRunner.Run("merge", "--model", model, "--adapter", run, "--out", merged).ExitCode);
        var evalMerged = CliRunner.Run("eval", "--model", merged, "--data", data, "--json");
        Assert.True(evalMerged.ExitCode == 0, evalMerged.Stderr);
        Assert.Equal(after, JsonDocument.Parse(evalMerged.Stdout).RootElement.GetProperty("accuracy").GetDouble(), 6);
    }

    [Fact]
    public void Config_file_is_read_and_flags_override_it_and_unknown_keys_are_errors()
    {
        var config = Path.Combine(_tmp, "run.json");
        File.WriteAllText(config, """{"max_steps": 3, "r": 4, "learning_rate": 0.0005, "seed": 7, "show_examples": 0}""");
        var run = Path.Combine(_tmp, "cfg");
        var r = CliRunner.Run("train", "--config", config, "--rank", "2", "--output", run);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var resolved = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "run_config.json")));
        Assert.Equal(2, resolved.RootElement.GetProperty("r").GetInt32());
        Assert.Equal(0.0005, resolved.RootElement.GetProperty("learning_rate").GetDouble());
        Assert.Equal(3, resolved.RootElement.GetProperty("max_steps").GetInt64());
        using var adapter = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "adapter_config.json")));
        Assert.Equal(2, adapter.RootElement.GetProperty("r").GetInt32());

        File.WriteAllText(config, """{"max_stepz": 3}""");
        var bad = CliRunner.Run("train", "--config", config, "--output", Path.Combine(_tmp, "bad"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("run.json", bad.Stderr);
        Assert.DoesNotContain(" at ", bad.Stderr);
    }

    [Fact]
    public void Merge_of_a_peft_fixture_adapter_equals_peft_merged_weights()
    {
        var merged = Path.Combine(_tmp, "m");
        var r = CliRunner.Run("merge", "--model", SharedPaths.Fixture("bases", "llama"), "--adapter", SharedPaths.Fixture("cases", "llama-lora-qv", "adapter"), "--out", merged);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var ours = SafetensorsFile.Open(Path.Combine(merged, "model.safetensors"));
        using var peft = SafetensorsFile.Open(SharedPaths.Fixture("cases", "llama-lora-qv", "merged", "model.safetensors"));
        Assert.Equal(peft.Entries.Select(e => e.Name).Order(), ours.Entries.Select(e => e.Name).Order());
        foreach (var e in peft.Entries)
        {
            Assert.True(Weights.MaxAbsDiff(ours.Read(e.Name), peft.Read(e.Name)) < 1e-5, e.Name);
        }
    }
    [Fact]
    public void Method_options_reach_the_saved_adapter_config_and_a_config_file_and_flags_combine()
    {
        var config = Path.Combine(_tmp, "opts.json");
        File.WriteAllText(config, """{"max_steps": 1, "show_examples": 0, "method": "vera", "method_options": {"d_initial": 0.5, "projection_prng_key": 3}}""");
        var run = Path.Combine(_tmp, "vera");
        var r = CliRunner.Run("train", "--config", config, "--method-option", "projection_prng_key=11", "--output", run);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var adapter = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "adapter_config.json")));
        Assert.Equal(0.5, adapter.RootElement.GetProperty("d_initial").GetDouble());
        Assert.Equal(11, adapter.RootElement.GetProperty("projection_prng_key").GetInt32());

        var bad = CliRunner.Run("train", "--config", config, "-O", "d_intial=0.1", "--output", Path.Combine(_tmp, "bad"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("d_intial", bad.Stderr);
        Assert.DoesNotContain(" at ", bad.Stderr);
    }

    // Comparisons spawn one process per run: the 0.26M-parameter stories260K on a few lines keeps each run to seconds.
    private string[] TinyLm()
    {
        var data = Path.Combine(_tmp, "tiny-lm.jsonl");
        var lines = File.ReadLines(SharedPaths.Asset("data", "tinystories", "validation.jsonl")).Take(24);
        File.WriteAllLines(data, lines);
        return ["--model", Path.Combine(SharedPaths.RepoRoot, "assets", "models", "stories260K"), "--task", "lm", "--data", data, "--validation", data, "--max-steps", "2", "--batch-size", "4", "--max-length", "32"];
    }

    [Fact]
    public void Compare_writes_a_table_and_a_rerun_reuses_finished_runs()
    {
        var outDir = Path.Combine(_tmp, "cmp");
        string[] args = ["compare", "--methods", "lora,vera", "--seeds", "1", "--learning-rates", "0.001", .. TinyLm(), "--output", outDir];
        var first = CliRunner.Run(args);
        Assert.True(first.ExitCode == 0, first.Stderr + first.Stdout);
        var table = File.ReadAllText(Path.Combine(outDir, "compare.md"));
        Assert.Contains("| lora |", table);
        Assert.Contains("| vera |", table);
        Assert.DoesNotContain("reused", first.Stdout);
        var second = CliRunner.Run(args);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Equal(2, second.Stdout.Split("reused").Length - 1);
    }

    [Fact]
    public void Compare_with_select_on_first_seed_sweeps_rates_once_and_runs_other_seeds_at_the_best_rate()
    {
        var outDir = Path.Combine(_tmp, "sel");
        var r = CliRunner.Run(["compare", "--methods", "lora", "--seeds", "1,2", "--learning-rates", "0.0001,0.003", "--select-on-first-seed", .. TinyLm(), "--output", outDir]);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var runs = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "compare.json")));
        var list = runs.RootElement.EnumerateArray().Select(e => (Lr: e.GetProperty("learning_rate").GetDouble(), Seed: e.GetProperty("seed").GetInt32(), After: e.GetProperty("summary").GetProperty("after").GetDouble())).ToList();
        Assert.Equal(3, list.Count);
        var sweep = list.Where(x => x.Seed == 1).ToList();
        Assert.Equal(2, sweep.Count);
        var bestLr = sweep.MinBy(x => x.After).Lr; // the metric is the eval loss
        Assert.Equal(bestLr, Assert.Single(list, x => x.Seed == 2).Lr);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"| lora | {bestLr:G3} |"), File.ReadAllText(Path.Combine(outDir, "compare.md")));
    }
}
