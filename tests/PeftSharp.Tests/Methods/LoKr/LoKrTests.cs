using PeftSharp.Core;
using PeftSharp.Methods.LoKr;
using PeftSharp.Tests.Methods.LoHa;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoKr;

/// <summary>LoKr: PEFT's factorization, the Kronecker update on hand-computed examples, shapes, init and Conv2d variants.</summary>
public class LoKrTests
{
    private const string Prefix = "base_model.model.layer.";

    private static LoKrConfig Config(int rank = 8, double alpha = 8) => new() { Rank = rank, Alpha = alpha, TargetModules = TargetModules.Of("layer") };

    [Theory]
    // PEFT's factorization docstring, and the two dimensions of the llama fixture (64 → [8, 8], 32 → [4, 8]).
    [InlineData(256, -1, 16, 16)]
    [InlineData(128, -1, 8, 16)]
    [InlineData(127, -1, 1, 127)]
    [InlineData(128, 4, 4, 32)]
    [InlineData(64, -1, 8, 8)]
    [InlineData(32, -1, 4, 8)]
    [InlineData(6, -1, 2, 3)]
    [InlineData(1, -1, 1, 1)]
    // A dividing factor is returned first even when it is the larger one; a non-dividing one caps the search.
    [InlineData(6, 3, 3, 2)]
    [InlineData(4, 3, 2, 2)]
    [InlineData(48, 5, 4, 12)]
    public void Factorization_matches_peft(long dimension, int factor, long m, long n)
    {
        Assert.Equal((m, n), LoKrFactorization.Split(dimension, factor));
    }

    [Fact]
    public void Hand_computed_example_is_the_kronecker_product_times_alpha_over_r()
    {
        var lin = nn.Linear(4, 2, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.zero_();
        }
        var (holder, peft) = LoHaTests.Wrap(lin, Config(rank: 8, alpha: 16));
        var t = peft.AdapterStateDict("default");
        // 2 = 1·2 and 4 = 2·2: W1 [1, 2], W2 [2, 2] (r = 8 is not below max/2, so both full).
        Assert.Equal(new[] { Prefix + "lokr_w1", Prefix + "lokr_w2" }, t.Keys.Order());
        using (torch.no_grad())
        {
            t[Prefix + "lokr_w1"].copy_(torch.tensor(new float[] { 1, -1 }, 1, 2));
            t[Prefix + "lokr_w2"].copy_(torch.tensor(new float[] { 1, 2, 3, 4 }, 2, 2));
        }
        // kron = [[1,2,-1,-2],[3,4,-3,-4]], · 16/8.
        var layer = peft.AdapterLayers().Single().Layer;
        Assert.True(Weights.Exact(layer.DeltaWeight("default")!, torch.tensor(new float[] { 2, 4, -2, -4, 6, 8, -6, -8 }, 2, 4)));
        using var y = holder.call(torch.tensor(new float[] { 1, 1, 2, 1 }, 1, 4));
        Assert.True(Weights.Exact(y, torch.tensor(new float[] { -2, -6 }, 1, 2)));
    }

    [Fact]
    public void Default_init_zeroes_the_left_factor_and_lycoris_init_the_right()
    {
        torch.manual_seed(21);
        var (_, peft) = LoHaTests.Wrap(nn.Linear(64, 32), Config());
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new[] { 4L, 8 }, t[Prefix + "lokr_w1"].shape);
        Assert.Equal(new[] { 8L, 8 }, t[Prefix + "lokr_w2"].shape);
        Assert.Equal(0f, t[Prefix + "lokr_w1"].abs().max().item<float>());
        LoHaTests.AssertKaiming(t[Prefix + "lokr_w2"], 8);

        var (_, lycoris) = LoHaTests.Wrap(nn.Linear(64, 32), Config(rank: 1) with { InitWeights = LoKrInit.Lycoris });
        var l = lycoris.AdapterStateDict("default");
        Assert.Equal(new[] { Prefix + "lokr_w1", Prefix + "lokr_w2_a", Prefix + "lokr_w2_b" }, l.Keys.Order());
        LoHaTests.AssertKaiming(l[Prefix + "lokr_w1"], 8);
        LoHaTests.AssertKaiming(l[Prefix + "lokr_w2_a"], 1);
        Assert.Equal(0f, l[Prefix + "lokr_w2_b"].abs().max().item<float>());

        var (_, random) = LoHaTests.Wrap(nn.Linear(64, 32), Config(rank: 1) with { InitWeights = LoKrInit.Random, DecomposeBoth = true });
        var rnd = random.AdapterStateDict("default");
        Assert.Equal(new[] { 4L, 1 }, rnd[Prefix + "lokr_w1_a"].shape);
        Assert.Equal(new[] { 1L, 8 }, rnd[Prefix + "lokr_w1_b"].shape);
        Assert.All(rnd.Values, v => Assert.NotEqual(0f, v.abs().max().item<float>()));
    }

    [Fact]
    public void Decompose_both_zeroes_w1_a_at_init_and_keeps_the_output()
    {
        torch.manual_seed(22);
        var lin = nn.Linear(64, 64);
        using var x = torch.randn(2, 64);
        using var before = lin.call(x);
        var (holder, peft) = LoHaTests.Wrap(lin, Config(rank: 2) with { DecomposeBoth = true });
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new[] { Prefix + "lokr_w1_a", Prefix + "lokr_w1_b", Prefix + "lokr_w2_a", Prefix + "lokr_w2_b" }, t.Keys.Order());
        Assert.Equal(0f, t[Prefix + "lokr_w1_a"].abs().max().item<float>());
        using var after = holder.call(x);
        Assert.True(Weights.Exact(after, before));
    }

    [Theory]
    [InlineData(2, false, new[] { "lokr_w1", "lokr_w2" })]
    [InlineData(1, false, new[] { "lokr_w1", "lokr_w2_a", "lokr_w2_b" })]
    [InlineData(1, true, new[] { "lokr_t2", "lokr_w1", "lokr_w2_a", "lokr_w2_b" })]
    public void Conv2d_update_is_the_kronecker_product_written_out_by_hand(int rank, bool effective, string[] keys)
    {
        torch.manual_seed(23);
        // C_out 6 = 2·3, C_in 4 = 2·2, kernel 3×3.
        var conv = nn.Conv2d(4, 6, 3, padding: 1);
        var (holder, peft) = LoHaTests.Wrap(conv, Config(rank, alpha: 3) with { UseEffectiveConv2d = effective });
        var t = peft.AdapterStateDict("default");
        Assert.Equal(keys.Select(k => Prefix + k), t.Keys.Order());
        LoHaTests.Randomise(peft);
        var w1 = t[Prefix + "lokr_w1"];
        Assert.Equal(new[] { 2L, 2 }, w1.shape);
        // The right factor as [b = 3, d = 2, 3, 3], from whichever tensors this variant saves.
        float[] w2;
        if (rank == 2)
        {
            Assert.Equal(new[] { 3L, 2, 3, 3 }, t[Prefix + "lokr_w2"].shape);
            w2 = t[Prefix + "lokr_w2"].data<float>().ToArray();
        }
        else if (!effective)
        {
            Assert.Equal(new[] { 3L, 1 }, t[Prefix + "lokr_w2_a"].shape);
            Assert.Equal(new[] { 1L, 2 * 9 }, t[Prefix + "lokr_w2_b"].shape);
            w2 = t[Prefix + "lokr_w2_a"].matmul(t[Prefix + "lokr_w2_b"]).data<float>().ToArray();
        }
        else
        {
            Assert.Equal(new[] { 1L, 1, 3, 3 }, t[Prefix + "lokr_t2"].shape);
            Assert.Equal(new[] { 1L, 3 }, t[Prefix + "lokr_w2_a"].shape);
            Assert.Equal(new[] { 1L, 2 }, t[Prefix + "lokr_w2_b"].shape);
            w2 = LoHaTests.Rebuild(t[Prefix + "lokr_t2"], t[Prefix + "lokr_w2_a"], t[Prefix + "lokr_w2_b"]);
        }
        // ΔW[a·3 + b, c·2 + d, h, w] = s · W1[a, c] · W2[b, d, h, w], s = 3 / r.
        var s = 3f / rank;
        var w1v = w1.data<float>().ToArray();
        var expected = new float[6 * 4 * 9];
        for (var a = 0; a < 2; a++)
        {
            for (var b = 0; b < 3; b++)
            {
                for (var c = 0; c < 2; c++)
                {
                    for (var d = 0; d < 2; d++)
                    {
                        for (var k = 0; k < 9; k++)
                        {
                            expected[((a * 3 + b) * 4 + c * 2 + d) * 9 + k] = s * w1v[a * 2 + c] * w2[(b * 2 + d) * 9 + k];
                        }
                    }
                }
            }
        }
        var layer = peft.AdapterLayers().Single().Layer;
        Assert.True(Weights.MaxAbsDiff(layer.DeltaWeight("default")!, torch.tensor(expected, 6, 4, 3, 3)) < 1e-5);
        using var x = torch.randn(2, 4, 5, 5);
        using var unmerged = holder.call(x);
        using var direct = nn.functional.conv2d(x, conv.weight! + torch.tensor(expected, 6, 4, 3, 3), conv.bias, padding: [1, 1]);
        Assert.True(Weights.MaxAbsDiff(unmerged, direct) < 1e-5);
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-5);
    }

    [Fact]
    public void Rank_dropout_without_scale_keeps_surviving_rows_unscaled()
    {
        torch.manual_seed(24);
        var lin = nn.Linear(4, 16, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.zero_();
        }
        var (holder, peft) = LoHaTests.Wrap(lin, Config(rank: 2) with { RankDropout = 0.5 });
        LoHaTests.Randomise(peft);
        using var x = torch.randn(3, 4);
        holder.eval();
        using var full = holder.call(x);
        holder.train();
        using var dropped = holder.call(x);
        var kept = Enumerable.Range(0, 16).Where(j => dropped[.., j].abs().max().item<float>() > 0).ToList();
        Assert.InRange(kept.Count, 1, 15);
        foreach (var j in kept)
        {
            Assert.True(Weights.MaxAbsDiff(dropped[.., j], full[.., j]) < 1e-6, $"row {j} was rescaled");
        }
    }

    [Fact]
    public void At_init_only_w1_gets_a_gradient_and_training_steps_leak_no_tensors()
    {
        torch.manual_seed(25);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoKrConfig { Rank = 1, RankDropout = 0.2, ModuleDropout = 0.1, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });
        // Step 0 runs in eval mode so no dropout hides the gradient check; the rest train with both dropouts.
        net.eval();
        var x = torch.randn(3, 4);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                net.train(step > 0);
                net.call(x).pow(2).mean().backward();
                if (step == 0)
                {
                    // W1 = 0: the right factor's gradient is W1-weighted, so only lokr_w1 moves on the first step.
                    foreach (var (name, p) in net.named_parameters().Where(p => p.parameter.requires_grad))
                    {
                        var g = p.grad!.abs().max().item<float>();
                        Assert.True(name.Contains("lokr_w1") ? g > 0 : g == 0, $"{name}: |grad| max {g}");
                    }
                }
                foreach (var p in peft.TrainableParameters())
                {
                    p.grad?.zero_();
                }
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Embeddings_are_rejected_naming_the_module()
    {
        var holder = nn.Sequential(("emb", nn.Embedding(10, 4)));
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(holder, new LoKrConfig { TargetModules = TargetModules.Of("emb") }));
        Assert.Contains("'emb'", e.Message);
    }
}
