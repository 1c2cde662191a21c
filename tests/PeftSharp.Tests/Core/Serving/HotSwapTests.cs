using System.Runtime.InteropServices;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Core.Serving;

/// <summary>
/// PEFT's <c>hotswap_adapter</c>: an adapter's weights replaced in place by another adapter's. The reference is the same
/// base with the new adapter loaded fresh from its folder.
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public sealed class HotSwapTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("peftsharp-hotswap-").FullName;
    private readonly Dictionary<string, Tensor> _baseState;

    public HotSwapTests()
    {
        torch.manual_seed(81);
        _baseState = new ToyConvNet().named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    public void Dispose() => Directory.Delete(_dir, true);

    // libtorch's pointer to the first byte of a tensor's storage: equal before and after means nothing was reallocated.
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSStorage_data_ptr(IntPtr tensor);

    private static TargetModules AllKinds => TargetModules.Of("emb", "conv", "lin");

    private ToyConvNet FreshBase()
    {
        var net = new ToyConvNet();
        using (torch.no_grad())
        {
            foreach (var (n, p) in net.named_parameters())
            {
                p.copy_(_baseState[n]);
            }
        }
        net.eval();
        return net;
    }

    // Saves a randomised adapter of this config trained on nothing, and returns its folder.
    private string SaveAdapter(string name, AdapterConfig config, int seed)
    {
        torch.manual_seed(seed);
        var peft = PeftModel.Create(FreshBase(), config);
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.copy_(torch.randn_like(p) * 0.3);
            }
        }
        var folder = Path.Combine(_dir, name);
        PeftAdapterFiles.Save(peft, folder);
        return folder;
    }

    private Tensor FreshOutput(string folder, Tensor ids)
    {
        var net = FreshBase();
        PeftAdapterFiles.FromPretrained(net, folder);
        using var _ = torch.no_grad();
        return net.call(ids);
    }

    private static Dictionary<string, IntPtr> Pointers(PeftModel peft) =>
        peft.AdapterStateDict("default").ToDictionary(kv => kv.Key, kv => THSStorage_data_ptr(kv.Value.Handle));

    // A padded rank changes the reduction length of the matmul/conv kernels, so float32 outputs may differ in the last
    // bits; the outputs reach ~20 here, where one ulp is 1.9e-6. Any non-zero padding would differ by orders more.
    private static void AssertEqualUpToRounding(Tensor actual, Tensor expected, string what)
    {
        var tolerance = 1e-6 * Math.Max(1, expected.abs().max().item<float>());
        Assert.True(Weights.MaxAbsDiff(actual, expected) <= tolerance, $"{what}: differs by {Weights.MaxAbsDiff(actual, expected)} (tolerance {tolerance})");
    }

    private static Tensor Ids() => torch.randint(0, 256, [3, 12], dtype: ScalarType.Int64);

    [Fact]
    public void Same_rank_swap_equals_a_fresh_load_within_1e6_and_keeps_every_storage()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 4, Alpha = 8, TargetModules = AllKinds }, 1);
        var b = SaveAdapter("b", new LoraConfig { Rank = 4, Alpha = 3, AlphaPattern = new Dictionary<string, double> { ["conv"] = 11 }, TargetModules = AllKinds }, 2);
        var ids = Ids();
        var net = FreshBase();
        var peft = PeftAdapterFiles.FromPretrained(net, a);
        using var _ = torch.no_grad();
        using var outA = net.call(ids);
        var before = Pointers(peft);

        PeftAdapterFiles.HotSwap(peft, b);

        using var swapped = net.call(ids);
        using var expected = FreshOutput(b, ids);
        Assert.True(Weights.MaxAbsDiff(swapped, expected) <= 1e-6, $"differs by {Weights.MaxAbsDiff(swapped, expected)}");
        Assert.False(swapped.allclose(outA), "the two adapters must differ for the test to mean anything");
        Assert.Equal(before, Pointers(peft));
        Assert.Equal(3, ((LoraConfig)peft.Configs["default"]).Alpha);
    }

    [Fact]
    public void Smaller_rank_is_zero_padded_into_the_prepared_allocation_without_reallocating()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 4, Alpha = 8, TargetModules = AllKinds }, 3);
        var small = SaveAdapter("small", new LoraConfig { Rank = 2, Alpha = 5, UseRsLora = false, TargetModules = AllKinds }, 4);
        var big = SaveAdapter("big", new LoraConfig { Rank = 6, Alpha = 6, RankPattern = new Dictionary<string, int> { ["lin"] = 3 }, TargetModules = AllKinds }, 5);
        var ids = Ids();
        var net = FreshBase();
        var peft = PeftAdapterFiles.FromPretrained(net, a);
        using var _ = torch.no_grad();
        using var outA = net.call(ids);
        peft.PrepareForHotSwap(6);
        using var prepared = net.call(ids);
        AssertEqualUpToRounding(prepared, outA, "padding with zeros must not change the output");
        Assert.All(peft.AdapterLayers(), l => Assert.Equal(6, ((LoraLayer)l.Layer).AllocatedRankOf("default")));
        var allocated = Pointers(peft);

        foreach (var folder in new[] { small, big, a })
        {
            PeftAdapterFiles.HotSwap(peft, folder);
            using var swapped = net.call(ids);
            using var expected = FreshOutput(folder, ids);
            AssertEqualUpToRounding(swapped, expected, Path.GetFileName(folder));
            Assert.Equal(allocated, Pointers(peft));
        }
    }

    [Fact]
    public void A_rank_larger_than_allocated_is_refused_naming_the_tensor_and_the_model_is_unchanged()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 2, TargetModules = AllKinds }, 6);
        var big = SaveAdapter("big", new LoraConfig { Rank = 4, TargetModules = AllKinds }, 7);
        var ids = Ids();
        var net = FreshBase();
        var peft = PeftAdapterFiles.FromPretrained(net, a);
        using var _ = torch.no_grad();
        using var before = net.call(ids);
        var e = Assert.Throws<ModelMismatchException>(() => PeftAdapterFiles.HotSwap(peft, big));
        Assert.Contains("lora_", e.Message);
        Assert.Contains("rank 4 is larger than the allocated 2", e.Message);
        Assert.Contains("PrepareForHotSwap", e.Message);
        using var after = net.call(ids);
        Assert.True(Weights.Exact(after, before));
    }

    [Fact]
    public void Different_target_modules_are_refused_naming_a_tensor()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("conv", "lin") }, 8);
        var other = SaveAdapter("other", new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("emb", "lin") }, 9);
        var peft = PeftAdapterFiles.FromPretrained(FreshBase(), a);
        var e = Assert.Throws<ModelMismatchException>(() => PeftAdapterFiles.HotSwap(peft, other));
        Assert.Contains("base_model.model.emb.lora_embedding_", e.Message);
        Assert.Contains("same modules", e.Message);
    }

    [Fact]
    public void A_config_key_that_changes_the_forward_is_refused_by_name()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 2, TargetModules = AllKinds }, 10);
        var rs = SaveAdapter("rs", new LoraConfig { Rank = 2, UseRsLora = true, TargetModules = AllKinds }, 11);
        var loha = SaveAdapter("loha", new LoHaConfig { Rank = 2, TargetModules = TargetModules.Of("lin") }, 12);
        var peft = PeftAdapterFiles.FromPretrained(FreshBase(), a);
        var e = Assert.Throws<PeftException>(() => PeftAdapterFiles.HotSwap(peft, rs));
        Assert.Contains("'use_rslora' differs (current false, new true)", e.Message);
        var m = Assert.Throws<PeftException>(() => PeftAdapterFiles.HotSwap(peft, loha));
        Assert.Contains("LORA", m.Message);
        Assert.Contains("LOHA", m.Message);
    }

    [Fact]
    public void A_method_without_rank_padding_swaps_equal_shapes_in_place()
    {
        var config = new LoHaConfig { Rank = 2, Alpha = 4, TargetModules = TargetModules.Of("lin") };
        var a = SaveAdapter("a", config, 13);
        var b = SaveAdapter("b", config, 14);
        var ids = Ids();
        var net = FreshBase();
        var peft = PeftAdapterFiles.FromPretrained(net, a);
        var before = Pointers(peft);
        PeftAdapterFiles.HotSwap(peft, b);
        using var _ = torch.no_grad();
        using var swapped = net.call(ids);
        using var expected = FreshOutput(b, ids);
        Assert.True(Weights.MaxAbsDiff(swapped, expected) <= 1e-6);
        Assert.Equal(before, Pointers(peft));
        Assert.Throws<PeftException>(() => peft.PrepareForHotSwap(4));
    }

    [Fact]
    public void A_padded_adapter_is_not_saved()
    {
        var a = SaveAdapter("a", new LoraConfig { Rank = 2, TargetModules = AllKinds }, 15);
        var peft = PeftAdapterFiles.FromPretrained(FreshBase(), a);
        peft.PrepareForHotSwap(4);
        var e = Assert.Throws<PeftException>(() => PeftAdapterFiles.Save(peft, Path.Combine(_dir, "out")));
        Assert.Contains("rank-padded", e.Message);
    }
}
