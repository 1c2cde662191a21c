using PeftSharp.Core;
using PeftSharp.IO;
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
/// The contract properties for the six conv-kernel methods on a small conv net (the contract table's NestedNet has no
/// Conv2d): ToyConvNet's conv (16 → 8, 3×3, padding 1) and lin (96 → 10). Init = base exactly, disabled = base exactly,
/// merged = unmerged, unmerge restores, save → load bit-exact, trainable count = the formula by hand; then convolution
/// geometries (stride, dilation, reflect padding, groups, non-square kernels) through merged = unmerged.
/// </summary>
public class ConvKernelPropertyTests
{
    private static readonly TargetModules s_targets = TargetModules.Of("conv", "lin");

    // Name → config and the trainable count by hand for conv (C_in 16, C_out 8, k 3) + lin (96 → 10).
    public static readonly IReadOnlyDictionary<string, (KernelLoraConfig Config, long Trainable)> Cases = new Dictionary<string, (KernelLoraConfig, long)>
    {
        // r·(C_in·k² + C_out) = 4·(144 + 8) = 608; lin 4·106 = 424.
        ["lora-c"] = (new LoraCConfig { Rank = 4, Alpha = 8, TargetModules = s_targets }, 608 + 424),
        // 2·152 + 8 = 312; 2·106 + 10 = 222.
        ["dora-c"] = (new LoraCConfig { Rank = 2, Alpha = 4, UseDora = true, TargetModules = s_targets }, 312 + 222),
        // r·k²·(C_in + C_out) = 2·9·24 = 432; lin 2·106 = 212.
        ["conv-lora"] = (new ConvLoraConfig { Rank = 2, Alpha = 2, TargetModules = s_targets }, 432 + 212),
        // 1·9·24 + 8 = 224; 106 + 10 = 116.
        ["conv-dora"] = (new ConvLoraConfig { Rank = 1, Alpha = 3, UseDora = true, TargetModules = s_targets }, 224 + 116),
        // R·(C_out + C_in + k_h + k_w) = 3·30 = 90; lin 3·106 = 318.
        ["cp-lora"] = (new CpLoraConfig { Rank = 3, Alpha = 3, TargetModules = s_targets }, 90 + 318),
        // 5·30 + 8 = 158; 5·106 + 10 = 540.
        ["cp-dora-dropout"] = (new CpLoraConfig { Rank = 5, Alpha = 2, UseDora = true, Dropout = 0.1, TargetModules = s_targets }, 158 + 540),
    };

    public static TheoryData<string> Names() => [.. Cases.Keys];

    private static void Randomise(PeftModel peft)
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.TrainableParameters())
        {
            p.add_(torch.randn_like(p) * 0.2);
        }
    }

    private static Tensor Ids(long seed)
    {
        var g = new torch.Generator((ulong)seed);
        return torch.randint(0, 256, [3, 12], generator: g);
    }

    private static Tensor Disabled(PeftModel peft, ToyConvNet net, Tensor ids)
    {
        using (peft.DisableAdapters())
        {
            return net.call(ids);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Init_is_base_and_disabled_is_base_exactly(string name)
    {
        torch.manual_seed(21);
        var net = new ToyConvNet();
        net.eval();
        using var ids = Ids(1);
        using var before = net.call(ids);
        var peft = PeftModel.Create(net, Cases[name].Config);
        using (torch.no_grad())
        {
            using var atInit = net.call(ids);
            Assert.True(Weights.Exact(atInit, before), $"{name}: init differs by {Weights.MaxAbsDiff(atInit, before)}");
            Randomise(peft);
            using var adapted = net.call(ids);
            Assert.False(adapted.allclose(before), "the randomised adapter must change the output");
            using var disabled = Disabled(peft, net, ids);
            Assert.True(Weights.Exact(disabled, before));
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Merged_equals_unmerged_and_unmerge_restores_also_with_dilation_2(string name)
    {
        foreach (var dilation in new long[] { 1, 2 })
        {
            torch.manual_seed(22);
            var net = new ToyConvNet(dilation);
            net.eval();
            using var ids = Ids(2);
            var peft = PeftModel.Create(net, Cases[name].Config);
            Randomise(peft);
            using var _ = torch.no_grad();
            using var unmerged = net.call(ids);
            var weights = peft.AdapterLayers().ToDictionary(l => l.Name, l => l.Layer.Base.Weight.detach().clone());
            peft.Merge();
            using var merged = net.call(ids);
            var scale = Math.Max(1, unmerged.abs().max().item<float>());
            Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5 * scale, $"{name}, dilation {dilation}: merged differs by {Weights.MaxAbsDiff(merged, unmerged)}");
            peft.Unmerge();
            foreach (var (layerName, layer) in peft.AdapterLayers())
            {
                var rel = (layer.Base.Weight - weights[layerName]).norm().item<float>() / weights[layerName].norm().item<float>();
                Assert.True(rel <= 1e-6, $"{name}/{layerName}: unmerge left relative error {rel}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Save_then_load_is_bit_exact_and_the_count_matches_the_formula(string name)
    {
        torch.manual_seed(23);
        var net = new ToyConvNet();
        net.eval();
        var baseState = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var peft = PeftModel.Create(net, Cases[name].Config);
        Assert.Equal(Cases[name].Trainable, peft.ParameterCounts().Trainable);
        Randomise(peft);
        using var ids = Ids(3);
        using var expected = net.call(ids);
        var dir = Directory.CreateTempSubdirectory("peftsharp-convkernel-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var fresh = new ToyConvNet();
            using (torch.no_grad())
            {
                foreach (var (n, p) in fresh.named_parameters())
                {
                    p.copy_(baseState[n]);
                }
            }
            fresh.eval();
            var loaded = PeftAdapterFiles.FromPretrained(fresh, dir);
            Assert.Equal(Cases[name].Config.PeftType, loaded.Configs["default"].PeftType);
            using var got = fresh.call(ids);
            Assert.True(Weights.Exact(got, expected), $"{name}: reloaded output differs by {Weights.MaxAbsDiff(got, expected)}");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    // Geometries: stride 2 + dilation 2 + reflect padding 2; groups 2; a 3×1 kernel with stride (2, 1) and padding (1, 0).
    private static Conv2d Geometry(string kind) => kind switch
    {
        "strided-dilated-reflect" => nn.Conv2d(4, 6, 3, stride: 2, padding: 2, dilation: 2, padding_mode: PaddingModes.Reflect),
        "grouped" => nn.Conv2d(4, 6, 3, padding: 1, groups: 2),
        "non-square" => nn.Conv2d(4, 6, (3, 1), stride: (2, 1), padding: (1, 0)),
        _ => throw new ArgumentException(kind),
    };

    public static TheoryData<string, string> GeometryCases()
    {
        var d = new TheoryData<string, string>();
        foreach (var method in new[] { "lora-c", "conv-lora", "cp-lora", "dora-c", "conv-dora", "cp-dora" })
        {
            foreach (var geometry in new[] { "strided-dilated-reflect", "grouped", "non-square" })
            {
                d.Add(method, geometry);
            }
        }
        return d;
    }

    private static KernelLoraConfig RandomConfig(string method)
    {
        var t = TargetModules.Of("layer");
        var dora = method.Contains("dora", StringComparison.Ordinal);
        return method switch
        {
            "lora-c" or "dora-c" => new LoraCConfig { Rank = 2, Alpha = 3, UseDora = dora, InitLoraWeights = false, TargetModules = t },
            "conv-lora" or "conv-dora" => new ConvLoraConfig { Rank = 2, Alpha = 3, UseDora = dora, InitLoraWeights = false, TargetModules = t },
            _ => new CpLoraConfig { Rank = 3, Alpha = 3, UseDora = dora, InitLoraWeights = false, TargetModules = t },
        };
    }

    [Theory]
    [MemberData(nameof(GeometryCases))]
    public void Every_geometry_merges_to_the_unmerged_output_or_is_refused_by_name(string method, string geometry)
    {
        torch.manual_seed(24);
        var conv = Geometry(geometry);
        var holder = nn.Sequential(("layer", conv));
        holder.eval();
        var config = RandomConfig(method);
        if (geometry == "grouped" && config is LoraCConfig)
        {
            Assert.Contains("grouped Conv2d", Assert.Throws<PeftException>(() => PeftModel.Create(holder, config)).Message);
            return;
        }
        if (geometry == "non-square" && config is ConvLoraConfig)
        {
            Assert.Contains("square kernel", Assert.Throws<PeftException>(() => PeftModel.Create(holder, config)).Message);
            return;
        }
        using var x = torch.randn(2, 4, 7, 6);
        using var before = holder.call(x);
        var peft = PeftModel.Create(holder, config);
        using var _ = torch.no_grad();
        using var unmerged = holder.call(x);
        Assert.False(unmerged.allclose(before), "init_lora_weights false must change the output");
        peft.Merge();
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5 * Math.Max(1, unmerged.abs().max().item<float>()),
            $"{method}/{geometry}: merged differs by {Weights.MaxAbsDiff(merged, unmerged)}");
    }

    [Fact]
    public void Hundred_training_steps_leak_no_tensors()
    {
        torch.manual_seed(25);
        var net = new ToyConvNet();
        var peft = PeftModel.Create(net, Cases["cp-dora-dropout"].Config);
        using var ids = Ids(4);
        long live = 0;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                net.train();
                net.call(ids).pow(2).mean().backward();
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
