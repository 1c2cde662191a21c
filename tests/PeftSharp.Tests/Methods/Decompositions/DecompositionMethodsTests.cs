using PeftSharp.Core;
using PeftSharp.Methods.LolDu;
using PeftSharp.Methods.LoraSb;
using PeftSharp.Methods.LoraXs;
using PeftSharp.Methods.Salt;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Decompositions;

/// <summary>What LoRA-XS, LoRA-SB, LoLDU and SALT share: GPT-2 Conv1D layout, supported layers, rank limits, no leaks.</summary>
public class DecompositionMethodsTests
{
    private static AdapterConfig Config(string method) => method switch
    {
        "lora-xs" => new LoraXsConfig { Rank = 2, Alpha = 3 },
        "lora-sb" => new LoraSbConfig { Rank = 2 },
        "loldu" => new LolDuConfig { Rank = 2, Alpha = 2 },
        "salt" => new SaltConfig { Rank = 2, Ratio = 0.5 },
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    private static void Randomise(PeftModel peft)
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.TrainableParameters())
        {
            p.add_(torch.randn_like(p) * 0.3);
        }
    }

    [Theory]
    [InlineData("lora-xs")]
    [InlineData("lora-sb")]
    [InlineData("loldu")]
    [InlineData("salt")]
    public void Conv1D_delta_is_out_in_and_applied_transposed(string method)
    {
        // Conv1D stores [in, out] and computes x·W + b; the adapted layer must compute x·(W + ΔWᵀ) + b, merged or not.
        torch.manual_seed(21);
        var conv = OneLayer.Conv1D(5, 4);
        var w0 = conv.weight.detach().clone();
        var b0 = conv.bias.detach().clone();
        var (holder, peft) = OneLayer.Wrap(conv, Config(method));
        Randomise(peft);
        var layer = peft.AdapterLayers().Single().Layer;
        var delta = layer.DeltaWeight("default")!;
        Assert.Equal([4L, 5], delta.shape);
        var x = torch.randn(3, 5);
        using var expected = x.matmul(w0 + delta.t()) + b0;
        using var unmerged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(unmerged, expected) < 1e-5, $"{method}: unmerged differs by {Weights.MaxAbsDiff(unmerged, expected)}");
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, expected) < 1e-5);
    }

    [Theory]
    [InlineData("lora-xs")]
    [InlineData("lora-sb")]
    [InlineData("loldu")]
    [InlineData("salt")]
    public void Embedding_and_Conv2d_are_not_supported(string method)
    {
        foreach (nn.Module<Tensor, Tensor> module in new nn.Module<Tensor, Tensor>[] { nn.Embedding(10, 4), nn.Conv2d(3, 4, 3) })
        {
            var holder = nn.Sequential(("layer", module));
            var e = Assert.Throws<PeftException>(() => PeftModel.Create(holder, Config(method) with { TargetModules = TargetModules.Of("layer") }));
            Assert.Contains("cannot adapt", e.Message);
        }
    }

    [Theory]
    [InlineData("lora-xs")]
    [InlineData("lora-sb")]
    [InlineData("loldu")]
    public void A_rank_above_min_dimension_is_refused_naming_r(string method)
    {
        var holder = nn.Sequential(("layer", nn.Linear(3, 8)));
        var config = Config(method) switch
        {
            LoraXsConfig c => (AdapterConfig)(c with { Rank = 4 }),
            LoraSbConfig c => c with { Rank = 4 },
            LolDuConfig c => c with { Rank = 4 },
            _ => throw new InvalidOperationException(),
        };
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(holder, config with { TargetModules = TargetModules.Of("layer") }));
        Assert.Contains("r = 4 exceeds min(d_in, d_out) = 3", e.Message);
    }

    [Theory]
    [InlineData("lora-xs")]
    [InlineData("lora-sb")]
    [InlineData("loldu")]
    [InlineData("salt")]
    public void Hundred_steps_leak_no_tensors(string method)
    {
        torch.manual_seed(22);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, Config(method) with { TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") });
        using var x = torch.randn(3, 4);
        long live = 0;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                net.call(x).pow(2).mean().backward();
                using (torch.no_grad())
                {
                    foreach (var p in peft.TrainableParameters())
                    {
                        p.add_(p.grad! * -0.01);
                        p.grad!.zero_();
                    }
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
