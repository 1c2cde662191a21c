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

/// <summary>Factor names, shapes and initial values of the conv-kernel methods, and the DoRA magnitude and merge.</summary>
public class ConvKernelInitTests
{
    private const string Prefix = "base_model.model.layer.";

    private static Conv2d Conv() => nn.Conv2d(16, 8, 3, padding: 1);

    private static IReadOnlyDictionary<string, Tensor> Tensors(AdapterConfig config, nn.Module<Tensor, Tensor> layer)
    {
        var (_, peft) = ConvKernelReferenceTests.Wrap(layer, config);
        return peft.AdapterStateDict("default").ToDictionary(p => p.Key[Prefix.Length..], p => p.Value);
    }

    private static void AssertBound(Tensor t, double bound)
    {
        var max = t.abs().max().item<float>();
        Assert.InRange(max, 0.3 * bound, bound + 1e-7);
    }

    private static void AssertZero(Tensor t) => Assert.Equal(0f, t.abs().max().item<float>());

    [Fact]
    public void Lora_c_has_peft_conv_lora_shapes_kaiming_A_and_zero_B()
    {
        torch.manual_seed(31);
        var t = Tensors(new LoraCConfig { Rank = 4, TargetModules = TargetModules.Of("layer") }, Conv());
        Assert.Equal(new[] { "lora_A.weight", "lora_B.weight" }, t.Keys.Order());
        Assert.Equal(new[] { 4L, 16, 3, 3 }, t["lora_A.weight"].shape);
        Assert.Equal(new[] { 8L, 4, 1, 1 }, t["lora_B.weight"].shape);
        AssertBound(t["lora_A.weight"], 1 / Math.Sqrt(16 * 9));
        AssertZero(t["lora_B.weight"]);
    }

    [Fact]
    public void Conv_lora_has_loralib_shapes_kaiming_A_and_zero_B()
    {
        torch.manual_seed(32);
        var t = Tensors(new ConvLoraConfig { Rank = 2, TargetModules = TargetModules.Of("layer") }, Conv());
        Assert.Equal(new[] { "lora_A", "lora_B" }, t.Keys.Order());
        Assert.Equal(new[] { 2L * 3, 16 * 3 }, t["lora_A"].shape);
        Assert.Equal(new[] { 8L * 3, 2 * 3 }, t["lora_B"].shape);
        AssertBound(t["lora_A"], 1 / Math.Sqrt(16 * 3));
        AssertZero(t["lora_B"]);
        // loralib divides C_out by the groups: a 2-group conv gets B [C_out/2·k, r·k].
        var grouped = Tensors(new ConvLoraConfig { Rank = 2, TargetModules = TargetModules.Of("layer") }, nn.Conv2d(16, 8, 3, groups: 2));
        Assert.Equal(new[] { 4L * 3, 2 * 3 }, grouped["lora_B"].shape);
    }

    [Fact]
    public void Cp_lora_has_four_factors_with_zero_out_factor_and_scaled_uniform_others()
    {
        torch.manual_seed(33);
        var t = Tensors(new CpLoraConfig { Rank = 5, TargetModules = TargetModules.Of("layer") }, Conv());
        Assert.Equal(new[] { "lora_cp_in", "lora_cp_kh", "lora_cp_kw", "lora_cp_out" }, t.Keys.Order());
        Assert.Equal(new[] { 8L, 5 }, t["lora_cp_out"].shape);
        Assert.Equal(new[] { 16L, 5 }, t["lora_cp_in"].shape);
        Assert.Equal(new[] { 3L, 5 }, t["lora_cp_kh"].shape);
        Assert.Equal(new[] { 3L, 5 }, t["lora_cp_kw"].shape);
        AssertZero(t["lora_cp_out"]);
        AssertBound(t["lora_cp_in"], 1 / Math.Sqrt(16));
        AssertBound(t["lora_cp_kh"], 1 / Math.Sqrt(3));
        AssertBound(t["lora_cp_kw"], 1 / Math.Sqrt(3));
        // On a Linear only the out and in factors exist.
        var linear = Tensors(new CpLoraConfig { Rank = 5, TargetModules = TargetModules.Of("layer") }, nn.Linear(7, 4));
        Assert.Equal(new[] { "lora_cp_in", "lora_cp_out" }, linear.Keys.Order());
    }

    [Fact]
    public void Dora_magnitude_starts_at_the_per_channel_kernel_norm_in_peft_shape()
    {
        torch.manual_seed(34);
        var conv = Conv();
        using var norms = conv.weight!.detach().pow(2).sum([1, 2, 3]).sqrt();
        var t = Tensors(new CpLoraConfig { Rank = 2, UseDora = true, TargetModules = TargetModules.Of("layer") }, conv);
        Assert.Equal(new[] { 1L, 8, 1, 1 }, t["lora_magnitude_vector"].shape);
        Assert.True(Weights.MaxAbsDiff(t["lora_magnitude_vector"].flatten(), norms) <= 1e-6);
        var linear = Tensors(new ConvLoraConfig { Rank = 2, UseDora = true, TargetModules = TargetModules.Of("layer") }, nn.Linear(7, 4));
        Assert.Equal(new[] { 4L }, linear["lora_magnitude_vector"].shape);
    }

    [Fact]
    public void Dora_c_merges_to_magnitude_times_normalised_kernel_and_back()
    {
        torch.manual_seed(35);
        var conv = Conv();
        using var k0 = conv.weight!.detach().clone();
        var (_, peft) = ConvKernelReferenceTests.Wrap(conv, new LoraCConfig { Rank = 2, Alpha = 4, UseDora = true, InitLoraWeights = false, TargetModules = TargetModules.Of("layer") });
        var t = peft.AdapterStateDict("default");
        using (torch.no_grad())
        {
            t[Prefix + "lora_magnitude_vector"].mul_(torch.rand(1, 8, 1, 1) + 0.5);
        }
        // By the formula: V = K0 + (α/r)·(B·A) viewed as the kernel; K' = m / ‖V‖ per output channel ⊙ V.
        using var delta = t[Prefix + "lora_B.weight"].detach().flatten(1).matmul(t[Prefix + "lora_A.weight"].detach().flatten(1)).reshape(8, 16, 3, 3) * 2.0;
        using var v = k0 + delta;
        using var expected = t[Prefix + "lora_magnitude_vector"].detach().reshape(8, 1, 1, 1) / v.pow(2).sum([1, 2, 3], keepdim: true).sqrt() * v;
        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(conv.weight!, expected) <= 1e-6);
        peft.Unmerge();
        Assert.True(Weights.MaxAbsDiff(conv.weight!, k0) <= 1e-6);
    }

    [Fact]
    public void Only_the_adapter_tensors_train()
    {
        var holder = nn.Sequential(("layer", Conv()));
        PeftModel.Create(holder, new CpLoraConfig { Rank = 2, UseDora = true, TargetModules = TargetModules.Of("layer") });
        Assert.Equal(
            new[] { "layer.lora_cp_in.default", "layer.lora_cp_kh.default", "layer.lora_cp_kw.default", "layer.lora_cp_out.default", "layer.lora_magnitude_vector.default" },
            holder.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).Order());
    }
}
