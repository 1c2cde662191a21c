using PeftSharp.Core;
using PeftSharp.Merging;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

/// <summary>LoRA-LEGO: the reference's numeric example (methods_systems.md §2), its sign trap, k = Σr = cat, pruning.</summary>
public class LoraLegoTests(ITestOutputHelper output)
{
    // LoRA1 units u1 = (a=[1,0], b=[1,0]), u2 = ([0,1],[0,1]); LoRA2 u3 = ([1,0.2],[0.8,0]), u4 = ([0,2],[0,0.5]).
    private static readonly LoraFactors s_lora1 = new(torch.tensor(new float[] { 1, 0, 0, 1 }, 2, 2), torch.tensor(new float[] { 1, 0, 0, 1 }, 2, 2));
    private static readonly LoraFactors s_lora2 = new(torch.tensor(new float[] { 1, 0.2f, 0, 2 }, 2, 2), torch.tensor(new float[] { 0.8f, 0, 0, 0.5f }, 2, 2));

    private static void Near(Tensor actual, float[] expected, double tol) =>
        Assert.True(Weights.MaxAbsDiff(actual, torch.tensor(expected, actual.shape)) < tol,
            $"got [{string.Join(", ", actual.reshape(-1).data<float>().ToArray())}]");

    private static Tensor Merge(LegoOptions options) => LoraLego.MergeUnits([s_lora1, s_lora2], [1, 1], options).Product();

    [Fact]
    public void Reference_example_with_balancing_and_parameter_reweighting()
    {
        // Clusters {u1,u3}, {u2,u4}; balanced centroids (0.9429,0.0886,0.9516,0), (0,1,0,1); factors 1.00243 and 1.
        Near(Merge(new LegoOptions { Clusters = 2 }), [0.9016f, 0.0847f, 0, 1.0f], 1e-4);
    }

    [Fact]
    public void Reference_example_balanced_without_reweighting_and_raw()
    {
        Near(Merge(new LegoOptions { Clusters = 2, ParameterReweighting = false }), [0.8972f, 0.0843f, 0, 1.0f], 1e-4);
        // Raw centroids (1,0.1,0.9,0) and (0,1.5,0,0.75): the scale of u4 decides its cluster's product.
        Near(Merge(new LegoOptions { Clusters = 2, ParameterReweighting = false, BalanceUnits = false }), [0.9f, 0.09f, 0, 1.125f], 1e-6);
    }

    [Fact]
    public void Opposite_signed_copies_of_a_unit_cancel_unless_the_sign_is_made_canonical()
    {
        // Units (a=[0,1], b=[0,1]) and (a=[0,−1], b=[0,−1]): the same update b·aᵀ twice.
        var lora = new LoraFactors(torch.tensor(new float[] { 0, 1, 0, -1 }, 2, 2), torch.tensor(new float[] { 0, 0, 1, -1 }, 2, 2));
        Near(LoraLego.MergeUnits([lora], [1], new LegoOptions { Clusters = 1 }).Product(), [0, 0, 0, 1], 1e-6);
        Near(LoraLego.MergeUnits([lora], [1], new LegoOptions { Clusters = 1, CanonicalSign = false, ParameterReweighting = false }).Product(), [0, 0, 0, 0], 1e-6);
    }

    [Fact]
    public void Output_scale_multiplies_the_merged_update()
    {
        using var plain = Merge(new LegoOptions { Clusters = 2 });
        using var scaled = Merge(new LegoOptions { Clusters = 2, OutputScale = LoraLego.VarianceMatchingScale(2, 2) * 0.5 });
        Assert.True(Weights.MaxAbsDiff(scaled, plain * 0.5) < 1e-6);
        Assert.Equal(Math.Sqrt(8.0 / 2), LoraLego.VarianceMatchingScale(8, 2), 12);
    }

    [Fact]
    public void Clusters_equal_to_total_rank_reproduce_cat_exactly_and_PEFTs_cat_logits()
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        var weights = MergeFixture.Weights("cat");
        // Heterogeneous scales (a: 16/8, b: 8/8) and unit balancing must not change the sum.
        LoraLego.AddMergedAdapter(peft, ["a", "b"], weights, "lego", new LegoOptions { Clusters = 16, Seed = 3 });
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], weights, "cat", new CombinationOptions { Type = CombinationType.Cat });
        var worst = 0.0;
        foreach (var (name, layer) in peft.AdapterLayers())
        {
            using var lego = layer.DeltaWeight("lego")!;
            using var cat = layer.DeltaWeight("cat")!;
            worst = Math.Max(worst, Weights.MaxAbsDiff(lego, cat));
        }
        output.WriteLine($"max |ΔW_lego − ΔW_cat| = {worst:E2}");
        Assert.InRange(worst, 0, 1e-6);
        Assert.Equal((16, 16.0), (((LoraConfig)peft.Configs["lego"]).Rank, ((LoraConfig)peft.Configs["lego"]).Alpha));
        peft.SetActiveAdapters("lego");
        Assert.InRange(ModelFixtures.MaxAbsDiff(MergeFixture.Logits(model), MergeFixture.Expected("logits_comb_cat")), 0, MergeFixture.Tolerance);
    }

    [Fact]
    public void One_lora_with_k_equal_r_is_itself_and_smaller_k_prunes_it_reproducibly()
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        LoraLego.AddMergedAdapter(peft, ["a"], [1], "same", new LegoOptions { Clusters = 8 });
        LoraLego.AddMergedAdapter(peft, ["a"], [1], "four", new LegoOptions { Clusters = 4, Seed = 9 });
        LoraLego.AddMergedAdapter(peft, ["a"], [1], "again", new LegoOptions { Clusters = 4, Seed = 9 });
        foreach (var (name, layer) in peft.AdapterLayers())
        {
            using var source = layer.DeltaWeight("a")!;
            Assert.True(Weights.MaxAbsDiff(layer.DeltaWeight("same")!, source) < 1e-6, name);
            Assert.True(Weights.Exact(layer.DeltaWeight("four")!, layer.DeltaWeight("again")!), name);
            Assert.Equal(4, ((LoraLayer)layer).RankOf("four"));
        }
    }

    [Fact]
    public void Too_many_clusters_dora_and_bad_options_are_refused()
    {
        var (model, peft) = MergeFixture.LoadWithSources();
        using var _ = model;
        Assert.Contains("exceeds the 16 rank-1 units", Assert.Throws<PeftException>(() => LoraLego.Combine(peft, ["a", "b"], [1, 1], new LegoOptions { Clusters = 17 })).Message);
        Assert.Contains("clusters ≥ 1", Assert.Throws<PeftException>(() => LoraLego.Combine(peft, ["a", "b"], [1, 1], new LegoOptions())).Message);
        var lin = nn.Linear(2, 2);
        var dora = PeftModel.Create(nn.Sequential(("layer", lin)), new LoraConfig { Rank = 1, UseDora = true, TargetModules = TargetModules.Of("layer") });
        Assert.Contains("is DoRA", Assert.Throws<PeftException>(() => LoraLego.Combine(dora, ["default"], [1], new LegoOptions { Clusters = 1 })).Message);
    }
}
