using System.Text.Json;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.Core.Serving;

/// <summary><c>peft generate --adapter NAME=DIR … --prompt … --prompt-adapter NAME …</c>: one batch, each prompt with its adapter.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public sealed class GenerateCliTests : IDisposable
{
    private static string Stories => SharedPaths.Asset("models", "stories260K");

    private readonly string _dir = Directory.CreateTempSubdirectory("peftsharp-servecli-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string SaveAdapter(string name, TargetModules targets, int seed)
    {
        torch.manual_seed(seed);
        using var model = AutoModel.FromPretrained(Stories);
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = targets });
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
}
