using PeftSharp.Core;
using PeftSharp.Methods.ConvKernel;
using PeftSharp.Methods.ConvLora;
using PeftSharp.Methods.CpLora;
using PeftSharp.Methods.LoraC;
using PeftSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.ConvKernel;

/// <summary>
/// The reference's numeric unit tests for the conv-kernel LoRAs (§16b CP-LoRA and convLoRA, §17 conv LoRA with dilation),
/// and LoRA-C / DoRA-C against PEFT's own conv + linear LoRA / DoRA fixtures (same tensors, same maths).
/// </summary>
public class ConvKernelReferenceTests
{
    private const string Prefix = "base_model.model.layer.";

    internal static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, AdapterConfig config)
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config));
    }

    internal static void Set(PeftModel peft, string key, float[] values, params long[] shape)
    {
        using var _ = torch.no_grad();
        peft.AdapterStateDict("default")[Prefix + key].copy_(torch.tensor(values, shape));
    }

    private static Tensor T(float[] values, params long[] shape) => torch.tensor(values, shape);

    private static Conv2d ZeroConv(long cin, long cout, long k, long dilation = 1)
    {
        var conv = nn.Conv2d(cin, cout, k, dilation: dilation, bias: false);
        using var _ = torch.no_grad();
        conv.weight!.zero_();
        return conv;
    }

    private static KernelAdapterLayer Layer(PeftModel peft) => (KernelAdapterLayer)peft.AdapterLayers().Single().Layer;

    [Fact]
    public void Cp_lora_rank_one_example_builds_the_outer_product_kernel_with_seven_parameters()
    {
        // C_out = 2, C_in = 1, k = 2, R = 1, s = 1: a = [1, −1], b = [2], c = [1, 0], d = [1, 3].
        var (_, peft) = Wrap(ZeroConv(1, 2, 2), new CpLoraConfig { Rank = 1, Alpha = 1, TargetModules = TargetModules.Of("layer") });
        Set(peft, "lora_cp_out", [1, -1], 2, 1);
        Set(peft, "lora_cp_in", [2], 1, 1);
        Set(peft, "lora_cp_kh", [1, 0], 2, 1);
        Set(peft, "lora_cp_kw", [1, 3], 2, 1);
        var expected = T([2, 6, 0, 0, -2, -6, 0, 0], 2, 1, 2, 2);
        Assert.True(Weights.Exact(Layer(peft).DeltaWeight("default")!, expected));
        Assert.Equal(7, peft.ParameterCounts().Trainable);
    }

    [Fact]
    public void Cp_lora_four_convolutions_equal_one_convolution_with_the_composed_kernel()
    {
        var (holder, peft) = Wrap(ZeroConv(1, 2, 2), new CpLoraConfig { Rank = 1, Alpha = 1, TargetModules = TargetModules.Of("layer") });
        Set(peft, "lora_cp_out", [1, -1], 2, 1);
        Set(peft, "lora_cp_in", [2], 1, 1);
        Set(peft, "lora_cp_kh", [1, 0], 2, 1);
        Set(peft, "lora_cp_kw", [1, 3], 2, 1);
        // x (3×3) = [[1,0,2],[0,1,0],[3,0,1]]; ΔK[0,0] = [[2,6],[0,0]] ⋆ x = [[2, 12], [6, 2]]; channel 1 is its negative.
        using var y = holder.call(T([1, 0, 2, 0, 1, 0, 3, 0, 1], 1, 1, 3, 3));
        Assert.True(Weights.Exact(y, T([2, 12, 6, 2, -2, -12, -6, -2], 1, 2, 2, 2)));
    }

    [Fact]
    public void Conv_lora_example_views_B_times_A_as_the_kernel_and_merges_to_the_same_output()
    {
        // C_in = C_out = 1, k = 2, r = 1, s = 1: A, B are 2×2; B·A = [[1, 2], [5, 8]] viewed as the 1×1×2×2 kernel.
        var conv = ZeroConv(1, 1, 2);
        var (holder, peft) = Wrap(conv, new ConvLoraConfig { Rank = 1, Alpha = 1, TargetModules = TargetModules.Of("layer") });
        Set(peft, "lora_A", [1, 2, 3, 4], 2, 2);
        Set(peft, "lora_B", [1, 0, 2, 1], 2, 2);
        Assert.True(Weights.Exact(Layer(peft).DeltaWeight("default")!, T([1, 2, 5, 8], 1, 1, 2, 2)));
        using var x = T([1, 0, 2, 0, 1, 0, 3, 0, 1], 1, 1, 3, 3);
        using var unmerged = holder.call(x);
        // [[1,2],[5,8]] ⋆ x = [[1 + 8, 4 + 5], [2 + 15, 1 + 8]].
        Assert.True(Weights.Exact(unmerged, T([9, 9, 17, 9], 1, 1, 2, 2)));
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-6);
        Assert.Equal(8, peft.ParameterCounts().Trainable);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Lora_c_section_17_example_gives_the_hand_output_and_merges_equally_with_dilation(long dilation)
    {
        // C_in = 1, C_out = 2, k = 2, r = 1, s = 1; A[0,0] = [[1,2],[3,4]], B[:,0] = [2, −1]; base kernel 0, so y = adapter.
        var conv = ZeroConv(1, 2, 2, dilation);
        var (holder, peft) = Wrap(conv, new LoraCConfig { Rank = 1, Alpha = 1, TargetModules = TargetModules.Of("layer") });
        Set(peft, "lora_A.weight", [1, 2, 3, 4], 1, 1, 2, 2);
        Set(peft, "lora_B.weight", [2, -1], 2, 1, 1, 1);
        Assert.True(Weights.Exact(Layer(peft).DeltaWeight("default")!, T([2, 4, 6, 8, -1, -2, -3, -4], 2, 1, 2, 2)));
        using var x = T([1, 0, 2, 0, 1, 0, 3, 0, 1], 1, 1, 3, 3);
        using var unmerged = holder.call(x);
        // Dilation 2 reads x[0,0], x[0,2], x[2,0], x[2,2] = 1, 2, 3, 1: A gives 1 + 4 + 9 + 4 = 18.
        var expected = dilation == 1
            ? T([10, 14, 22, 10, -5, -7, -11, -5], 1, 2, 2, 2)
            : T([36, -18], 1, 2, 1, 1);
        Assert.True(Weights.Exact(unmerged, expected));
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-6);
    }

    // PEFT's toy-conv fixtures adapt emb, conv and lin; the embedding update is folded into the base here by hand (LoRA:
    // E += s·(B·A)ᵀ; DoRA: Eᵀ ← m/‖V‖ ⊙ V with V = Eᵀ + s·B·A, the norm over the vocabulary), and conv + lin run as LoRA-C /
    // DoRA-C with PEFT's saved tensors, whose names and shapes must equal ours.
    [Theory]
    [InlineData("toy-conv-lora", false)]
    [InlineData("toy-conv-dora", true)]
    public void Lora_c_and_dora_c_reproduce_peft_conv_and_linear_lora_logits(string caseId, bool dora)
    {
        var file = SharedPaths.Fixture("cases", caseId, "adapter", "adapter_model.safetensors");
        var net = ToyConvNet.FromFixture();
        const double s = 8.0 / 4;
        using (torch.no_grad())
        {
            var emb = (Embedding)net.emb;
            using var a = Weights.Read(file, "base_model.model.emb.lora_embedding_A");
            using var b = Weights.Read(file, "base_model.model.emb.lora_embedding_B");
            var v = emb.weight!.t() + b.matmul(a) * s;
            if (dora)
            {
                using var m = Weights.Read(file, "base_model.model.emb.lora_magnitude_vector");
                v = (m / v.norm(1, keepdim: false)).unsqueeze(1) * v;
            }
            emb.weight!.copy_(v.t());
        }
        var peft = PeftModel.Create(net, new LoraCConfig { Rank = 4, Alpha = 8, UseDora = dora, TargetModules = TargetModules.Of("conv", "lin") });
        var ours = peft.AdapterStateDict("default");
        using var safetensors = PeftSharp.IO.Safetensors.SafetensorsFile.Open(file);
        var theirs = safetensors.Entries.Select(e => e.Name).Where(n => !n.Contains(".emb.")).Order().ToList();
        Assert.Equal(theirs, ours.Keys.Order());
        using (torch.no_grad())
        {
            foreach (var key in theirs)
            {
                using var t = safetensors.Read(key);
                Assert.Equal(t.shape, ours[key].shape);
                ours[key].copy_(t);
            }
        }
        net.eval();
        using var ids = Weights.InputIds();
        using var expected = Weights.Fixture($"cases/{caseId}/expected.safetensors:logits_adapter");
        using var expectedMerged = Weights.Fixture($"cases/{caseId}/expected.safetensors:logits_merged");
        using (torch.no_grad())
        {
            using var logits = net.call(ids);
            Assert.InRange(Weights.MaxAbsDiff(logits, expected), 0, 1e-4);
            peft.Merge();
            using var merged = net.call(ids);
            Assert.InRange(Weights.MaxAbsDiff(merged, expectedMerged), 0, 1e-4);
        }
    }
}
