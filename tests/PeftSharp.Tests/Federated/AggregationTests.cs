using PeftSharp.Core;
using PeftSharp.Federated;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Federated;

public class AggregationTests
{
    private static ClientUpdate Client(string id, long n, double scale, double[,] b, double[,] a, string baseModel = "m", string module = "layer") =>
        new(id, n, baseModel, new Dictionary<string, ModuleFactors> { [module] = new(torch.tensor(a, float64), torch.tensor(b, float64), scale) });

    private static void AssertClose(double[,] expected, Tensor actual, double tol)
    {
        Assert.Equal([expected.GetLength(0), expected.GetLength(1)], actual.shape);
        for (var i = 0; i < expected.GetLength(0); i++)
        {
            for (var j = 0; j < expected.GetLength(1); j++)
            {
                Assert.InRange(actual[i, j].item<double>(), expected[i, j] - tol, expected[i, j] + tol);
            }
        }
    }

    // Random clients with different ranks, scales and data sizes, on two modules; seeded so the gap bound is stable.
    private static List<ClientUpdate> RandomClients(int[] ranks, long[] sizes, double[] scales, int seed)
    {
        var g = new Generator((ulong)seed);
        return ranks.Select((r, k) => new ClientUpdate($"c{k}", sizes[k], "m", new Dictionary<string, ModuleFactors>
        {
            ["q"] = new(torch.randn(r, 32, float64, generator: g), torch.randn(24, r, float64, generator: g), scales[k]),
            ["v"] = new(torch.randn(r, 32, float64, generator: g), torch.randn(16, r, float64, generator: g), scales[k]),
        })).ToList();
    }

    // The target: Σ p_k s_k B_k A_k, summed term by term (independent of the stacking code).
    private static Tensor ExactWeightedSum(IReadOnlyList<ClientUpdate> clients, string module)
    {
        double total = clients.Sum(c => c.DataSize);
        Tensor? sum = null;
        foreach (var c in clients)
        {
            var f = c.Modules[module];
            var term = f.B.matmul(f.A) * (c.DataSize / total * f.Scaling);
            sum = sum is null ? term : sum + term;
        }
        return sum!;
    }

    private static double RelativeError(Tensor actual, Tensor expected) =>
        (actual - expected).norm().item<double>() / expected.norm().item<double>();

    [Fact]
    public void Client_weights_are_data_sizes_normalised_to_one()
    {
        var clients = new[] { Client("a", 10, 1, new double[,] { { 1 } }, new double[,] { { 1 } }), Client("b", 30, 1, new double[,] { { 1 } }, new double[,] { { 1 } }) };
        Assert.Equal([0.25, 0.75], FederatedAggregation.ClientWeights(clients));
    }

    [Fact]
    public void Homogeneous_orthogonal_clients_stack_to_the_exact_mean_and_average_to_the_cross_term_matrix()
    {
        // Reference §3: B1 = [1;0], A1 = [1,0], B2 = [0;1], A2 = [0,1], p = 0.5 each.
        var clients = new[]
        {
            Client("c1", 5, 1, new double[,] { { 1 }, { 0 } }, new double[,] { { 1, 0 } }),
            Client("c2", 5, 1, new double[,] { { 0 }, { 1 } }, new double[,] { { 0, 1 } }),
        };
        using var stack = FederatedAggregation.Stack(clients);
        using var avg = FederatedAggregation.Average(clients);
        AssertClose(new double[,] { { 0.5, 0 }, { 0, 0.5 } }, stack.Delta("layer"), 1e-12);
        AssertClose(new double[,] { { 0.25, 0.25 }, { 0.25, 0.25 } }, avg.Delta("layer"), 1e-12);
    }

    [Fact]
    public void Heterogeneous_ranks_and_scales_stack_to_the_hand_computed_sum()
    {
        // Reference §3: r1 = 1, s1 = 2; r2 = 2, s2 = 0.5; p = [0.25, 0.75] → [[0.5, 0.875], [1.375, 1.0]].
        var clients = new[]
        {
            Client("c1", 1, 2.0, new double[,] { { 1 }, { 2 } }, new double[,] { { 1, 1 } }),
            Client("c2", 3, 0.5, new double[,] { { 1, 0 }, { 0, 1 } }, new double[,] { { 0, 1 }, { 1, 0 } }),
        };
        using var stack = FederatedAggregation.Stack(clients);
        var f = stack.Modules["layer"];
        Assert.Equal(3, f.Rank);
        Assert.Equal(1.0, f.Scaling);
        AssertClose(new double[,] { { 1, 1, 0 }, { 2, 0, 1 } }, f.B, 1e-12);
        AssertClose(new double[,] { { 0.5, 0.5 }, { 0, 0.375 }, { 0.375, 0 } }, f.A, 1e-12);
        AssertClose(new double[,] { { 0.5, 0.875 }, { 1.375, 1.0 } }, stack.Delta("layer"), 1e-12);
    }

    [Fact]
    public void Stacking_equals_the_weighted_sum_of_client_deltas_within_1e6_for_heterogeneous_ranks()
    {
        var clients = RandomClients([4, 8, 8, 16], [100, 300, 50, 550], [2, 2, 0.5, 1], seed: 1);
        using var stack = FederatedAggregation.Stack(clients);
        foreach (var m in new[] { "q", "v" })
        {
            Assert.Equal(36, stack.Modules[m].Rank);
            Assert.True(RelativeError(stack.Delta(m), ExactWeightedSum(clients, m)) < 1e-6);
            Assert.True((stack.Delta(m) - ExactWeightedSum(clients, m)).abs().max().item<double>() < 1e-6);
        }
        clients.ForEach(c => c.Dispose());
    }

    [Fact]
    public void Averaging_A_and_B_misses_the_weighted_sum_by_more_than_half_its_norm_on_a_generic_case()
    {
        // Independent random factors (fresh client adapters): (Σp B)(Σp A) keeps only Σp² BA plus cross terms.
        var clients = RandomClients([8, 8, 8, 8], [100, 300, 50, 550], [2, 2, 2, 2], seed: 2);
        using var avg = FederatedAggregation.Average(clients);
        using var pad = FederatedAggregation.ZeroPad(clients);
        using var stack = FederatedAggregation.Stack(clients);
        foreach (var m in new[] { "q", "v" })
        {
            var exact = ExactWeightedSum(clients, m);
            Assert.True(RelativeError(stack.Delta(m), exact) < 1e-6);
            Assert.True(RelativeError(avg.Delta(m), exact) > 0.5, $"avg error {RelativeError(avg.Delta(m), exact)}");
            // Equal ranks: zero-padding pads nothing, so it is plain averaging.
            Assert.True(RelativeError(pad.Delta(m), avg.Delta(m)) < 1e-12);
        }
        Assert.True(FederatedAggregation.AggregationError(stack, clients) < 1e-6);
        Assert.True(FederatedAggregation.AggregationError(avg, clients) > 0.5);
        clients.ForEach(c => c.Dispose());
    }

    [Fact]
    public void Zero_padding_misses_the_weighted_sum_for_heterogeneous_ranks()
    {
        var clients = RandomClients([4, 8, 8, 16], [100, 300, 50, 550], [2, 2, 2, 2], seed: 3);
        using var pad = FederatedAggregation.ZeroPad(clients);
        Assert.Equal(16, pad.Modules["q"].Rank);
        Assert.True(RelativeError(pad.Delta("q"), ExactWeightedSum(clients, "q")) > 0.5);
        clients.ForEach(c => c.Dispose());
    }

    [Fact]
    public void Zero_padding_pads_A_rows_and_B_columns_with_zeros_before_averaging()
    {
        // r1 = 1, r2 = 2, p = 0.5 each, s = 1: A = 0.5·([a1; 0] + A2), B = 0.5·([b1 0] + B2).
        var clients = new[]
        {
            Client("c1", 1, 1, new double[,] { { 2 }, { 4 } }, new double[,] { { 1, 3 } }),
            Client("c2", 1, 1, new double[,] { { 1, 0 }, { 0, 1 } }, new double[,] { { 1, 0 }, { 0, 1 } }),
        };
        using var pad = FederatedAggregation.ZeroPad(clients);
        AssertClose(new double[,] { { 1, 1.5 }, { 0, 0.5 } }, pad.Modules["layer"].A, 1e-12);
        AssertClose(new double[,] { { 1.5, 0 }, { 2, 0.5 } }, pad.Modules["layer"].B, 1e-12);
    }

    [Fact]
    public void Dense_weights_are_averaged_with_the_data_size_weights()
    {
        var one = new double[,] { { 1 } };
        var c1 = new ClientUpdate("a", 1, "m", new Dictionary<string, ModuleFactors> { ["l"] = new(torch.tensor(one, float64), torch.tensor(one, float64), 1) },
            new Dictionary<string, Tensor> { ["classifier.weight"] = torch.tensor(new double[] { 4, 0 }, float64) });
        var c2 = new ClientUpdate("b", 3, "m", new Dictionary<string, ModuleFactors> { ["l"] = new(torch.tensor(one, float64), torch.tensor(one, float64), 1) },
            new Dictionary<string, Tensor> { ["classifier.weight"] = torch.tensor(new double[] { 0, 8 }, float64) });
        foreach (var kind in AggregationKinds.All)
        {
            using var g = FederatedAggregation.Aggregate([c1, c2], kind);
            Assert.Equal([1.0, 6.0], g.DenseWeights["classifier.weight"].data<double>().ToArray());
        }
    }

    [Fact]
    public void Clients_with_different_target_modules_are_rejected_naming_both_clients_and_modules()
    {
        var a = Client("alice", 1, 1, new double[,] { { 1 } }, new double[,] { { 1 } }, module: "q_proj");
        var b = Client("bob", 1, 1, new double[,] { { 1 } }, new double[,] { { 1 } }, module: "v_proj");
        var e = Assert.Throws<PeftException>(() => FederatedAggregation.Stack([a, b]));
        Assert.Contains("'alice'", e.Message);
        Assert.Contains("'bob'", e.Message);
        Assert.Contains("q_proj", e.Message);
        Assert.Contains("v_proj", e.Message);
    }

    [Fact]
    public void Clients_with_different_base_models_are_rejected_naming_both()
    {
        var a = Client("alice", 1, 1, new double[,] { { 1 } }, new double[,] { { 1 } }, baseModel: "models/llama-a");
        var b = Client("bob", 1, 1, new double[,] { { 1 } }, new double[,] { { 1 } }, baseModel: "models/llama-b");
        var e = Assert.Throws<ModelMismatchException>(() => FederatedAggregation.Stack([a, b]));
        Assert.Contains("models/llama-a", e.Message);
        Assert.Contains("models/llama-b", e.Message);
        Assert.Contains("'bob'", e.Message);
    }

    [Fact]
    public void Same_module_with_different_layer_sizes_is_rejected()
    {
        var a = Client("alice", 1, 1, new double[,] { { 1 }, { 1 } }, new double[,] { { 1 } });
        var b = Client("bob", 1, 1, new double[,] { { 1 } }, new double[,] { { 1 } });
        var e = Assert.Throws<ModelMismatchException>(() => FederatedAggregation.ZeroPad([a, b]));
        Assert.Contains("[2, 1]", e.Message);
        Assert.Contains("[1, 1]", e.Message);
    }

    [Fact]
    public void A_client_without_data_is_rejected()
    {
        var a = Client("alice", 4, 1, new double[,] { { 1 } }, new double[,] { { 1 } });
        var b = Client("bob", 0, 1, new double[,] { { 1 } }, new double[,] { { 1 } });
        var e = Assert.Throws<PeftException>(() => FederatedAggregation.Stack([a, b]));
        Assert.Contains("'bob'", e.Message);
    }

    [Fact]
    public void Averaging_heterogeneous_ranks_is_rejected_and_points_to_stack_or_zeropad()
    {
        var a = Client("alice", 1, 1, new double[,] { { 1 } }, new double[,] { { 1 } });
        var b = Client("bob", 1, 1, new double[,] { { 1, 1 } }, new double[,] { { 1 }, { 1 } });
        var e = Assert.Throws<PeftException>(() => FederatedAggregation.Average([a, b]));
        Assert.Contains("zeropad", e.Message);
        Assert.Contains("'bob'", e.Message);
    }

    [Fact]
    public void Merging_a_stacked_update_adds_its_delta_to_linear_weights_and_overwrites_dense_ones()
    {
        var model = nn.Sequential(("fc", nn.Linear(3, 2, hasBias: true, dtype: float64)));
        var before = ((TorchSharp.Modules.Linear)model[0]).weight!.detach().clone();
        var c = new ClientUpdate("a", 2, "m", new Dictionary<string, ModuleFactors>
        {
            ["fc"] = new(torch.tensor(new double[,] { { 1, 2, 3 } }, float64), torch.tensor(new double[,] { { 1 }, { -1 } }, float64), 0.5),
        }, new Dictionary<string, Tensor> { ["fc.bias"] = torch.tensor(new double[] { 7, 9 }, float64) });
        using var g = FederatedAggregation.Stack([c]);
        g.MergeInto(model);
        var after = ((TorchSharp.Modules.Linear)model[0]).weight!;
        AssertClose(new double[,] { { 0.5, 1, 1.5 }, { -0.5, -1, -1.5 } }, after - before, 1e-12);
        Assert.Equal([7.0, 9.0], ((TorchSharp.Modules.Linear)model[0]).bias!.data<double>().ToArray());
    }

    [Fact]
    public void Merging_into_a_model_without_the_module_changes_nothing_and_names_it()
    {
        var model = nn.Sequential(("fc", nn.Linear(3, 2, hasBias: false, dtype: float64)));
        var before = ((TorchSharp.Modules.Linear)model[0]).weight!.detach().clone();
        var c = new ClientUpdate("a", 2, "m", new Dictionary<string, ModuleFactors>
        {
            ["fc"] = new(torch.ones(1, 3, float64), torch.ones(2, 1, float64), 1),
            ["other"] = new(torch.ones(1, 3, float64), torch.ones(2, 1, float64), 1),
        });
        using var g = FederatedAggregation.Stack([c]);
        var e = Assert.Throws<ModelMismatchException>(() => g.MergeInto(model));
        Assert.Contains("'other'", e.Message);
        Assert.Equal(0.0, (((TorchSharp.Modules.Linear)model[0]).weight! - before).abs().max().item<double>());
    }

    [Fact]
    public void Aggregation_names_parse_and_all_expands_to_every_kind()
    {
        Assert.Equal(AggregationKinds.All, AggregationKinds.Parse("all"));
        Assert.Equal([AggregationKind.Stack, AggregationKind.ZeroPad], AggregationKinds.Parse("stack,zeropad"));
        Assert.Throws<PeftException>(() => AggregationKinds.Parse("fedprox"));
    }

    [Fact]
    public void Hundred_aggregations_leak_no_tensors()
    {
        var clients = RandomClients([4, 4, 4, 4], [10, 30, 5, 55], [2, 2, 1, 2], seed: 4);
        var live = 0L;
        for (var step = 0; step < 100; step++)
        {
            foreach (var kind in AggregationKinds.All)
            {
                using var g = FederatedAggregation.Aggregate(clients, kind);
                FederatedAggregation.AggregationError(g, clients);
                g.Delta("q").Dispose();
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        clients.ForEach(c => c.Dispose());
    }
}
