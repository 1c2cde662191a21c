using PeftSharp.Core;
using PeftSharp.Methods.LolDu;
using PeftSharp.Tests.Methods.Decompositions;
using PeftSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LolDu;

/// <summary>LoLDU: the reference's §6 example, the LU factors, the pivot guard, and what trains.</summary>
public class LolDuTests
{
    [Fact]
    public void Reference_example_factors_residual_and_trained_weight()
    {
        // W0 = [[2,1],[4,3]], r = 1, σ = 1: P = [[0,1],[1,0]], L = [[1,0],[0.5,1]], U_lu = [[4,3],[0,−0.5]], D = [4, −0.5],
        // U = [[1,0.75],[0,1]]; so P·L_r = [[0.5],[1]], U_r = [[1, 0.75]], z = z₀ = [4].
        var (holder, peft) = OneLayer.Wrap(OneLayer.Linear(2, 2, 2, 1, 4, 3), new LolDuConfig { Rank = 1, Alpha = 1 });
        var layer = OneLayer.Layer<LolDuLayer>(peft);
        Assert.True(Weights.Exact(layer.L("default"), OneLayer.Matrix(2, 1, 0.5f, 1)));
        Assert.True(Weights.Exact(layer.U("default"), OneLayer.Matrix(1, 2, 1, 0.75f)));
        Assert.True(Weights.Exact(layer.Z("default"), torch.tensor(new float[] { 4 })));
        Assert.True(Weights.Exact(layer.Z0("default"), torch.tensor(new float[] { 4 })));
        // The official residual W0 − σ·P L_r diag(z₀) U_r = [[0, −0.5], [0, 0]]: our delta form adds exactly what it removes.
        var lu = (layer.L("default") * layer.Z0("default")).matmul(layer.U("default"));
        Assert.True(Weights.Exact(OneLayer.Matrix(2, 2, 2, 1, 4, 3) - lu, OneLayer.Matrix(2, 2, 0, -0.5f, 0, 0)));

        var eye = torch.eye(2);
        using (var atInit = holder.call(eye))
        {
            Assert.True(Weights.Exact(atInit, OneLayer.Matrix(2, 2, 2, 1, 4, 3).t()), "output at init is the base's exactly");
        }
        using (torch.no_grad())
        {
            layer.Z("default").fill_(5);
        }
        // After z ← [5] the effective weight is [[2.5, 1.375], [5, 3.75]] (x = I returns Wᵀ).
        var expected = OneLayer.Matrix(2, 2, 2.5f, 1.375f, 5, 3.75f);
        using (var unmerged = holder.call(eye))
        {
            Assert.True(Weights.MaxAbsDiff(unmerged, expected.t()) < 1e-6);
        }
        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(layer.Base.Weight, expected) < 1e-6);
        peft.Unmerge();
        Assert.True(Weights.MaxAbsDiff(layer.Base.Weight, OneLayer.Matrix(2, 2, 2, 1, 4, 3)) < 1e-6);
        Assert.Equal(1, peft.ParameterCounts().Trainable);
    }

    [Theory]
    [InlineData(3, 5)]
    [InlineData(5, 3)]
    public void Full_rank_factors_rebuild_a_rectangular_weight(int outFeatures, int inFeatures)
    {
        torch.manual_seed(outFeatures * 10 + inFeatures);
        var lin = nn.Linear(inFeatures, outFeatures, hasBias: false);
        var (_, peft) = OneLayer.Wrap(lin, new LolDuConfig { Rank = 3 });
        var layer = OneLayer.Layer<LolDuLayer>(peft);
        Assert.Equal([outFeatures, 3L], layer.L("default").shape);
        Assert.Equal([3L, inFeatures], layer.U("default").shape);
        // r = min(d_in, d_out): P·L·diag(D)·U is the whole weight; U is unit upper triangular.
        var rebuilt = (layer.L("default") * layer.Z0("default")).matmul(layer.U("default"));
        Assert.True(Weights.MaxAbsDiff(rebuilt, lin.weight!) < 1e-5);
        var u = layer.U("default");
        Assert.True(Weights.MaxAbsDiff(u.diagonal(), torch.ones(3)) < 1e-6);
        Assert.True(Weights.Exact(u.tril(-1), torch.zeros(3, inFeatures)));
        Assert.Equal(["base_model.model.layer.loldu_z.default"], peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => p.Name));
    }

    [Fact]
    public void A_weight_of_rank_below_r_is_refused_and_the_model_is_left_alone()
    {
        var lin = OneLayer.Linear(2, 2, 1, 2, 2, 4);
        var holder = nn.Sequential(("layer", lin));
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(holder, new LolDuConfig { Rank = 2, TargetModules = TargetModules.Of("layer") }));
        Assert.Contains("rank is below r = 2", e.Message);
        Assert.IsType<Linear>(holder.named_children().Single().module);
        Assert.True(Weights.Exact(((Linear)lin).weight!, OneLayer.Matrix(2, 2, 1, 2, 2, 4)));
    }

    [Fact]
    public void Saved_tensors_have_loldu_names_and_shapes()
    {
        var (_, peft) = OneLayer.Wrap(nn.Linear(6, 4), new LolDuConfig { Rank = 3 });
        var shapes = peft.AdapterStateDict("default").ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(4, shapes.Count);
        Assert.Equal([4L, 3], shapes[OneLayer.Prefix + "loldu_L"]);
        Assert.Equal([3L, 6], shapes[OneLayer.Prefix + "loldu_U"]);
        Assert.Equal([3L], shapes[OneLayer.Prefix + "loldu_z"]);
        Assert.Equal([3L], shapes[OneLayer.Prefix + "loldu_z0"]);
    }
}
