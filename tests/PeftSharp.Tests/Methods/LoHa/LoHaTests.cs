using PeftSharp.Core;
using PeftSharp.Methods.LoHa;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoHa;

/// <summary>LoHa's maths on hand-computed examples, PEFT's shapes and init, the effective Conv2d rebuild and the dropouts.</summary>
public class LoHaTests
{
    private const string Prefix = "base_model.model.layer.";

    internal static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, AdapterConfig config)
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config));
    }

    private static LoHaConfig Config(int rank = 8, double alpha = 8) => new() { Rank = rank, Alpha = alpha, TargetModules = TargetModules.Of("layer") };

    private static void Set(PeftModel peft, string key, float[] values, params long[] shape)
    {
        using var _ = torch.no_grad();
        peft.AdapterStateDict("default")[Prefix + key].copy_(torch.tensor(values, shape));
    }

    [Fact]
    public void Hand_computed_example_gives_hadamard_of_two_products_times_alpha_over_r()
    {
        var lin = nn.Linear(3, 2, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.copy_(torch.tensor(new float[] { 1, 0, 0, 0, 1, 0 }, 2, 3));
        }
        var (holder, peft) = Wrap(lin, Config(rank: 1, alpha: 2));
        // W1a W1b = [[1,0,-1],[2,0,-2]], W2a W2b = [[6,3,3],[-2,-1,-1]]; ⊙ = [[6,0,-3],[-4,0,2]]; · 2/1.
        Set(peft, "hada_w1_a", [1, 2], 2, 1);
        Set(peft, "hada_w1_b", [1, 0, -1], 1, 3);
        Set(peft, "hada_w2_a", [3, -1], 2, 1);
        Set(peft, "hada_w2_b", [2, 1, 1], 1, 3);
        var layer = (LoHaLayer)peft.AdapterLayers().Single().Layer;
        Assert.True(Weights.Exact(layer.DeltaWeight("default")!, torch.tensor(new float[] { 12, 0, -6, -8, 0, 4 }, 2, 3)));
        using var x = torch.tensor(new float[] { 1, 2, 3 }, 1, 3);
        // base [1, 2] + ΔW x = [12 − 18, −8 + 12] = [−6, 4].
        using var y = holder.call(x);
        Assert.True(Weights.Exact(y, torch.tensor(new float[] { -5, 6 }, 1, 2)));
        peft.Merge();
        Assert.True(Weights.Exact(lin.weight!, torch.tensor(new float[] { 13, 0, -6, -8, 1, 4 }, 2, 3)));
    }

    [Fact]
    public void Linear_factors_have_peft_names_shapes_and_default_init()
    {
        torch.manual_seed(3);
        var (holder, peft) = Wrap(nn.Linear(10, 6), Config(rank: 4));
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new[] { Prefix + "hada_w1_a", Prefix + "hada_w1_b", Prefix + "hada_w2_a", Prefix + "hada_w2_b" }, t.Keys.Order());
        Assert.Equal(new[] { 6L, 4 }, t[Prefix + "hada_w1_a"].shape);
        Assert.Equal(new[] { 4L, 10 }, t[Prefix + "hada_w1_b"].shape);
        Assert.Equal(new[] { 6L, 4 }, t[Prefix + "hada_w2_a"].shape);
        Assert.Equal(new[] { 4L, 10 }, t[Prefix + "hada_w2_b"].shape);
        Assert.Equal(0f, t[Prefix + "hada_w2_b"].abs().max().item<float>());
        // Kaiming-uniform with a = √5 has bound 1/√fan_in (fan_in = columns).
        AssertKaiming(t[Prefix + "hada_w1_a"], 4);
        AssertKaiming(t[Prefix + "hada_w1_b"], 10);
        AssertKaiming(t[Prefix + "hada_w2_a"], 4);
        Assert.Equal(new[] { "layer.hada_w1_a.default", "layer.hada_w1_b.default", "layer.hada_w2_a.default", "layer.hada_w2_b.default" },
            holder.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).Order());
    }

    internal static void AssertKaiming(Tensor t, long fanIn)
    {
        var max = t.abs().max().item<float>();
        Assert.InRange(max, 0.2 / Math.Sqrt(fanIn), 1.0 / Math.Sqrt(fanIn) + 1e-7);
    }

    [Fact]
    public void Init_weights_false_starts_with_a_random_update()
    {
        torch.manual_seed(4);
        var lin = nn.Linear(5, 5);
        using var x = torch.randn(2, 5);
        using var before = lin.call(x);
        var (holder, peft) = Wrap(lin, Config(rank: 2) with { InitWeights = false });
        Assert.NotEqual(0f, peft.AdapterStateDict("default")[Prefix + "hada_w2_b"].abs().max().item<float>());
        using var after = holder.call(x);
        Assert.False(after.allclose(before));
    }

    [Fact]
    public void Conv2d_flattens_the_kernel_and_forward_equals_the_merged_conv()
    {
        torch.manual_seed(5);
        var conv = nn.Conv2d(4, 6, 3, stride: 2, padding: 1, dilation: 1, groups: 2);
        var (holder, peft) = Wrap(conv, Config(rank: 3, alpha: 6) with { UseEffectiveConv2d = false });
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new[] { 6L, 3 }, t[Prefix + "hada_w1_a"].shape);
        Assert.Equal(new[] { 3L, 2 * 3 * 3 }, t[Prefix + "hada_w1_b"].shape);
        Randomise(peft);
        using var x = torch.randn(2, 4, 7, 7);
        using var unmerged = holder.call(x);
        var layer = (LoHaLayer)peft.AdapterLayers().Single().Layer;
        using var expected = nn.functional.conv2d(x, conv.weight! + layer.DeltaWeight("default")!, conv.bias, strides: [2, 2], padding: [1, 1], groups: 2);
        Assert.True(Weights.MaxAbsDiff(unmerged, expected) < 1e-5);
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-5);
    }

    [Fact]
    public void Effective_conv2d_rebuilds_each_factor_from_a_core_as_a_hand_loop_does()
    {
        torch.manual_seed(6);
        var conv = nn.Conv2d(3, 5, 3, padding: 1);
        var (holder, peft) = Wrap(conv, Config(rank: 2, alpha: 4) with { UseEffectiveConv2d = true });
        var t = peft.AdapterStateDict("default");
        Assert.Equal(new[] { 2L, 2, 3, 3 }, t[Prefix + "hada_t1"].shape);
        Assert.Equal(new[] { 2L, 2, 3, 3 }, t[Prefix + "hada_t2"].shape);
        Assert.Equal(new[] { 2L, 5 }, t[Prefix + "hada_w1_a"].shape);
        Assert.Equal(new[] { 2L, 3 }, t[Prefix + "hada_w1_b"].shape);
        AssertKaiming(t[Prefix + "hada_t1"], 2 * 3 * 3);
        Randomise(peft);
        var k1 = Rebuild(t[Prefix + "hada_t1"], t[Prefix + "hada_w1_a"], t[Prefix + "hada_w1_b"]);
        var k2 = Rebuild(t[Prefix + "hada_t2"], t[Prefix + "hada_w2_a"], t[Prefix + "hada_w2_b"]);
        var expected = new float[k1.Length];
        for (var i = 0; i < expected.Length; i++)
        {
            expected[i] = k1[i] * k2[i] * 2f;
        }
        var layer = (LoHaLayer)peft.AdapterLayers().Single().Layer;
        Assert.True(layer.UsesEffectiveConv2d("default"));
        Assert.True(Weights.MaxAbsDiff(layer.DeltaWeight("default")!, torch.tensor(expected, 5, 3, 3, 3)) < 1e-5);
        using var x = torch.randn(1, 3, 4, 4);
        using var unmerged = holder.call(x);
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-5);
    }

    // K[o, i, h, w] = Σ_p Σ_q a[p, o] · core[p, q, h, w] · b[q, i], written out as loops (FedPara Prop. 3).
    internal static float[] Rebuild(Tensor core, Tensor a, Tensor b)
    {
        long r = core.shape[0], kh = core.shape[2], kw = core.shape[3], outDim = a.shape[1], inDim = b.shape[1];
        var c = core.data<float>().ToArray();
        var av = a.data<float>().ToArray();
        var bv = b.data<float>().ToArray();
        var k = new float[outDim * inDim * kh * kw];
        for (long o = 0; o < outDim; o++)
        {
            for (long i = 0; i < inDim; i++)
            {
                for (long h = 0; h < kh; h++)
                {
                    for (long w = 0; w < kw; w++)
                    {
                        double s = 0;
                        for (long p = 0; p < r; p++)
                        {
                            for (long q = 0; q < r; q++)
                            {
                                s += av[p * outDim + o] * c[((p * r + q) * kh + h) * kw + w] * bv[q * inDim + i];
                            }
                        }
                        k[((o * inDim + i) * kh + h) * kw + w] = (float)s;
                    }
                }
            }
        }
        return k;
    }

    [Fact]
    public void Effective_conv2d_is_not_used_for_a_1x1_kernel()
    {
        var (_, peft) = Wrap(nn.Conv2d(4, 6, 1), Config(rank: 2) with { UseEffectiveConv2d = true });
        var t = peft.AdapterStateDict("default");
        Assert.DoesNotContain(Prefix + "hada_t1", t.Keys);
        Assert.Equal(new[] { 6L, 2 }, t[Prefix + "hada_w1_a"].shape);
        Assert.Equal(new[] { 2L, 4 }, t[Prefix + "hada_w1_b"].shape);
    }

    [Fact]
    public void Rank_dropout_in_training_zeroes_output_rows_and_rescales_the_rest_by_the_mean()
    {
        torch.manual_seed(7);
        var lin = nn.Linear(4, 16, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.zero_();
        }
        var (holder, peft) = Wrap(lin, Config(rank: 2) with { RankDropout = 0.5 });
        Randomise(peft);
        using var x = torch.randn(3, 4);
        holder.eval();
        using var full = holder.call(x);
        holder.train();
        using var dropped = holder.call(x);
        var kept = Enumerable.Range(0, 16).Where(j => dropped[.., j].abs().max().item<float>() > 0).ToList();
        Assert.InRange(kept.Count, 1, 15);
        var scale = 16f / kept.Count;
        foreach (var j in kept)
        {
            Assert.True(Weights.MaxAbsDiff(dropped[.., j], full[.., j] * scale) < 1e-5, $"row {j} is not the eval row × {scale}");
        }
    }

    [Fact]
    public void Module_dropout_one_skips_the_adapter_in_training_only()
    {
        torch.manual_seed(8);
        var lin = nn.Linear(4, 4);
        using var x = torch.randn(2, 4);
        using var baseOut = lin.call(x);
        var (holder, peft) = Wrap(lin, Config(rank: 2) with { ModuleDropout = 1.0 });
        Randomise(peft);
        holder.train();
        using var training = holder.call(x);
        Assert.True(Weights.Exact(training, baseOut));
        holder.eval();
        using var eval = holder.call(x);
        Assert.False(eval.allclose(baseOut));
    }

    [Fact]
    public void At_init_only_w2_b_gets_a_gradient_and_training_steps_leak_no_tensors()
    {
        torch.manual_seed(9);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoHaConfig { Rank = 2, RankDropout = 0.2, ModuleDropout = 0.1, TargetModules = TargetModules.Of("q_proj", "v_proj") });
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
                    // W2b = 0 makes W2a W2b = 0, so the other three factors see a zero gradient on the first step.
                    foreach (var (name, p) in net.named_parameters().Where(p => p.parameter.requires_grad))
                    {
                        var g = p.grad!.abs().max().item<float>();
                        Assert.True(name.Contains("hada_w2_b") ? g > 0 : g == 0, $"{name}: |grad| max {g}");
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

    internal static void Randomise(PeftModel peft)
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.AdapterStateDict("default").Values)
        {
            p.copy_(torch.randn_like(p) * 0.5);
        }
    }
}
