using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Lora;

/// <summary>
/// LoRA's batched mixed-batch path (per-row gathered factors, two batched matmuls): each row must equal that row run
/// alone through the model with its adapter active (or disabled for <c>__base__</c>), and the path must be taken exactly
/// when every routed adapter of the layer is plain LoRA with no live dropout.
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class LoraMixedBatchTests
{
    private const string Base = AdapterRouting.BaseName;

    private static readonly TargetModules s_targets = TargetModules.Of("lin", "c_attn", "head");

    // A Linear, a GPT-2 Conv1D ([in, out] weight) and a Linear head: both kinds the batched path takes.
    private static nn.Module<Tensor, Tensor> Net()
    {
        var conv = new Conv1D(6, 5);
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.randn(6, 5));
        }
        var net = nn.Sequential(("lin", nn.Linear(4, 6)), ("act", nn.Tanh()), ("c_attn", conv), ("head", nn.Linear(5, 3)));
        net.eval();
        return net;
    }

    // Three adapters with different ranks (and a per-module rank), alphas, rsLoRA and an eval-mode dropout.
    private static PeftModel ThreeAdapters(nn.Module<Tensor, Tensor> net, bool doraOnB = false, double dropout = 0.1)
    {
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 2, Alpha = 3, Dropout = dropout, TargetModules = s_targets }, "a");
        peft.AddAdapter("b", new LoraConfig { Rank = 4, Alpha = 4, UseRsLora = true, UseDora = doraOnB, TargetModules = s_targets });
        peft.AddAdapter("c", new LoraConfig
        {
            Rank = 3,
            Alpha = 7,
            RankPattern = new Dictionary<string, int> { ["c_attn"] = 5 },
            AlphaPattern = new Dictionary<string, double> { ["head"] = 2 },
            TargetModules = s_targets,
        });
        Randomise(peft, "a", "b", "c");
        return peft;
    }

    private static void Randomise(PeftModel peft, params string[] adapters) => Randomise(peft, 0.3, adapters);

    private static void Randomise(PeftModel peft, double std, params string[] adapters)
    {
        using var _ = torch.no_grad();
        foreach (var p in adapters.SelectMany(a => peft.AdapterStateDict(a).Values))
        {
            p.copy_(torch.randn_like(p) * std);
        }
    }

    private static Tensor Routed(PeftModel peft, nn.Module<Tensor, Tensor> net, Tensor x, string[] rows) => Support.RowByRow.Routed(peft, net, x, rows);

    private static Tensor RowByRow(PeftModel peft, nn.Module<Tensor, Tensor> net, Tensor x, string[] rows) => Support.RowByRow.Run(peft, net, x, rows);

    private static long[] BatchedCounts(PeftModel peft) => [.. peft.AdapterLayers().Select(l => l.Layer.BatchedRoutedForwards)];

    private static void AssertRowsMatch(Tensor mixed, Tensor expected, string what)
    {
        var diff = Weights.MaxAbsDiff(mixed, expected);
        Assert.True(diff <= 1e-5, $"{what}: differs from row-by-row by {diff}");
    }

    public static TheoryData<string, bool> Batches() => new()
    {
        { "a a b b c c __base__ __base__", true },
        { "a b __base__ c a b c __base__", true },
        { "c a b a c b a c", true },
        { "__base__ b b a __base__ a b b", false },
        { "a b __base__ c a b c __base__", false },
    };

    [Theory]
    [MemberData(nameof(Batches))]
    public void Batched_path_equals_each_row_run_alone_within_1e5(string batch, bool tokens)
    {
        torch.manual_seed(301);
        var net = Net();
        var peft = ThreeAdapters(net);
        using var _ = torch.no_grad();
        var rows = batch.Split(' ');
        var x = tokens ? torch.randn(rows.Length, 3, 4) : torch.randn(rows.Length, 4);
        var before = BatchedCounts(peft);

        var mixed = Routed(peft, net, x, rows);

        Assert.Equal(before.Select(n => n + 1), BatchedCounts(peft));
        AssertRowsMatch(mixed, RowByRow(peft, net, x, rows), batch);
        // The adapters must differ from each other and from the base for the comparison to mean anything.
        var alone = rows.Distinct().Select(r => RowByRow(peft, net, x, [.. rows.Select(_ => r)])).ToList();
        Assert.All(alone.Skip(1), o => Assert.False(o.allclose(alone[0], rtol: 0, atol: 1e-3)));
    }

    [Fact]
    public void A_base_row_whose_input_holds_inf_keeps_its_base_output()
    {
        torch.manual_seed(306);
        var net = Net();
        var peft = ThreeAdapters(net);
        using var _ = torch.no_grad();
        string[] rows = ["a", Base, "b", "c"];
        var x = torch.randn(4, 3, 4);
        x[1, 0, 2] = torch.tensor(float.PositiveInfinity);
        var before = BatchedCounts(peft);

        var mixed = Routed(peft, net, x, rows);

        Assert.Equal(before.Select(n => n + 1), BatchedCounts(peft));
        // lin's base output is ±inf in that token, tanh makes it ±1: everything after is finite for the row alone.
        var expected = RowByRow(peft, net, x, rows);
        Assert.False(expected.isnan().any().item<bool>());
        Assert.False(mixed.isnan().any().item<bool>(), "the base row turned to NaN (0·inf in the adapter branch)");
        AssertRowsMatch(mixed, expected, "base row with an inf input");
    }

    [Fact]
    public void A_dora_adapter_in_the_batch_falls_back_to_the_per_group_path_and_an_unrouted_one_does_not()
    {
        torch.manual_seed(302);
        var net = Net();
        var peft = ThreeAdapters(net, doraOnB: true);
        using var _ = torch.no_grad();
        var x = torch.randn(6, 3, 4);
        var before = BatchedCounts(peft);

        string[] withDora = ["a", "b", Base, "c", "b", "a"];
        AssertRowsMatch(Routed(peft, net, x, withDora), RowByRow(peft, net, x, withDora), "with DoRA rows");
        Assert.Equal(before, BatchedCounts(peft));

        string[] withoutDora = ["a", "c", Base, "c", "a", "a"];
        AssertRowsMatch(Routed(peft, net, x, withoutDora), RowByRow(peft, net, x, withoutDora), "DoRA held but not routed");
        Assert.Equal(before.Select(n => n + 1), BatchedCounts(peft));
    }

    [Fact]
    public void Training_mode_with_live_dropout_falls_back_and_with_p0_stays_batched()
    {
        torch.manual_seed(303);
        string[] rows = ["a", "b", "c", Base];
        var x = torch.randn(4, 3, 4);
        foreach (var (dropout, batched) in new[] { (0.5, false), (0.0, true) })
        {
            var net = Net();
            var peft = ThreeAdapters(net, dropout: dropout);
            using var routing = peft.UseAdapterPerRow(rows);
            // Routing starts in eval mode only; a model switched to training afterwards must not batch a live dropout,
            // whose mask PEFT draws per adapter call.
            net.train();
            var before = BatchedCounts(peft);
            using var _ = net.call(x);
            Assert.Equal(before.Select(n => batched ? n + 1 : n), BatchedCounts(peft));
        }
    }

    [Fact]
    public void Embedding_and_conv2d_layers_take_the_per_group_path_and_the_linear_beside_them_batches()
    {
        torch.manual_seed(304);
        var net = new ToyConvNet();
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 3, Alpha = 5, TargetModules = TargetModules.Of("emb", "conv", "lin") }, "a");
        peft.AddAdapter("b", new LoraConfig { Rank = 2, Alpha = 5, TargetModules = TargetModules.Of("emb", "conv", "lin") });
        // Smaller factors than elsewhere: this net's 96-wide head turns std 0.3 into outputs near 15, where float32's
        // rounding between batch sizes alone comes close to 1e-5.
        Randomise(peft, 0.1, "a", "b");
        net.eval();
        using var _ = torch.no_grad();
        var ids = torch.randint(0, 256, [4, 12], dtype: ScalarType.Int64);
        string[] rows = ["b", "a", Base, "b"];

        AssertRowsMatch(Routed(peft, net, ids, rows), RowByRow(peft, net, ids, rows), "ToyConvNet");

        var counts = peft.AdapterLayers().ToDictionary(l => l.Name, l => l.Layer.BatchedRoutedForwards);
        Assert.Equal(0, counts.Single(kv => kv.Key.EndsWith("emb", StringComparison.Ordinal)).Value);
        Assert.Equal(0, counts.Single(kv => kv.Key.EndsWith("conv", StringComparison.Ordinal)).Value);
        Assert.Equal(1, counts.Single(kv => kv.Key.EndsWith("lin", StringComparison.Ordinal)).Value);
    }

    [Fact]
    public void Factors_changed_in_place_hot_swapped_added_or_deleted_are_seen_by_the_next_batched_forward()
    {
        torch.manual_seed(305);
        var net = Net();
        var peft = ThreeAdapters(net);
        using var _ = torch.no_grad();
        var x = torch.randn(5, 3, 4);
        string[] rows = ["a", "b", Base, "c", "a"];
        Tensor first, second;
        using (peft.UseAdapterPerRow(rows))
        {
            first = net.call(x);
            // An optimizer step or a caller's copy_: the same storage, new values.
            foreach (var p in peft.AdapterStateDict("b").Values)
            {
                p.neg_();
            }
            // Hot-swap: new values copied into a's tensors, zero-padded (rank 1 into 2) with a new scaling.
            var swapConfig = new LoraConfig { Rank = 1, Alpha = 5, Dropout = 0.1, TargetModules = s_targets };
            var swapIn = peft.AdapterStateDict("a").ToDictionary(kv => kv.Key, kv => (torch.randn_like(kv.Value) * 0.3).narrow(kv.Key.Contains("lora_A") ? 0 : 1, 0, 1));
            peft.HotSwapAdapter("a", swapConfig, swapIn);
            second = net.call(x);
        }
        Assert.False(second.allclose(first));
        AssertRowsMatch(second, RowByRow(peft, net, x, rows), "after in-place changes and a hot-swap inside one routing");

        peft.DeleteAdapter("c");
        peft.AddAdapter("d", new LoraConfig { Rank = 6, Alpha = 2, TargetModules = s_targets });
        Randomise(peft, "d");
        string[] next = ["d", "a", Base, "d", "b"];
        var before = BatchedCounts(peft);
        AssertRowsMatch(Routed(peft, net, x, next), RowByRow(peft, net, x, next), "after deleting c and adding d");
        Assert.Equal(before.Select(n => n + 1), BatchedCounts(peft));
    }
}
