using System.Text.Json;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.Core.Serving;

/// <summary>
/// <c>peft generate --adapter NAME=DIR … --prompt … --prompt-adapter NAME …</c>: one batch, each prompt with its adapter;
/// <c>--hotswap DIR</c>: the same prompts again after the loaded adapter's weights are replaced in place (<c>--hotswap-rank R</c>
/// pads the loaded adapter first, so larger ranks fit).
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public sealed class GenerateCliTests : IDisposable
{
    private static string Stories => SharedPaths.Asset("models", "stories260K");

    private readonly string _dir = Directory.CreateTempSubdirectory("peftsharp-servecli-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string SaveAdapter(string name, TargetModules targets, int seed) => SaveAdapter(name, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = targets }, seed);

    // A stories260K adapter of this config with random weights (B ≠ 0, so it changes the output).
    private string SaveAdapter(string name, AdapterConfig config, int seed)
    {
        torch.manual_seed(seed);
        using var model = AutoModel.FromPretrained(Stories);
        var peft = PeftModel.Create(model, config);
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.copy_(torch.randn_like(p) * 0.3);
            }
        }
        var folder = Path.Combine(_dir, name);
        PeftAdapterFiles.Save(peft, folder);
        return folder;
    }

    private static List<int> Ids(JsonElement row) => [.. row.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32())];

    [Fact]
    public void Each_prompt_s_ids_equal_a_single_prompt_run_with_its_adapter()
    {
        var a = SaveAdapter("a", TargetModules.Of("q_proj", "v_proj"), 1);
        var b = SaveAdapter("b", TargetModules.Of("k_proj", "down_proj"), 2);
        string[] common = ["generate", "--model", Stories, "--max-new-tokens", "12", "--json"];
        var mixed = CliRunner.Run([.. common, "--adapter", $"a={a}", "--adapter", $"b={b}",
            "--prompt", "Once upon a time", "--prompt", "Lily and Tom", "--prompt", "Once upon a time",
            "--prompt-adapter", "a", "--prompt-adapter", "b", "--prompt-adapter", AdapterRouting.BaseName]);
        Assert.True(mixed.ExitCode == 0, mixed.Stderr);
        using var doc = JsonDocument.Parse(mixed.Stdout);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(3, rows.Count);
        Assert.Equal("b", rows[1].GetProperty("adapter").GetString());

        (string Prompt, string[] Adapter)[] alone = [("Once upon a time", ["--adapter", a]), ("Lily and Tom", ["--adapter", b]), ("Once upon a time", [])];
        for (var i = 0; i < alone.Length; i++)
        {
            var single = CliRunner.Run([.. common, .. alone[i].Adapter, "--prompt", alone[i].Prompt]);
            Assert.True(single.ExitCode == 0, single.Stderr);
            using var s = JsonDocument.Parse(single.Stdout);
            Assert.Equal(Ids(s.RootElement), Ids(rows[i]));
        }
        Assert.NotEqual(Ids(rows[0]), Ids(rows[2]));
    }

    [Fact]
    public void A_prompt_adapter_count_that_differs_from_the_prompts_and_an_unknown_name_fail_cleanly()
    {
        var a = SaveAdapter("a", TargetModules.Of("q_proj"), 3);
        string[] common = ["generate", "--model", Stories, "--max-new-tokens", "2", "--adapter", $"a={a}", "--prompt", "Once", "--prompt", "Lily"];
        var count = CliRunner.Run([.. common, "--prompt-adapter", "a"]);
        Assert.NotEqual(0, count.ExitCode);
        Assert.Contains("--prompt-adapter is given 1 time(s) for 2 --prompt(s)", count.Stderr);
        Assert.DoesNotContain("   at ", count.Stderr);
        var unknown = CliRunner.Run([.. common, "--prompt-adapter", "a", "--prompt-adapter", "zz"]);
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("'zz'", unknown.Stderr);
    }

    // Each --hotswap block's greedy ids equal a fresh --adapter run of its folder; returns the fresh ids per folder.
    private static List<List<List<int>>> AssertBlocksEqualFreshLoads(string[] common, string[] folders, IReadOnlyList<JsonElement> blocks)
    {
        Assert.Equal(folders, blocks.Select(x => x.GetProperty("adapter_path").GetString()));
        var fresh = new List<List<List<int>>>();
        foreach (var (folder, block) in folders.Zip(blocks))
        {
            var alone = CliRunner.Run([.. common, "--adapter", folder]);
            Assert.True(alone.ExitCode == 0, alone.Stderr);
            using var d = JsonDocument.Parse(alone.Stdout);
            fresh.Add([.. d.RootElement.EnumerateArray().Select(Ids)]);
            Assert.Equal(fresh[^1], block.GetProperty("output").EnumerateArray().Select(Ids));
        }
        return fresh;
    }

    [Fact]
    public void Greedy_ids_after_each_hotswap_equal_a_fresh_load_of_that_adapter()
    {
        var qv = TargetModules.Of("q_proj", "v_proj");
        var a = SaveAdapter("a", new LoraConfig { Rank = 4, Alpha = 8, TargetModules = qv }, 4);
        var b = SaveAdapter("b", new LoraConfig { Rank = 4, Alpha = 3, TargetModules = qv }, 5);
        var small = SaveAdapter("small", new LoraConfig { Rank = 2, Alpha = 5, TargetModules = qv }, 6);
        string[] common = ["generate", "--model", Stories, "--max-new-tokens", "12", "--prompt", "Once upon a time", "--prompt", "Lily and Tom", "--json"];
        var swapped = CliRunner.Run([.. common, "--adapter", a, "--hotswap", b, "--hotswap", small]);
        Assert.True(swapped.ExitCode == 0, swapped.Stderr);
        using var doc = JsonDocument.Parse(swapped.Stdout);
        var blocks = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal([a, b, small], blocks.Select(x => x.GetProperty("adapter_path").GetString()));

        var fresh = AssertBlocksEqualFreshLoads(common, [a, b, small], blocks);
        Assert.NotEqual(fresh[0], fresh[1]);
        Assert.NotEqual(fresh[1], fresh[2]);

        var text = CliRunner.Run("generate", "--model", Stories, "--max-new-tokens", "4", "--prompt", "Once", "--adapter", a, "--hotswap", b);
        Assert.True(text.ExitCode == 0, text.Stderr);
        var headers = text.Stdout.Split('\n').Where(l => l.StartsWith("# adapter", StringComparison.Ordinal)).ToList();
        Assert.Equal([$"# adapter default: {a}", $"# adapter default: {b}"], headers);
    }

    [Fact]
    public void A_larger_rank_swap_fails_without_hotswap_rank_and_with_it_equals_a_fresh_load()
    {
        var qv = TargetModules.Of("q_proj", "v_proj");
        var a = SaveAdapter("a", new LoraConfig { Rank = 2, Alpha = 4, TargetModules = qv }, 11);
        var big = SaveAdapter("big", new LoraConfig { Rank = 6, Alpha = 5, TargetModules = qv }, 12);
        string[] common = ["generate", "--model", Stories, "--max-new-tokens", "12", "--prompt", "Once upon a time", "--prompt", "Lily and Tom", "--json"];

        var refused = CliRunner.Run([.. common, "--adapter", a, "--hotswap", big]);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("rank 6 is larger than the allocated 2", refused.Stderr);

        var padded = CliRunner.Run([.. common, "--adapter", a, "--hotswap", big, "--hotswap-rank", "8"]);
        Assert.True(padded.ExitCode == 0, padded.Stderr);
        using var doc = JsonDocument.Parse(padded.Stdout);
        var blocks = doc.RootElement.EnumerateArray().ToList();
        // The loaded adapter's block runs padded to rank 8: the padding must not change its output.
        var fresh = AssertBlocksEqualFreshLoads(common, [a, big], blocks);
        Assert.NotEqual(fresh[0], fresh[1]);

        var below = CliRunner.Run([.. common, "--adapter", a, "--hotswap", big, "--hotswap-rank", "1"]);
        Assert.Equal(1, below.ExitCode);
        Assert.Contains($"--hotswap-rank 1: {a}: ", below.Stderr);
        Assert.DoesNotContain("   at ", below.Stderr);
        var alonePad = CliRunner.Run([.. common, "--adapter", a, "--hotswap-rank", "8"]);
        Assert.Equal(1, alonePad.ExitCode);
        Assert.Contains("give --hotswap DIR too", alonePad.Stderr);
    }

    [Fact]
    public void A_hotswap_that_does_not_fit_fails_naming_the_folder_and_the_module()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("q_proj", "v_proj") }, 7);
        var targets = SaveAdapter("targets", new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("q_proj", "k_proj") }, 8);
        var big = SaveAdapter("big", new LoraConfig { Rank = 8, TargetModules = TargetModules.Of("q_proj", "v_proj") }, 9);
        var loha = SaveAdapter("loha", new PeftSharp.Methods.LoHa.LoHaConfig { Rank = 2, TargetModules = TargetModules.Of("q_proj", "v_proj") }, 10);
        string[] common = ["generate", "--model", Stories, "--max-new-tokens", "2", "--prompt", "Once", "--adapter", a];

        var other = CliRunner.Run([.. common, "--hotswap", targets]);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains($"{targets}: hot-swap into 'default'", other.Stderr);
        Assert.Contains("self_attn.k_proj.lora_", other.Stderr);
        Assert.DoesNotContain("   at ", other.Stderr);
        Assert.Contains($"# adapter default: {a}", other.Stdout);

        var larger = CliRunner.Run([.. common, "--hotswap", big]);
        Assert.Equal(1, larger.ExitCode);
        Assert.Contains(big, larger.Stderr);
        Assert.Contains("q_proj.lora_", larger.Stderr);
        Assert.Contains("rank 8 is larger than the allocated 2", larger.Stderr);

        var method = CliRunner.Run([.. common, "--hotswap", loha]);
        Assert.Equal(1, method.ExitCode);
        Assert.Contains($"{loha}: hot-swap into 'default': the loaded adapter is LORA, the new adapter is LOHA", method.Stderr);

        var noAdapter = CliRunner.Run("generate", "--model", Stories, "--prompt", "Once", "--hotswap", a);
        Assert.Equal(1, noAdapter.ExitCode);
        Assert.Contains("--hotswap replaces the weights of a loaded adapter", noAdapter.Stderr);
    }
}
