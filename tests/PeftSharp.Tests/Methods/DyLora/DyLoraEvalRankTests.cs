using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.DyLora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Tokenization;
using PeftSharp.Training.Jobs;
using TorchSharp;

namespace PeftSharp.Tests.Methods.DyLora;

/// <summary><c>peft eval --rank b</c> on a DyLoRA adapter of the bundled stories260K model, for every b.</summary>
[Collection(TorchRngCollection.Name)]
public class DyLoraEvalRankTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-dylora-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private static string Stories => SharedPaths.Asset("models", "stories260K");

    [Fact]
    public void Eval_rank_gives_a_loss_for_every_b_the_full_rank_by_default_and_rejects_b_above_r()
    {
        var data = Path.Combine(_tmp, "val.jsonl");
        File.WriteAllLines(data, File.ReadLines(SharedPaths.Asset("data", "tinystories", "validation.jsonl")).Take(8));
        var adapter = Path.Combine(_tmp, "adapter");
        torch.manual_seed(3);
        using (var model = AutoModel.FromPretrained(Stories))
        {
            var peft = PeftModel.Create(model, new DyLoraConfig { Rank = 3, Alpha = 6, TargetModules = TargetModules.Of("q_proj", "v_proj") });
            using (torch.no_grad())
            {
                foreach (var l in peft.AdapterLayers().Select(l => l.Layer).OfType<DyLoraLayer>())
                {
                    l.B("default").copy_(torch.randn_like(l.B("default")) * 0.05);
                }
            }
            PeftAdapterFiles.Save(peft, adapter);
        }
        var tokenizer = HfTokenizer.FromFolder(Stories);
        double Eval(int? rank)
        {
            using var model = AutoModel.FromPretrained(Stories);
            PeftAdapterFiles.FromPretrained(model, adapter);
            return EvalJob.Run(model, tokenizer, data, new EvalOptions { Rank = rank, MaxLength = 32 }).Loss!.Value;
        }
        var losses = Enumerable.Range(1, 3).Select(b => Eval(b)).ToList();
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.Equal(3, losses.Distinct().Count());
        Assert.Equal(losses[2], Eval(null));
        Assert.Throws<PeftException>(() => Eval(4));

        // The CLI flag reaches the same code path.
        var cli = CliRunner.Run("eval", "--model", Stories, "--adapter", adapter, "--data", data, "--max-length", "32", "--rank", "2", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        Assert.Equal(losses[1], System.Text.Json.JsonDocument.Parse(cli.Stdout).RootElement.GetProperty("loss").GetDouble(), 6);
        var refused = CliRunner.Run("eval", "--model", Stories, "--adapter", adapter, "--data", data, "--rank", "4");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("rank 4 is outside 1..3", refused.Stderr + refused.Stdout);
    }
}
