using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Lora;

/// <summary>The numeric examples of ../shared/reference/methods_training.md §1 and §17, computed by hand there.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class LoraReferenceTests
{
    private static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, LoraConfig config)
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config with { TargetModules = TargetModules.Of("layer") }));
    }

    [Fact]
    public void Pissa_init_matches_the_reference_example_and_keeps_the_output()
    {
        var lin = nn.Linear(2, 2, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.copy_(torch.tensor(new float[] { 3, 0, 4, 5 }, 2, 2));
        }
        var x = torch.tensor(new float[] { 0.5f, -2f, 1f, 3f }, 2, 2);
        var (holder, peft) = Wrap(lin, new LoraConfig { Rank = 1, Alpha = 2, InitLoraWeights = InitLoraWeights.Pissa });
        var t = peft.AdapterStateDict("default");
        var a = t["base_model.model.layer.lora_A.weight"];
        var b = t["base_model.model.layer.lora_B.weight"];
        // A = ±[[1.29501, 1.29501]], B = ±[[0.579146],[1.737438]]: compare B·A (sign-free).
        var ba = b.matmul(a);
        var expectedBa = torch.tensor(new float[] { 1.29501f * 0.579146f, 1.29501f * 0.579146f, 1.29501f * 1.737438f, 1.29501f * 1.737438f }, 2, 2);
        Assert.True(Weights.MaxAbsDiff(ba, expectedBa) < 1e-4);
        Assert.True(Weights.MaxAbsDiff(a.abs(), torch.full(1, 2, 1.29501f)) < 1e-4);
        var residual = lin.weight!;
        Assert.True(Weights.MaxAbsDiff(residual, torch.tensor(new float[] { 1.5f, -1.5f, -0.5f, 0.5f }, 2, 2)) < 1e-5);
        Assert.Equal(2.236068, residual.norm().item<float>(), 5);
        using var y = holder.call(x);
        using var original = x.matmul(torch.tensor(new float[] { 3, 0, 4, 5 }, 2, 2).t());
        Assert.True(Weights.MaxAbsDiff(y, original) < 1e-5);
    }

    [Fact]
    public void Olora_init_is_truncated_qr_with_residual_and_keeps_the_output()
    {
        torch.manual_seed(11);
        var lin = nn.Linear(5, 4, hasBias: false);
        var w0 = lin.weight!.detach().clone();
        var x = torch.randn(3, 5);
        using var before = lin.call(x);
        var (holder, peft) = Wrap(lin, new LoraConfig { Rank = 2, Alpha = 4, InitLoraWeights = InitLoraWeights.Olora });
        var t = peft.AdapterStateDict("default");
        var a = t["base_model.model.layer.lora_A.weight"];
        var b = t["base_model.model.layer.lora_B.weight"];
        // B has orthonormal columns, A = Bᵀ W0 (R's first rows), residual = W0 − s·B·A with s = 2 (not divided out).
        Assert.True(Weights.MaxAbsDiff(b.t().matmul(b), torch.eye(2)) < 1e-5);
        Assert.True(Weights.MaxAbsDiff(a, b.t().matmul(w0)) < 1e-5);
        Assert.True(Weights.MaxAbsDiff(lin.weight!, w0 - 2 * b.matmul(a)) < 1e-5);
        using var after = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(after, before) < 1e-5);
    }

    [Fact]
    public void Embedding_lora_matches_the_reference_example_and_merges()
    {
        var emb = nn.Embedding(4, 3);
        using (torch.no_grad())
        {
            emb.weight!.zero_();
        }
        var (holder, peft) = Wrap(emb, new LoraConfig { Rank = 2, Alpha = 2 });
        var t = peft.AdapterStateDict("default");
        var a = t["base_model.model.layer.lora_embedding_A"];
        Assert.True(Weights.Exact(a, torch.zeros(2, 4)), "embedding LoRA initialises A = 0");
        using (torch.no_grad())
        {
            a.copy_(torch.tensor(new float[] { 0, 1, 0, 2, 1, 0, 0, 1 }, 2, 4));
            t["base_model.model.layer.lora_embedding_B"].copy_(torch.tensor(new float[] { 1, 0, 0, 1, 1, 1 }, 3, 2));
        }
        var ids = torch.tensor(new long[] { 3, 0 });
        using var y = holder.call(ids);
        Assert.Equal(new float[] { 2, 1, 3, 0, 1, 1 }, y.data<float>().ToArray());
        peft.Merge();
        Assert.Equal(new float[] { 0, 1, 1, 1, 0, 1, 0, 0, 0, 2, 1, 3 }, emb.weight!.data<float>().ToArray());
        using var merged = holder.call(ids);
        Assert.Equal(new float[] { 2, 1, 3, 0, 1, 1 }, merged.data<float>().ToArray());
    }

    [Fact]
    public void Conv2d_lora_matches_the_reference_example_and_merges()
    {
        var conv = nn.Conv2d(1, 2, 2, bias: false);
        using (torch.no_grad())
        {
            conv.weight!.zero_();
        }
        var (holder, peft) = Wrap(conv, new LoraConfig { Rank = 1, Alpha = 1 });
        var t = peft.AdapterStateDict("default");
        using (torch.no_grad())
        {
            t["base_model.model.layer.lora_A.weight"].copy_(torch.tensor(new float[] { 1, 2, 3, 4 }, 1, 1, 2, 2));
            t["base_model.model.layer.lora_B.weight"].copy_(torch.tensor(new float[] { 2, -1 }, 2, 1, 1, 1));
        }
        var x = torch.tensor(new float[] { 1, 0, 2, 0, 1, 0, 3, 0, 1 }, 1, 1, 3, 3);
        using var y = holder.call(x);
        Assert.Equal(new float[] { 10, 14, 22, 10, -5, -7, -11, -5 }, y.data<float>().ToArray());
        peft.Merge();
        Assert.Equal(new float[] { 2, 4, 6, 8, -1, -2, -3, -4 }, conv.weight!.data<float>().ToArray());
        using var merged = holder.call(x);
        Assert.Equal(new float[] { 10, 14, 22, 10, -5, -7, -11, -5 }, merged.data<float>().ToArray());
    }

    [Fact]
    public void Dilated_conv_lora_merged_equals_unmerged()
    {
        torch.manual_seed(12);
        var conv = nn.Conv2d(3, 4, 3, padding: 2, dilation: 2);
        var (holder, peft) = Wrap(conv, new LoraConfig { Rank = 2, Alpha = 2 });
        using (torch.no_grad())
        {
            foreach (var p in peft.AdapterStateDict("default").Values)
            {
                p.copy_(torch.randn_like(p));
            }
        }
        var x = torch.randn(2, 3, 7, 7);
        using var unmerged = holder.call(x);
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) < 1e-4);
    }

    [Fact]
    public void Gaussian_init_draws_A_with_std_one_over_r_and_zero_B()
    {
        torch.manual_seed(13);
        var (_, peft) = Wrap(nn.Linear(400, 300), new LoraConfig { Rank = 4, InitLoraWeights = InitLoraWeights.Gaussian });
        var t = peft.AdapterStateDict("default");
        // 1,600 draws: the sample std of N(0, 0.25²) is within 0.015 (3.4 standard errors) of 0.25; 1/√r would be 0.5.
        Assert.InRange(t["base_model.model.layer.lora_A.weight"].std().item<float>(), 0.235, 0.265);
        Assert.Equal(0f, t["base_model.model.layer.lora_B.weight"].abs().max().item<float>());
    }

    [Fact]
    public void Default_init_is_kaiming_uniform_with_bound_one_over_sqrt_fan_in()
    {
        torch.manual_seed(14);
        var (_, peft) = Wrap(nn.Linear(100, 300), new LoraConfig { Rank = 64 });
        var a = peft.AdapterStateDict("default")["base_model.model.layer.lora_A.weight"];
        Assert.True(a.abs().max().item<float>() <= 0.1f);
        Assert.True(a.abs().max().item<float>() > 0.099f);
    }
}
