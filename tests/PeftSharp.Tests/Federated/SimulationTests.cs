using PeftSharp.Core;
using PeftSharp.Federated;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Federated;

/// <summary>The client side (adapter → update) and the whole round protocol on the bundled MiniLM with a few steps.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class SimulationTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-federated-").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private static nn.Module TwoLayers() => nn.Sequential(("fc1", nn.Linear(6, 5, dtype: float64)), ("fc2", nn.Linear(5, 3, dtype: float64)));

    [Fact]
    public void A_single_client_stacked_and_merged_changes_the_weights_as_merging_its_adapter_does()
    {
        torch.manual_seed(11);
        var model = TwoLayers();
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 2, Alpha = 6, TargetModules = TargetModules.Of("fc1", "fc2"), InitLoraWeights = InitLoraWeights.Random });
        using var update = ClientUpdate.FromAdapter(peft, "default", "solo", 10, "toy");
        Assert.Equal(3.0, update.Modules["fc1"].Scaling);
        peft.MergeAndUnload();
        var mergedByPeft = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

        torch.manual_seed(11);
        var fresh = TwoLayers();
        using var global = FederatedAggregation.Stack([update]);
        global.MergeInto(fresh);
        foreach (var (name, p) in fresh.named_parameters())
        {
            Assert.True((p - mergedByPeft[name]).abs().max().item<double>() < 1e-12, name);
        }
    }

    [Fact]
    public void Client_update_copies_the_factors_so_later_training_does_not_change_it()
    {
        torch.manual_seed(3);
        var peft = PeftModel.Create(TwoLayers(), new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("fc1"), InitLoraWeights = InitLoraWeights.Random });
        using var update = ClientUpdate.FromAdapter(peft, "default", "c", 1, "toy");
        var before = update.Modules["fc1"].B.clone();
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.add_(1.0);
            }
        }
        Assert.Equal(0.0, (update.Modules["fc1"].B - before).abs().max().item<double>());
        Assert.Equal(["fc1"], update.Modules.Keys);
    }

    private string Subset(string file, int lines)
    {
        var path = Path.Combine(_tmp, file);
        File.WriteAllLines(path, File.ReadLines(Path.Combine(SharedPaths.RepoRoot, "assets", "data", "sentiment_sentences", file)).Where((_, i) => i % 7 == 0).Take(lines));
        return path;
    }

    [Fact]
    public void Simulation_writes_one_row_per_round_and_aggregation_from_the_same_start()
    {
        var output = Path.Combine(_tmp, "run");
        var result = FederatedSimulation.Run(new FederatedOptions
        {
            Data = Subset("train.jsonl", 48),
            Validation = Subset("test.jsonl", 16),
            Clients = 2,
            Rounds = 1,
            Ranks = [2, 4],
            Split = "dirichlet:1",
            Aggregations = AggregationKinds.All,
            StepsPerClient = 2,
            BatchSize = 4,
            MaxLength = 16,
            Seeds = [5],
            Output = output,
        });
        // Heterogeneous ranks: FedIT averaging is skipped with a note; stack and zeropad run rounds 0 and 1.
        Assert.Single(result.Notes);
        Assert.Equal(["stack", "zeropad"], result.Rounds.Select(r => r.Aggregation).Distinct());
        Assert.Equal(4, result.Rounds.Count);
        var start = result.Rounds.Where(r => r.Round == 0).ToList();
        Assert.Equal(start[0].EvalLoss, start[1].EvalLoss);
        var stack = result.Rounds.Single(r => r.Aggregation == "stack" && r.Round == 1);
        var pad = result.Rounds.Single(r => r.Aggregation == "zeropad" && r.Round == 1);
        Assert.Equal(6, stack.GlobalRank);
        Assert.Equal(4, pad.GlobalRank);
        Assert.NotEqual(start[0].EvalLoss, stack.EvalLoss);
        Assert.True(stack.AggregationError < 1e-5, $"stack ΔW error {stack.AggregationError}");
        Assert.True(pad.AggregationError > stack.AggregationError);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(output, FederatedReport.MetricsFile)).Length);
        Assert.Contains("| round | stack | zeropad |", File.ReadAllText(Path.Combine(output, FederatedReport.MarkdownFile)));
        Assert.Equal(48, result.Shards[5].Sum(s => s.Indices.Count));
    }

    [Fact]
    public void Averaging_alone_with_heterogeneous_ranks_is_a_clear_error_from_the_cli()
    {
        var r = CliRunner.Run("federated", "simulate", "--clients", "2", "--ranks", "4,8", "--aggregation", "avg", "--output", Path.Combine(_tmp, "x"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("avg (FedIT) needs one rank", r.Stderr);
        Assert.Contains("4,8", r.Stderr);
    }

    [Fact]
    public void A_bad_split_or_rank_count_is_a_clear_error_from_the_cli()
    {
        var split = CliRunner.Run("federated", "simulate", "--split", "dirichlet:0", "--output", Path.Combine(_tmp, "x"));
        Assert.Equal(1, split.ExitCode);
        Assert.Contains("dirichlet:α", split.Stderr);
        var ranks = CliRunner.Run("federated", "simulate", "--clients", "3", "--ranks", "4,8", "--output", Path.Combine(_tmp, "x"));
        Assert.Equal(1, ranks.ExitCode);
        Assert.Contains("2 values for 3 clients", ranks.Stderr);
    }
}
