using PeftSharp.Core;
using PeftSharp.Methods.TLora;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.TLora;

/// <summary>
/// Transformed LoRA: the reference's design-level test (§16a: identity cores give T = I; a changed first core shifts
/// columns), the TT and TR index conventions on hand examples, identity init that still trains every slice, and errors.
/// </summary>
public class TLoraTests
{
    private const string Prefix = "base_model.model.layer.";

    private static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, TLoraConfig config)
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config));
    }

    private static TLoraLayer Layer(PeftModel peft) => (TLoraLayer)peft.AdapterLayers().Single().Layer;

    private static void Set(PeftModel peft, string key, float[] values, params long[] shape)
    {
        using var _ = torch.no_grad();
        peft.AdapterStateDict("default")[Prefix + key].copy_(torch.tensor(values, shape));
    }

    private static Linear Linear4To3()
    {
        var lin = nn.Linear(4, 3);
        using var _ = torch.no_grad();
        lin.weight!.copy_(torch.tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, 3, 4));
        lin.bias!.copy_(torch.tensor(new float[] { 1, -1, 0.5f }));
        return lin;
    }

    [Fact]
    public void Identity_cores_give_T_equal_I_so_the_merged_weight_is_unchanged()
    {
        var lin = Linear4To3();
        var (_, peft) = Wrap(lin, new TLoraConfig { Rank = 1, NumCores = 2, TargetModules = TargetModules.Of("layer") });
        var cores = Layer(peft).TransformCores("default");
        Assert.Equal(new[] { 1L, 2, 2, 1 }, cores[0].shape);
        Assert.True(Weights.Exact(cores[0].reshape(2, 2), torch.eye(2)));
        Assert.True(Weights.Exact(cores[1].reshape(2, 2), torch.eye(2)));
        using var w0 = lin.weight!.detach().clone();
        peft.Merge();
        Assert.True(Weights.Exact(lin.weight!, w0));
    }

    [Fact]
    public void First_core_upper_triangular_adds_columns_0_1_to_columns_2_3()
    {
        var lin = Linear4To3();
        var (holder, peft) = Wrap(lin, new TLoraConfig { Rank = 1, NumCores = 2, TargetModules = TargetModules.Of("layer") });
        // T = [[1,1],[0,1]] ⊗ I₂, so W·T has column 2 += column 0 and column 3 += column 1.
        Set(peft, "tlora_transform.0", [1, 1, 0, 1], 1, 2, 2, 1);
        var expected = torch.tensor(new float[] { 1, 2, 4, 6, 5, 6, 12, 14, 9, 10, 20, 22 }, 3, 4);
        using var x = torch.tensor(new float[] { 1, -2, 0.5f, 3 }, 1, 4);
        using var y = holder.call(x);
        using var want = x.matmul(expected.t()) + lin.bias!;
        Assert.True(Weights.MaxAbsDiff(y, want) <= 1e-5, $"{Weights.MaxAbsDiff(y, want)}");
        peft.Merge();
        Assert.True(Weights.Exact(lin.weight!, expected));
        peft.Unmerge();
        Assert.True(Weights.MaxAbsDiff(lin.weight!, Linear4To3().weight!) <= 1e-6);
    }

    [Fact]
    public void Rank_one_ring_is_the_kronecker_product_of_its_cores()
    {
        var (_, peft) = Wrap(nn.Linear(4, 4), new TLoraConfig { Rank = 1, NumCores = 2, TargetModules = TargetModules.Of("layer") });
        Set(peft, "tlora_residual.0", [1, 2, 3, 4], 1, 2, 2, 1);
        Set(peft, "tlora_residual.1", [0, 1, 1, 0], 1, 2, 2, 1);
        var expected = torch.tensor(new float[] { 0, 1, 0, 2, 1, 0, 2, 0, 0, 3, 0, 4, 3, 0, 4, 0 }, 4, 4);
        Assert.True(Weights.Exact(Layer(peft).DeltaWeight("default")!, expected));
    }

    [Fact]
    public void The_ring_is_closed_by_a_trace_not_a_sum()
    {
        var (_, peft) = Wrap(nn.Linear(4, 4), new TLoraConfig { Rank = 2, NumCores = 2, TargetModules = TargetModules.Of("layer") });
        // H_0[:, o, i, :] = a[o, i]·(E12 + E22), H_1[:, o, i, :] = b[o, i]·E21: the product is a·b·(E11 + E21), trace a·b
        // (a sum of all entries would give 2·a·b).
        var a = new float[] { 1, 2, 3, 4 };
        var b = new float[] { 0, 1, 1, 0 };
        var h0 = new float[16];
        var h1 = new float[16];
        for (var oi = 0; oi < 4; oi++)
        {
            // Layout [q, o, i, q] = [2, 2, 2, 2]: element (p, oi, q) at p·8 + oi·2 + q.
            h0[0 * 8 + oi * 2 + 1] = a[oi];
            h0[1 * 8 + oi * 2 + 1] = a[oi];
            h1[1 * 8 + oi * 2 + 0] = b[oi];
        }
        Set(peft, "tlora_residual.0", h0, 2, 2, 2, 2);
        Set(peft, "tlora_residual.1", h1, 2, 2, 2, 2);
        var expected = torch.tensor(new float[] { 0, 1, 0, 2, 1, 0, 2, 0, 0, 3, 0, 4, 3, 0, 4, 0 }, 4, 4);
        Assert.True(Weights.Exact(Layer(peft).DeltaWeight("default")!, expected));
    }

    [Fact]
    public void Identity_init_with_tt_rank_3_is_exact_yet_every_extra_slice_path_trains()
    {
        torch.manual_seed(41);
        var lin = nn.Linear(8, 6);
        using var x = torch.randn(5, 8);
        using var before = lin.call(x);
        var (holder, peft) = Wrap(lin, new TLoraConfig { Rank = 2, TransformRank = 3, NumCores = 3, TargetModules = TargetModules.Of("layer") });
        using var after = holder.call(x);
        Assert.True(Weights.Exact(after, before));
        (holder.call(x) - 1).pow(2).sum().backward();
        var t = Layer(peft).TransformCores("default");
        // Core 1's incoming extra slices start at zero but see the random outgoing slices of core 0: they get gradients.
        Assert.True(t[1].grad!.index(TensorIndex.Slice(1), TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Single(0)).abs().max().item<float>() > 0);
        Assert.True(t[2].grad!.index(TensorIndex.Slice(1)).abs().max().item<float>() > 0);
        // The zero first ring core gets the gradient; the others wait for it (as LoRA's B and A).
        var r = Layer(peft).ResidualCores("default");
        Assert.True(r[0].grad!.abs().max().item<float>() > 0);
        Assert.Equal(0f, r[1].grad!.abs().max().item<float>());
    }

    [Fact]
    public void Tt_contraction_equals_the_full_transform_times_x()
    {
        torch.manual_seed(42);
        var cores = new[] { torch.randn(1, 2, 2, 2), torch.randn(2, 3, 3, 2), torch.randn(2, 2, 2, 1) };
        using var x = torch.randn(4, 5, 12);
        using var full = TensorNetworks.TtFull(cores);
        Assert.Equal(new[] { 12L, 12 }, full.shape);
        using var viaCores = TensorNetworks.TtApply(cores, x);
        using var viaMatrix = x.matmul(full.t());
        Assert.True(Weights.MaxAbsDiff(viaCores, viaMatrix) <= 1e-4, $"{Weights.MaxAbsDiff(viaCores, viaMatrix)}");
    }

    [Theory]
    [InlineData(4096, 3, new long[] { 16, 16, 16 })]
    [InlineData(768, 3, new long[] { 8, 8, 12 })]
    [InlineData(6, 2, new long[] { 2, 3 })]
    [InlineData(7, 2, new long[] { 1, 7 })]
    [InlineData(6, 3, new long[] { 1, 2, 3 })]
    public void Factorize_is_balanced_and_exact(long d, int count, long[] expected) =>
        Assert.Equal(expected, TensorNetworks.Factorize(d, count));

    [Fact]
    public void Unmerge_throws_when_the_transform_is_singular()
    {
        var (_, peft) = Wrap(Linear4To3(), new TLoraConfig { Rank = 1, NumCores = 2, TargetModules = TargetModules.Of("layer") });
        Set(peft, "tlora_transform.0", [1, 1, 1, 1], 1, 2, 2, 1);
        peft.Merge();
        Assert.Contains("singular", Assert.Throws<PeftException>(() => peft.Unmerge()).Message);
    }

    [Fact]
    public void Gpt2_conv1d_merged_equals_unmerged()
    {
        torch.manual_seed(43);
        var conv = new Conv1D(6, 4);
        using (torch.no_grad())
        {
            conv.weight.normal_();
            conv.bias.normal_();
        }
        var (holder, peft) = Wrap(conv, new TLoraConfig { Rank = 2, TransformRank = 2, NumCores = 2, InitWeights = false, TargetModules = TargetModules.Of("layer") });
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.add_(torch.randn_like(p) * 0.2);
            }
        }
        using var x = torch.randn(3, 6);
        using var unmerged = holder.call(x);
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5);
    }

    [Fact]
    public void Hundred_steps_leak_no_tensors()
    {
        torch.manual_seed(44);
        var (holder, peft) = Wrap(nn.Linear(8, 6), new TLoraConfig { Rank = 2, TransformRank = 2, TargetModules = TargetModules.Of("layer") });
        using var x = torch.randn(4, 8);
        long live = 0;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                holder.call(x).pow(2).mean().backward();
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
}
