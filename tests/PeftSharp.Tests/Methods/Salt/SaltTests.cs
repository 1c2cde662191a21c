using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Salt;
using PeftSharp.Tests.Methods.Decompositions;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Salt;

/// <summary>SALT: the reference's §13 example, the element-wise ReLU, the init, and what is saved.</summary>
public class SaltTests
{
    private static void Set(Tensor target, Tensor value)
    {
        using var _ = torch.no_grad();
        target.copy_(value);
    }

    private static Tensor Tensor(string key, PeftModel peft) => peft.AdapterStateDict("default")[OneLayer.Prefix + key];

    [Fact]
    public void Reference_example_scale_shift_and_lora_block()
    {
        // W0 = [[3,0],[4,5]], ratio 0.5 (k = 2, t = 1). σ = [6.708204, 2.236068]. With a = 1.1, β = 0.2, X·Y = 0.3:
        // Σ' = diag(7.579024, 2.536068), W' = [[3.395967, −0.006525], [4.517082, 5.651246]] (sign-invariant).
        var w0 = OneLayer.Matrix(2, 2, 3, 0, 4, 5);
        var (holder, peft) = OneLayer.Wrap(OneLayer.Linear(2, 2, 3, 0, 4, 5), new SaltConfig { Rank = 1, Ratio = 0.5 });
        var layer = OneLayer.Layer<SaltLayer>(peft);
        var (u, s, vh) = (Tensor("salt_U", peft), Tensor("salt_S", peft), Tensor("salt_Vh", peft));
        Assert.True(Weights.MaxAbsDiff(s, torch.tensor(new float[] { 6.708204f, 2.236068f })) < 1e-5);
        Assert.True(Weights.MaxAbsDiff((u * s).matmul(vh), w0) < 1e-5, "U·Σ·Vᵀ reproduces W0");
        var x = OneLayer.Matrix(3, 2, 1, 2, -1, 0.5f, 0, 3);
        using (var atInit = holder.call(x))
        {
            Assert.True(Weights.Exact(atInit, x.matmul(w0.t())), "the delta is exactly 0 at init");
        }

        Set(Tensor("salt_scale", peft), torch.tensor(new float[] { 1.1f }));
        Set(Tensor("salt_shift", peft), torch.tensor(new float[] { 0.2f }));
        Set(Tensor("salt_X", peft), OneLayer.Matrix(1, 1, 0.3f));
        Set(Tensor("salt_Y", peft), OneLayer.Matrix(1, 1, 1));
        Assert.True(Weights.MaxAbsDiff(layer.SigmaPrime("default"), OneLayer.Matrix(2, 2, 7.579024f, 0, 0, 2.536068f)) < 1e-5);
        var expected = OneLayer.Matrix(2, 2, 3.395967f, -0.006525f, 4.517082f, 5.651246f);
        using var unmerged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(unmerged, x.matmul(expected.t())) < 1e-4);
        Assert.Equal(0.8708204 + 0.3, layer.RegularizationLoss("default").item<float>(), 5);
        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(layer.Base.Weight, expected) < 1e-5);
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-5);
    }

    [Fact]
    public void Relu_acts_on_every_entry_so_negative_off_diagonals_of_XY_are_cut()
    {
        // W = diag(3, 2, 1), ratio 0.34 → t = 1; frames set to I so the singular coordinates are the standard ones.
        // X = [1, −1]ᵀ, Y = [0.5, 0.5]: residual block diag(2, 1) + [[0.5, 0.5], [−0.5, −0.5]] → ReLU → [[2.5, 0.5], [0, 0.5]].
        var (_, peft) = OneLayer.Wrap(OneLayer.Linear(3, 3, 3, 0, 0, 0, 2, 0, 0, 0, 1), new SaltConfig { Rank = 1, Ratio = 0.34 });
        var layer = OneLayer.Layer<SaltLayer>(peft);
        Assert.Equal(1, layer.TopCount("default"));
        Assert.True(Weights.MaxAbsDiff(Tensor("salt_S", peft), torch.tensor(new float[] { 3, 2, 1 })) < 1e-6);
        Set(Tensor("salt_U", peft), torch.eye(3));
        Set(Tensor("salt_Vh", peft), torch.eye(3));
        Set(Tensor("salt_X", peft), OneLayer.Matrix(2, 1, 1, -1));
        Set(Tensor("salt_Y", peft), OneLayer.Matrix(1, 2, 0.5f, 0.5f));
        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(layer.Base.Weight, OneLayer.Matrix(3, 3, 3, 0, 0, 0, 2.5f, 0.5f, 0, 0, 0.5f)) < 1e-6);
    }

    [Fact]
    public void Default_init_is_scale_one_shift_zero_X_he_uniform_Y_zero()
    {
        // d_in 30, d_out 40: k = 30, t = max(1, ⌊30·0.1⌋) = 3, residual 27, r = 4: 2·3 + 2·27·4 = 222 trainable.
        torch.manual_seed(12);
        var (_, peft) = OneLayer.Wrap(nn.Linear(30, 40), new SaltConfig { Rank = 4 });
        var shapes = peft.AdapterStateDict("default").ToDictionary(kv => kv.Key[OneLayer.Prefix.Length..], kv => kv.Value.shape);
        Assert.Equal([40L, 30], shapes["salt_U"]);
        Assert.Equal([30L], shapes["salt_S"]);
        Assert.Equal([30L, 30], shapes["salt_Vh"]);
        Assert.Equal([3L], shapes["salt_scale"]);
        Assert.Equal([3L], shapes["salt_shift"]);
        Assert.Equal([27L, 4], shapes["salt_X"]);
        Assert.Equal([4L, 27], shapes["salt_Y"]);
        Assert.Equal(7, shapes.Count);
        Assert.Equal(222, peft.ParameterCounts().Trainable);
        var x = Tensor("salt_X", peft).abs().max().item<float>();
        Assert.InRange(x, 0.6f, (float)Math.Sqrt(6.0 / 4));
        Assert.True(Weights.Exact(Tensor("salt_Y", peft), torch.zeros(4, 27)));
        Assert.True(Weights.Exact(Tensor("salt_scale", peft), torch.ones(3)));
        Assert.True(Weights.Exact(Tensor("salt_shift", peft), torch.zeros(3)));
    }

    [Fact]
    public void Random_init_draws_X_and_Y_with_std_001_and_is_not_the_identity()
    {
        torch.manual_seed(13);
        var (holder, peft) = OneLayer.Wrap(nn.Linear(30, 40), new SaltConfig { Rank = 8, InitWeights = false });
        Assert.InRange(Tensor("salt_X", peft).std().item<float>(), 0.008f, 0.012f);
        Assert.InRange(Tensor("salt_Y", peft).std().item<float>(), 0.008f, 0.012f);
        var x = torch.randn(2, 30);
        using var adapted = holder.call(x);
        using (peft.DisableAdapters())
        {
            using var plain = holder.call(x);
            Assert.False(Weights.Exact(adapted, plain));
        }
    }

    [Fact]
    public void Ratio_one_leaves_no_residual_block_and_still_saves_and_loads()
    {
        torch.manual_seed(14);
        var lin = nn.Linear(3, 4);
        var w0 = lin.weight!.detach().clone();
        var b0 = lin.bias!.detach().clone();
        var (holder, peft) = OneLayer.Wrap(lin, new SaltConfig { Rank = 2, Ratio = 1 });
        Assert.Equal([0L, 2], Tensor("salt_X", peft).shape);
        Set(Tensor("salt_scale", peft), torch.tensor(new float[] { 1.5f, 0.5f, 2 }));
        var x = torch.randn(2, 3);
        using var expected = holder.call(x);
        var dir = Directory.CreateTempSubdirectory("peftsharp-salt-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var fresh = nn.Linear(3, 4);
            using (torch.no_grad())
            {
                fresh.weight!.copy_(w0);
                fresh.bias!.copy_(b0);
            }
            var freshHolder = nn.Sequential(("layer", fresh));
            PeftAdapterFiles.FromPretrained(freshHolder, dir);
            using var got = freshHolder.call(x);
            Assert.True(Weights.Exact(got, expected));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
