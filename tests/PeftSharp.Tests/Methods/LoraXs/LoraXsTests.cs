using PeftSharp.Core;
using PeftSharp.Methods.LoraXs;
using PeftSharp.Tests.Methods.Decompositions;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoraXs;

/// <summary>LoRA-XS: the reference's §4a example, the SVD frames, what trains, and the saved tensors.</summary>
public class LoraXsTests
{
    [Fact]
    public void Reference_example_frames_identity_at_R0_and_delta_at_R01()
    {
        // W0 = [[3,0],[4,5]], r = 1, s = 1: B = ±[0.316228, 0.948683]ᵀ, A = ±[4.743416, 4.743416] (σ₁ = 6.708204).
        var (holder, peft) = OneLayer.Wrap(OneLayer.Linear(2, 2, 3, 0, 4, 5), new LoraXsConfig { Rank = 1, Alpha = 1 });
        var layer = OneLayer.Layer<LoraXsLayer>(peft);
        Assert.True(Weights.MaxAbsDiff(layer.B("default").abs(), OneLayer.Matrix(2, 1, 0.316228f, 0.948683f)) < 1e-5);
        Assert.True(Weights.MaxAbsDiff(layer.A("default").abs(), OneLayer.Matrix(1, 2, 4.743416f, 4.743416f)) < 1e-5);
        // Sign-free: B·A = σ₁ u₁ v₁ᵀ = [[1.5, 1.5], [4.5, 4.5]].
        Assert.True(Weights.MaxAbsDiff(layer.B("default").matmul(layer.A("default")), OneLayer.Matrix(2, 2, 1.5f, 1.5f, 4.5f, 4.5f)) < 1e-5);

        var x = OneLayer.Matrix(2, 2, 1, -1, 0.5f, 2);
        using var baseOut = x.matmul(OneLayer.Matrix(2, 2, 3, 0, 4, 5).t());
        using (var atInit = holder.call(x))
        {
            Assert.True(Weights.Exact(atInit, baseOut), "R = 0 must leave the output exactly the base's");
        }

        using (torch.no_grad())
        {
            layer.R("default").fill_(0.1);
        }
        var delta = layer.DeltaWeight("default")!;
        Assert.True(Weights.MaxAbsDiff(delta, OneLayer.Matrix(2, 2, 0.15f, 0.15f, 0.45f, 0.45f)) < 1e-6);
        using var unmerged = holder.call(x);
        using var expected = x.matmul(OneLayer.Matrix(2, 2, 3.15f, 0.15f, 4.45f, 5.45f).t());
        Assert.True(Weights.MaxAbsDiff(unmerged, expected) < 1e-5);
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-6);
        Assert.Equal(1, peft.ParameterCounts().Trainable);
    }

    [Fact]
    public void Frames_are_the_truncated_svd_and_the_base_weight_is_untouched()
    {
        torch.manual_seed(3);
        var lin = nn.Linear(7, 5, hasBias: false);
        var w0 = lin.weight!.detach().clone();
        var (_, peft) = OneLayer.Wrap(lin, new LoraXsConfig { Rank = 3 });
        var layer = OneLayer.Layer<LoraXsLayer>(peft);
        var b = layer.B("default");
        var a = layer.A("default");
        Assert.True(Weights.Exact(lin.weight!, w0), "LoRA-XS does not rewrite W");
        Assert.True(Weights.MaxAbsDiff(b.t().matmul(b), torch.eye(3)) < 1e-5, "B = U_r has orthonormal columns");
        // A = Σ_r V_rᵀ = U_rᵀ W, and W − B·A keeps exactly the singular values beyond r.
        Assert.True(Weights.MaxAbsDiff(a, b.t().matmul(w0)) < 1e-5);
        var sv = torch.linalg.svdvals(w0);
        Assert.Equal(sv[3..].pow(2).sum().sqrt().item<float>(), (w0 - b.matmul(a)).norm().item<float>(), 4);
        Assert.True(Weights.MaxAbsDiff(a.pow(2).sum(1).sqrt(), sv[..3]) < 1e-5, "row i of A has norm σ_i");
    }

    [Fact]
    public void Only_R_trains_and_its_gradient_at_zero_is_nonzero()
    {
        torch.manual_seed(5);
        var (holder, peft) = OneLayer.Wrap(nn.Linear(6, 4), new LoraXsConfig { Rank = 2, Alpha = 4 });
        var layer = OneLayer.Layer<LoraXsLayer>(peft);
        Assert.Equal(["base_model.model.layer.lora_xs_R.default.weight"], peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => p.Name));
        holder.call(torch.randn(3, 6)).pow(2).sum().backward();
        Assert.True(layer.R("default").grad!.abs().max().item<float>() > 0);
        Assert.Null(layer.A("default").grad);
        Assert.Null(layer.B("default").grad);
    }

    [Fact]
    public void Official_init_draws_R_with_std_1e5()
    {
        torch.manual_seed(9);
        var (_, peft) = OneLayer.Wrap(nn.Linear(40, 30), new LoraXsConfig { Rank = 12, InitWeights = false });
        var r = OneLayer.Layer<LoraXsLayer>(peft).R("default");
        var std = r.std().item<float>();
        Assert.InRange(std, 0.8e-5f, 1.2e-5f);
    }

    [Fact]
    public void Saved_tensors_have_lora_xs_names_and_shapes()
    {
        var (_, peft) = OneLayer.Wrap(nn.Linear(6, 4), new LoraXsConfig { Rank = 3 });
        var shapes = peft.AdapterStateDict("default").ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(3, shapes.Count);
        Assert.Equal([3L, 6], shapes[OneLayer.Prefix + "lora_xs_A.weight"]);
        Assert.Equal([3L, 3], shapes[OneLayer.Prefix + "lora_xs_R.weight"]);
        Assert.Equal([4L, 3], shapes[OneLayer.Prefix + "lora_xs_B.weight"]);
    }
}
