using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Tests.Methods;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using Xunit.Abstractions;

namespace PeftSharp.Tests.Merging;

/// <summary><c>peft merge-adapters</c> writes PEFT-format folders whose logits are PEFT's; bad input is one line and exit code 1.</summary>
public sealed class MergeAdaptersCliTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-merge-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private static string[] Sources => [MergeFixture.SourceFolder("a"), MergeFixture.SourceFolder("b")];

    private double LogitsDiff(string folder, string expectedKey)
    {
        var manifest = ModelFixtures.Manifest;
        using var model = PeftFixtureParityTests.LoadBase(manifest["bases"]![MergeFixture.Case["base"]!.GetValue<string>()]!.AsObject());
        PeftAdapterFiles.FromPretrained(model, folder);
        return ModelFixtures.MaxAbsDiff(MergeFixture.Logits(model), MergeFixture.Expected(expectedKey));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("cat")]
    [InlineData("svd")]
    [InlineData("ties")]
    public void Written_adapter_reproduces_PEFT_logits_within_1e4(string name)
    {
        var kw = MergeFixture.Combination(name)["kwargs"]!.AsObject();
        var outDir = Path.Combine(_tmp, name);
        var args = new List<string> { "merge-adapters", "--combination", name, "--weights", "0.7,0.5", "--out", outDir };
        if (kw["density"] is { } d)
        {
            args.AddRange(["--density", d.ToJsonString()]);
        }
        // No --base-model: base_model_name_or_path ("bases/llama") is found in a folder above the adapter.
        var r = CliRunner.Run([.. args, .. Sources]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("wrote", r.Stdout);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, PeftAdapterFiles.ConfigFileName)))!;
        var peftConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(MergeFixture.CombinedFolder(name), PeftAdapterFiles.ConfigFileName)))!;
        Assert.Equal(peftConfig["r"]!.GetValue<int>(), config["r"]!.GetValue<int>());
        Assert.Equal(peftConfig["lora_alpha"]!.GetValue<double>(), config["lora_alpha"]!.GetValue<double>());
        var diff = LogitsDiff(outDir, "logits_comb_" + name);
        output.WriteLine($"{name}: {diff:E2}");
        Assert.InRange(diff, 0, MergeFixture.Tolerance);
    }

    [Fact]
    public void Lego_with_clusters_equal_to_total_rank_writes_PEFTs_cat()
    {
        var outDir = Path.Combine(_tmp, "lego");
        var r = CliRunner.Run(["merge-adapters", "--combination", "lego", "--clusters", "16", "--seed", "4", "--weights", "0.7,0.5",
            "--base-model", MergeFixture.BaseFolder, "--out", outDir, .. Sources]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.InRange(LogitsDiff(outDir, "logits_comb_cat"), 0, MergeFixture.Tolerance);
    }

    [Theory]
    [InlineData("--weights", "0.7", "adapter folder(s)")]
    [InlineData("--weights", "0.7,x", "'x' is not a number")]
    [InlineData("--combination", "mean", "Invalid combination_type: 'mean'")]
    [InlineData("--combination", "ties", "needs density")]
    [InlineData("--combination", "lego", "needs --clusters")]
    [InlineData("--clusters", "3", "--clusters applies only to --combination lego")]
    [InlineData("--majority-sign", "most", "--majority-sign must be total or frequency")]
    public void Bad_arguments_give_one_line_and_exit_code_1(string flag, string value, string message)
    {
        var args = new List<string> { "merge-adapters", "--out", Path.Combine(_tmp, "bad") };
        if (flag != "--weights")
        {
            args.AddRange(["--weights", "0.7,0.5"]);
        }
        args.AddRange([flag, value, .. Sources]);
        var r = CliRunner.Run([.. args]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(_tmp, "bad")));
    }

    [Fact]
    public void Unresolvable_base_model_names_itself_and_asks_for_base_model()
    {
        var copy = Path.Combine(_tmp, "a");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(MergeFixture.SourceFolder("a")))
        {
            File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        }
        var r = CliRunner.Run(["merge-adapters", "--weights", "1", "--out", Path.Combine(_tmp, "out"), copy]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("base model 'bases/llama'", r.Stderr);
        Assert.Contains("--base-model", r.Stderr);
    }
}
