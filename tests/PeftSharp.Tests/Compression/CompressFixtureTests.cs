using System.Text.Json.Nodes;
using PeftSharp.Compression;
using PeftSharp.IO;
using PeftSharp.Models;
using PeftSharp.Tests.Methods;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Compression;

/// <summary>
/// Compression of PEFT-made adapters (the fixtures): at the source rank the result reproduces PEFT's logits (so the
/// written folder is a correct PEFT LoRA); <c>peft compress</c> writes loadable folders and fails in one line.
/// </summary>
public sealed class CompressFixtureTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-compress-fx-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private static JsonObject Case(string id) => ModelFixtures.Manifest["cases"]![id]!.AsObject();

    private static string AdapterOf(string id) => SharedPaths.Fixture(Case(id)["adapter"]!.GetValue<string>());

    private static double LogitsDiff(string caseId, string adapterFolder)
    {
        var c = Case(caseId);
        var baseEntry = ModelFixtures.Manifest["bases"]![c["base"]!.GetValue<string>()]!.AsObject();
        var (ids, mask, types) = ModelFixtures.Inputs(SharedPaths.Fixture(c["input"]?.GetValue<string>() ?? baseEntry["input"]!.GetValue<string>()));
        var expected = ModelFixtures.Expected(c["expected"]!["logits_adapter"]!.GetValue<string>());
        using var _ = torch.no_grad();
        if (baseEntry["kind"]!.GetValue<string>() == "torch-module")
        {
            var net = ToyConvNet.FromFixture();
            PeftAdapterFiles.FromPretrained(net, adapterFolder);
            return ModelFixtures.MaxAbsDiff(net.call(ids), expected);
        }
        using PretrainedModel model = PeftFixtureParityTests.LoadBase(baseEntry);
        PeftAdapterFiles.FromPretrained(model, adapterFolder);
        return ModelFixtures.MaxAbsDiff(model.Forward(ids, mask, types).Logits, expected);
    }

    [Theory]
    [InlineData("llama-lora-qv")]
    [InlineData("llama-lora-patterns-layers")]
    [InlineData("llama-lora-all-linear-rslora")]
    [InlineData("toy-conv-lora")] // Embedding, Conv2d and Linear layouts
    public void Compressing_to_the_source_rank_reproduces_PEFT_logits_within_1e4(string caseId)
    {
        var source = AdapterOf(caseId);
        var config = (PeftSharp.Methods.Lora.LoraConfig)PeftAdapterFiles.ReadConfig(source);
        var maxRank = config.RankPattern.Values.Append(config.Rank).Max();
        // With rank patterns, a budget that buys every singular value keeps each module at its own rank.
        var options = config.RankPattern.Count > 0 ? new CompressionOptions { Budget = long.MaxValue / 2 } : new CompressionOptions { Rank = maxRank };
        using var compressed = LoraCompression.CompressFolder(source, options);
        Assert.All(compressed.Modules, m => Assert.Equal(m.SourceRank, m.TargetRank));
        var outDir = Path.Combine(_tmp, caseId);
        compressed.Save(outDir);
        Assert.InRange(LogitsDiff(caseId, outDir), 0, Case(caseId)["tolerance"]?.GetValue<double>() ?? 1e-4);
    }

    [Theory]
    [InlineData("llama-loha-qv")]
    [InlineData("llama-lokr-qv")]
    [InlineData("llama-vera-qv")]
    [InlineData("llama-randlora-qv")]
    [InlineData("llama-miss-qv")]
    [InlineData("llama-miss-bat-qv")]
    [InlineData("llama-bone-qv")]
    [InlineData("llama-bone-bat-qv")]
    [InlineData("llama-dora-qv")]
    [InlineData("llama-lora-init-pissa")]
    [InlineData("llama-lora-init-olora")]
    [InlineData("toy-conv-dora")] // DoRA on Embedding, Conv2d and Linear
    public void Another_method_compressed_at_its_numerical_rank_reproduces_PEFT_logits(string caseId)
    {
        var source = AdapterOf(caseId);
        var baseEntry = ModelFixtures.Manifest["bases"]![Case(caseId)["base"]!.GetValue<string>()]!.AsObject();
        using nn.Module model = baseEntry["kind"]!.GetValue<string>() == "torch-module" ? ToyConvNet.FromFixture() : PeftFixtureParityTests.LoadBase(baseEntry);
        using var compressed = LoraCompression.CompressFolder(source, new CompressionOptions { Budget = long.MaxValue / 4 }, model);
        var outDir = Path.Combine(_tmp, caseId);
        compressed.Save(outDir);
        Assert.Equal("LORA", PeftAdapterFiles.ReadConfigJson(outDir).PeftType);
        Assert.InRange(LogitsDiff(caseId, outDir), 0, Case(caseId)["tolerance"]?.GetValue<double>() ?? 1e-4);
    }

    [Theory]
    [InlineData("llama-lora-qv", 2, "r 8 -> 2")] // from the factors alone
    [InlineData("llama-loha-qv", 3, "-> 3")] // on the base model its config names
    public void Cli_writes_a_peft_lora_folder_at_the_target_rank(string caseId, int rank, string reported)
    {
        var outDir = Path.Combine(_tmp, "cli-" + caseId);
        var r = CliRunner.Run("compress", AdapterOf(caseId), "--rank", rank.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains(reported, r.Stdout);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, PeftAdapterFiles.ConfigFileName)))!;
        Assert.Equal("LORA", json["peft_type"]!.GetValue<string>());
        Assert.Equal(rank, json["r"]!.GetValue<int>());
        using var file = PeftAdapterFiles.OpenWeights(outDir);
        // q and v in both layers of the fixture llama, and nothing of the source method's own tensors.
        Assert.Equal(4, file.Entries.Count(e => e.Name.EndsWith("lora_A.weight", StringComparison.Ordinal) && e.Shape[0] == rank));
        Assert.All(file.Entries, e => Assert.Matches(@"\.lora_[AB]\.weight$", e.Name));
        // Truncation moves the logits, but they stay finite and the folder loads on the PEFT base.
        Assert.True(double.IsFinite(LogitsDiff(caseId, outDir)));
    }

    [Theory]
    [InlineData("llama-lora-qv", "--rank 99", "--rank", "99")]
    [InlineData("llama-loha-qv", "--rank 99", "--rank", "99")]
    [InlineData("llama-lora-qv", "--budget", "--budget", "10")]
    public void Cli_errors_are_one_line_with_exit_code_1(string caseId, string expected, string flag, string value)
    {
        var r = CliRunner.Run("compress", AdapterOf(caseId), flag, value, "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(Path.Combine(_tmp, "bad")));
    }

    [Fact]
    public void Cli_randomized_svd_writes_the_target_rank_and_refuses_a_budget_in_one_line()
    {
        var outDir = Path.Combine(_tmp, "cli-randomized");
        var r = CliRunner.Run("compress", AdapterOf("llama-loha-qv"), "--rank", "2", "--svd", "randomized", "--seed", "3", "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using (var file = PeftAdapterFiles.OpenWeights(outDir))
        {
            Assert.Equal(4, file.Entries.Count(e => e.Name.EndsWith("lora_A.weight", StringComparison.Ordinal) && e.Shape[0] == 2));
        }
        Assert.True(double.IsFinite(LogitsDiff("llama-loha-qv", outDir)));

        var bad = CliRunner.Run("compress", AdapterOf("llama-loha-qv"), "--rank", "2", "--budget", "1000", "--svd", "randomized", "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--svd randomized", bad.Stderr);
        Assert.Single(bad.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(Path.Combine(_tmp, "bad")));
    }

    [Fact]
    public void Cli_error_for_a_base_model_that_does_not_load_is_one_line()
    {
        var missing = Path.Combine(_tmp, "no-such-model");
        var r = CliRunner.Run("compress", AdapterOf("llama-dora-qv"), "--rank", "2", "--model", missing, "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(missing, r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(Path.Combine(_tmp, "bad")));
    }
}
