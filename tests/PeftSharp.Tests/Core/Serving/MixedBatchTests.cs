using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Methods;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Core.Serving;

/// <summary>
/// PEFT's mixed batch (<c>adapter_names=</c>): one forward in which each row runs its own adapter, or the base model for
/// <c>__base__</c>. The reference for every row is the same model run with that adapter alone (or disabled).
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class MixedBatchTests
{
    private const string Base = AdapterRouting.BaseName;

    private static readonly TargetModules s_targets = TargetModules.Of("q_proj", "v_proj", "left", "proj");

    // Two adapters of one config, each randomised so that they differ from the base and from each other.
    private static PeftModel TwoAdapters(nn.Module net, AdapterConfig config)
    {
        var peft = PeftModel.Create(net, config, "a");
        peft.AddAdapter("b", config);
        using var _ = torch.no_grad();
        foreach (var name in new[] { "a", "b" })
        {
            peft.SetActiveAdapters(name);
            foreach (var p in peft.TrainableParameters())
            {
                p.add_(torch.randn_like(p) * 0.2);
            }
        }
        peft.SetActiveAdapters("a");
        net.eval();
        return peft;
    }

    // Row i of the batch as the model computes it with rows[i]'s adapter alone.
    private static Tensor RowByRowReference(PeftModel peft, nn.Module<Tensor, Tensor> net, Tensor x, IReadOnlyList<string> rows)
    {
        var outputs = new Dictionary<string, Tensor>();
        foreach (var name in rows.Distinct())
        {
            if (name == Base)
            {
                using (peft.DisableAdapters())
                {
                    outputs[name] = net.call(x);
                }
            }
            else
            {
                peft.SetActiveAdapters(name);
                outputs[name] = net.call(x);
            }
        }
        return torch.stack(rows.Select((name, i) => outputs[name][i]).ToArray());
    }

    public static TheoryData<string> Methods() => MethodContractTests.Names();

    [Theory]
    [MemberData(nameof(Methods))]
    public void Each_row_equals_its_adapter_run_alone_within_1e5_for_every_method(string contract)
    {
        var config = MethodContractTests.Contracts.Single(c => c.Name == contract).Config(s_targets);
        torch.manual_seed(71);
        var net = new NestedNet();
        var peft = TwoAdapters(net, config);
        using var _ = torch.no_grad();
        var x = torch.randn(6, 4);
        // a and b on scattered rows (index path), base on two rows.
        string[] rows = ["a", Base, "b", "a", "b", Base];
        Tensor mixed;
        using (peft.UseAdapterPerRow(rows))
        {
            mixed = net.call(x);
        }
        var expected = RowByRowReference(peft, net, x, rows);
        Assert.True(Weights.MaxAbsDiff(mixed, expected) <= 1e-5, $"{contract}: mixed batch differs by {Weights.MaxAbsDiff(mixed, expected)}");
        peft.SetActiveAdapters("a");
        using var onlyA = net.call(x);
        using var onlyB = RowByRowReference(peft, net, x, ["b", "b", "b", "b", "b", "b"]);
        Assert.False(onlyA.allclose(onlyB), $"{contract}: the two adapters must differ for the test to mean anything");
    }

    [Fact]
    public void Consecutive_rows_and_lora_on_embedding_conv_and_linear_equal_each_adapter_alone()
    {
        torch.manual_seed(72);
        var net = new ToyConvNet();
        var config = new LoraConfig { Rank = 3, Alpha = 5, TargetModules = TargetModules.Of("emb", "conv", "lin") };
        var peft = TwoAdapters(net, config);
        using var _ = torch.no_grad();
        var ids = torch.randint(0, 256, [5, 12], dtype: ScalarType.Int64);
        string[] rows = ["b", "b", "a", "a", Base];
        Tensor mixed;
        using (peft.UseAdapterPerRow(rows))
        {
            mixed = net.call(ids);
        }
        Assert.True(Weights.MaxAbsDiff(mixed, RowByRowReference(peft, net, ids, rows)) <= 1e-5);
    }

    [Fact]
    public void Modules_to_save_copies_are_routed_per_row_too()
    {
        torch.manual_seed(73);
        var net = new NestedNet();
        var config = new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("q_proj"), ModulesToSave = ["lm_head"] };
        var peft = TwoAdapters(net, config);
        using var _ = torch.no_grad();
        var x = torch.randn(4, 4);
        string[] rows = [Base, "b", "a", "b"];
        Tensor mixed;
        using (peft.UseAdapterPerRow(rows))
        {
            mixed = net.call(x);
        }
        Assert.True(Weights.MaxAbsDiff(mixed, RowByRowReference(peft, net, x, rows)) <= 1e-5);
    }

    [Fact]
    public void A_row_whose_adapter_does_not_wrap_a_layer_gets_that_layer_s_base_output()
    {
        torch.manual_seed(74);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 2, InitLoraWeights = InitLoraWeights.Random, TargetModules = TargetModules.Of("q_proj") }, "a");
        peft.AddAdapter("b", new LoraConfig { Rank = 2, InitLoraWeights = InitLoraWeights.Random, TargetModules = TargetModules.Of("v_proj") });
        net.eval();
        using var _ = torch.no_grad();
        var x = torch.randn(3, 4);
        string[] rows = ["a", "b", Base];
        Tensor mixed;
        using (peft.UseAdapterPerRow(rows))
        {
            mixed = net.call(x);
        }
        Assert.True(Weights.MaxAbsDiff(mixed, RowByRowReference(peft, net, x, rows)) <= 1e-5);
    }

    [Fact]
    public void Disposing_restores_the_active_adapter_forward()
    {
        torch.manual_seed(75);
        var net = new NestedNet();
        var peft = TwoAdapters(net, new LoraConfig { Rank = 2, TargetModules = s_targets });
        using var _ = torch.no_grad();
        var x = torch.randn(2, 4);
        using var before = net.call(x);
        using (peft.UseAdapterPerRow(["b", Base]))
        {
            using var routed = net.call(x);
            Assert.False(routed.allclose(before));
        }
        using var after = net.call(x);
        Assert.True(Weights.Exact(after, before));
        Assert.All(peft.AdapterLayers(), l => Assert.Null(l.Layer.RowAdapters));
    }

    [Fact]
    public void Unknown_adapter_names_are_refused_and_named()
    {
        var net = new NestedNet();
        var peft = TwoAdapters(net, new LoraConfig { Rank = 2, TargetModules = s_targets });
        var e = Assert.Throws<PeftException>(() => peft.UseAdapterPerRow(["a", "typo", Base, "other"]));
        Assert.Contains("'typo'", e.Message);
        Assert.Contains("'other'", e.Message);
        Assert.Contains("adapters: a, b", e.Message);
        Assert.All(peft.AdapterLayers(), l => Assert.Null(l.Layer.RowAdapters));
    }

    [Fact]
    public void A_list_whose_length_is_not_the_batch_size_is_refused_with_both_counts()
    {
        var net = new NestedNet();
        var peft = TwoAdapters(net, new LoraConfig { Rank = 2, TargetModules = s_targets });
        using var _ = torch.no_grad();
        using var routing = peft.UseAdapterPerRow(["a", "b", Base]);
        var e = Assert.Throws<PeftException>(() => net.call(torch.randn(4, 4)));
        Assert.Contains("3 adapter name(s) for a batch of 4 row(s)", e.Message);
    }

    [Fact]
    public void Routing_is_refused_while_an_adapter_is_merged_and_in_training_mode()
    {
        var net = new NestedNet();
        var peft = TwoAdapters(net, new LoraConfig { Rank = 2, TargetModules = s_targets });
        peft.Merge("a");
        var merged = Assert.Throws<PeftException>(() => peft.UseAdapterPerRow(["a", "b"]));
        Assert.Contains("merged", merged.Message);
        peft.Unmerge();
        using (peft.UseAdapterPerRow(["a", "b"]))
        {
            // Merging after routing started is caught by the layer's forward.
            peft.Merge("b");
            Assert.Throws<PeftException>(() => net.call(torch.randn(2, 4)));
            peft.Unmerge();
        }
        net.train();
        var training = Assert.Throws<PeftException>(() => peft.UseAdapterPerRow(["a", "b"]));
        Assert.Contains("eval()", training.Message);
    }
}
