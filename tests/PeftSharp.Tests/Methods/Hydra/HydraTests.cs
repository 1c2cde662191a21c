using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Hydra;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Hydra;

/// <summary>Hydra's maths on the reference's hand example (§11), its merge and inverse unmerge, init, names and errors.</summary>
public class HydraTests
{
    private const string Prefix = "base_model.model.layer.";

    private static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, AdapterConfig config)
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config));
    }

    private static void Set(PeftModel peft, string key, float[] values, params long[] shape)
    {
        using var _ = torch.no_grad();
        peft.AdapterStateDict("default")[Prefix + key].copy_(torch.tensor(values, shape));
    }

    private static Tensor T(float[] values, params long[] shape) => torch.tensor(values, shape);

    private static string Show(Tensor t) => string.Join(", ", t.detach().cpu().data<float>().ToArray());

    private static bool Close(Tensor a, Tensor b, double tol = 1e-6) => a.shape.SequenceEqual(b.shape) && Weights.MaxAbsDiff(a, b) <= tol;

    // Reference §11: W0 = [[1,2],[0,1],[1,−1]], b0 = [0.5,−1,0], s = 0.5, both branches rank 1 with biases.
    private static (Linear Base, nn.Module<Tensor, Tensor> Holder, PeftModel Peft) ReferenceExample()
    {
        var lin = nn.Linear(2, 3);
        using (torch.no_grad())
        {
            lin.weight!.copy_(T([1, 2, 0, 1, 1, -1], 3, 2));
            lin.bias!.copy_(T([0.5f, -1, 0], 3));
        }
        var (holder, peft) = Wrap(lin, new HydraConfig { Rank = 1, SequentialRank = 1, Scale = 0.5, BranchBias = true, TargetModules = TargetModules.Of("layer") });
        Set(peft, "hydra_par_A.weight", [1, 1], 1, 2);
        Set(peft, "hydra_par_A.bias", [0.1f], 1);
        Set(peft, "hydra_par_B.weight", [1, 0, 2], 3, 1);
        Set(peft, "hydra_par_B.bias", [0, 0.1f, 0], 3);
        Set(peft, "hydra_seq_A.weight", [0, 1, 1], 1, 3);
        Set(peft, "hydra_seq_A.bias", [0], 1);
        Set(peft, "hydra_seq_B.weight", [0.5f, 0.5f, 0], 3, 1);
        Set(peft, "hydra_seq_B.bias", [0, 0, 0.2f], 3);
        return (lin, holder, peft);
    }

    [Fact]
    public void Reference_example_branch_forward_gives_6_3_0_3_4_2()
    {
        var (_, holder, _) = ReferenceExample();
        using var y = holder.call(T([2, 1], 1, 2));
        Assert.True(Close(y, T([6.3f, 0.3f, 4.2f], 1, 3)), Show(y));
    }

    [Fact]
    public void Reference_example_merges_to_the_given_weight_and_bias_and_unmerges_through_the_inverse()
    {
        var (lin, holder, peft) = ReferenceExample();
        peft.Merge();
        // The sequential branch sees the biased base output, so the merged bias picks up s·B_s·A_s·b0 (trap 2).
        Assert.True(Close(lin.weight!, T([1.75f, 2.5f, 0.25f, 1.0f, 2.0f, 0.0f], 3, 2)), Show(lin.weight!));
        Assert.True(Close(lin.bias!, T([0.3f, -1.2f, 0.2f], 3)), Show(lin.bias!));
        using (var y = holder.call(T([2, 1], 1, 2)))
        {
            Assert.True(Close(y, T([6.3f, 0.3f, 4.2f], 1, 3)));
        }
        peft.Unmerge();
        Assert.True(Close(lin.weight!, T([1, 2, 0, 1, 1, -1], 3, 2)));
        Assert.True(Close(lin.bias!, T([0.5f, -1, 0], 3)));
    }

    [Fact]
    public void Default_init_is_kaiming_down_zero_up_and_output_equals_base_exactly()
    {
        torch.manual_seed(5);
        var lin = nn.Linear(10, 6);
        using var x = torch.randn(4, 10);
        using var before = lin.call(x);
        var (holder, peft) = Wrap(lin, new HydraConfig { Rank = 3, SequentialRank = 2, BranchBias = true, TargetModules = TargetModules.Of("layer") });
        var t = peft.AdapterStateDict("default");
        Assert.Equal(
            new[] { "hydra_par_A.bias", "hydra_par_A.weight", "hydra_par_B.bias", "hydra_par_B.weight", "hydra_seq_A.bias", "hydra_seq_A.weight", "hydra_seq_B.bias", "hydra_seq_B.weight" },
            t.Keys.Select(k => k[Prefix.Length..]).Order());
        Assert.Equal(new[] { 3L, 10 }, t[Prefix + "hydra_par_A.weight"].shape);
        Assert.Equal(new[] { 6L, 3 }, t[Prefix + "hydra_par_B.weight"].shape);
        Assert.Equal(new[] { 2L, 6 }, t[Prefix + "hydra_seq_A.weight"].shape);
        Assert.Equal(new[] { 6L, 2 }, t[Prefix + "hydra_seq_B.weight"].shape);
        AssertBound(t[Prefix + "hydra_par_A.weight"], 1 / Math.Sqrt(10));
        AssertBound(t[Prefix + "hydra_seq_A.weight"], 1 / Math.Sqrt(6));
        foreach (var zero in new[] { "hydra_par_A.bias", "hydra_par_B.weight", "hydra_par_B.bias", "hydra_seq_A.bias", "hydra_seq_B.weight", "hydra_seq_B.bias" })
        {
            Assert.Equal(0f, t[Prefix + zero].abs().max().item<float>());
        }
        Assert.Contains(holder.named_parameters(), p => p.name == "layer.hydra_seq_B.default.weight" && p.parameter.requires_grad);
        using var after = holder.call(x);
        Assert.True(Weights.Exact(after, before));
    }

    [Fact]
    public void Xavier_init_bounds_the_down_projections_by_the_glorot_limit()
    {
        torch.manual_seed(6);
        var (_, peft) = Wrap(nn.Linear(10, 6), new HydraConfig { Rank = 4, SequentialRank = 3, InitWeights = HydraInit.Xavier, TargetModules = TargetModules.Of("layer") });
        var t = peft.AdapterStateDict("default");
        AssertBound(t[Prefix + "hydra_par_A.weight"], Math.Sqrt(6.0 / (10 + 4)));
        AssertBound(t[Prefix + "hydra_seq_A.weight"], Math.Sqrt(6.0 / (6 + 3)));
        Assert.Equal(0f, t[Prefix + "hydra_par_B.weight"].abs().max().item<float>());
    }

    private static void AssertBound(Tensor t, double bound)
    {
        var max = t.abs().max().item<float>();
        Assert.InRange(max, 0.3 * bound, bound + 1e-7);
    }

    [Fact]
    public void Branch_biases_without_a_base_bias_refuse_to_merge_and_leave_the_weight_untouched()
    {
        torch.manual_seed(7);
        var lin = nn.Linear(4, 5, hasBias: false);
        var (_, peft) = Wrap(lin, new HydraConfig { Rank = 2, SequentialRank = 2, BranchBias = true, InitWeights = HydraInit.Random, TargetModules = TargetModules.Of("layer") });
        using var before = lin.weight!.detach().clone();
        var e = Assert.Throws<PeftException>(() => peft.Merge());
        Assert.Contains("hydra_bias", e.Message);
        Assert.True(Weights.Exact(lin.weight!, before));
    }

    [Fact]
    public void Unmerge_throws_when_I_plus_s_Bs_As_is_singular()
    {
        var lin = nn.Linear(2, 2, hasBias: false);
        var (_, peft) = Wrap(lin, new HydraConfig { Rank = 1, SequentialRank = 1, Scale = 1, TargetModules = TargetModules.Of("layer") });
        // A_s·B_s = −1, so I_1 + s·A_s·B_s = 0 and I + s·B_s·A_s = [[0, 0], [0, 1]] has no inverse.
        Set(peft, "hydra_seq_A.weight", [1, 0], 1, 2);
        Set(peft, "hydra_seq_B.weight", [-1, 0], 2, 1);
        peft.Merge();
        var e = Assert.Throws<PeftException>(() => peft.Unmerge());
        Assert.Contains("singular", e.Message);
    }

    [Fact]
    public void Two_stacked_adapters_merged_in_order_equal_the_unmerged_forward()
    {
        torch.manual_seed(8);
        var lin = nn.Linear(5, 4);
        var config = new HydraConfig { Rank = 2, SequentialRank = 2, Scale = 0.7, InitWeights = HydraInit.Random, TargetModules = TargetModules.Of("layer") };
        var (holder, peft) = Wrap(lin, config);
        peft.AddAdapter("second", config with { SequentialRank = 3 });
        peft.SetActiveAdapters("default", "second");
        using var x = torch.randn(3, 5);
        using var unmerged = holder.call(x);
        using var w0 = lin.weight!.detach().clone();
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5, $"{Weights.MaxAbsDiff(merged, unmerged)}");
        peft.Unmerge();
        Assert.True(Weights.MaxAbsDiff(lin.weight!, w0) <= 1e-6);
    }

    [Fact]
    public void Gpt2_conv1d_merged_equals_unmerged_and_save_load_is_bit_exact()
    {
        torch.manual_seed(9);
        var conv = new Conv1D(5, 7);
        using (torch.no_grad())
        {
            conv.weight.normal_();
            conv.bias.normal_();
        }
        var (holder, peft) = Wrap(conv, new HydraConfig { Rank = 2, SequentialRank = 3, Scale = 0.5, BranchBias = true, InitWeights = HydraInit.Random, TargetModules = TargetModules.Of("layer") });
        using var x = torch.randn(2, 3, 5);
        using var unmerged = holder.call(x);
        var dir = Directory.CreateTempSubdirectory("peftsharp-hydra-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var fresh = nn.Sequential(("layer", conv.CloneBase()));
            PeftAdapterFiles.FromPretrained(fresh, dir);
            using var reloaded = fresh.call(x);
            Assert.True(Weights.Exact(reloaded, unmerged));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5);
    }

    [Fact]
    public void Hundred_steps_leak_no_tensors()
    {
        torch.manual_seed(10);
        var (holder, peft) = Wrap(nn.Linear(6, 5), new HydraConfig { Rank = 2, SequentialRank = 2, Dropout = 0.1, BranchBias = true, TargetModules = TargetModules.Of("layer") });
        using var x = torch.randn(4, 6);
        long live = 0;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                holder.train();
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

internal static class Conv1DCopy
{
    /// <summary>A fresh Conv1D with the same base weight and bias (the adapter-free original).</summary>
    public static Conv1D CloneBase(this Conv1D source)
    {
        var copy = new Conv1D(source.InFeatures, source.OutFeatures);
        using var _ = torch.no_grad();
        copy.weight.copy_(source.weight);
        copy.bias.copy_(source.bias);
        return copy;
    }
}
