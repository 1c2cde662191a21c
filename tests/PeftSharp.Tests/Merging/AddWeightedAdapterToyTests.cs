using PeftSharp.Core;
using PeftSharp.Merging;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

/// <summary>add_weighted_adapter on small layers with hand-computed results (reference methods_systems.md §2) and PEFT's properties.</summary>
public class AddWeightedAdapterToyTests
{
    private const string Prefix = "base_model.model.layer.";

    /// <summary>A 2×2 layer with rank-1 adapters 'one' (A=[1,0], B=[1;0]) and 'two' (A=[0,1], B=[0;1]), s = 1.</summary>
    private static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) TwoUnitAdapters(bool dora = false)
    {
        var lin = nn.Linear(2, 2, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.copy_(torch.tensor(new float[] { 3, 0, 4, 5 }, 2, 2));
        }
        var holder = nn.Sequential(("layer", lin));
        var config = new LoraConfig { Rank = 1, Alpha = 1, UseDora = dora, TargetModules = TargetModules.Of("layer") };
        var peft = PeftModel.Create(holder, config, "one");
        peft.AddAdapter("two", config);
        Set(peft, "one", [1, 0], [1, 0]);
        Set(peft, "two", [0, 1], [0, 1]);
        return (holder, peft);
    }

    private static void Set(PeftModel peft, string adapter, float[] a, float[] b)
    {
        var t = peft.AdapterStateDict(adapter);
        using var _ = torch.no_grad();
        t[Prefix + "lora_A.weight"].copy_(torch.tensor(a, 1, a.Length));
        t[Prefix + "lora_B.weight"].copy_(torch.tensor(b, b.Length, 1));
    }

    private static Tensor Delta(PeftModel peft, string adapter) =>
        ((LoraLayer)peft.AdapterLayers().Single().Layer).DeltaWeight(adapter)!;

    private static void Near(Tensor actual, float[] expected, double tol = 1e-6) =>
        Assert.True(Weights.MaxAbsDiff(actual, torch.tensor(expected, actual.shape)) < tol,
            $"got [{string.Join(", ", actual.reshape(-1).data<float>().ToArray())}]");

    [Fact]
    public void Cat_is_the_exact_weighted_sum_and_linear_has_cross_terms()
    {
        var (_, peft) = TwoUnitAdapters();
        AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [0.5, 0.5], "cat", new CombinationOptions { Type = CombinationType.Cat });
        AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [0.5, 0.5], "linear", new CombinationOptions { Type = CombinationType.Linear });
        Near(Delta(peft, "cat"), [0.5f, 0, 0, 0.5f]);
        Near(Delta(peft, "linear"), [0.5f, 0.5f, 0.5f, 0.5f]);
        var cat = (LoraConfig)peft.Configs["cat"];
        Assert.Equal((2, 2.0), (cat.Rank, cat.Alpha));
        Assert.Equal((1, 1.0), (((LoraConfig)peft.Configs["linear"]).Rank, ((LoraConfig)peft.Configs["linear"]).Alpha));
    }

    [Fact]
    public void Svd_at_rank_one_of_two_tied_units_keeps_one_of_norm_one_half()
    {
        var (_, peft) = TwoUnitAdapters();
        AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [0.5, 0.5], "svd", new CombinationOptions());
        using var d = Delta(peft, "svd");
        // Singular values tie (0.5, 0.5): which unit survives is LAPACK's choice, so only norm and rank are asserted.
        Assert.InRange(d.norm().item<float>(), 0.5 - 1e-6, 0.5 + 1e-6);
        Assert.Equal(1L, torch.linalg.matrix_rank(d).item<long>());
    }

    [Fact]
    public void Svd_counts_the_lora_scale_twice_as_PEFT_does()
    {
        var lin = nn.Linear(2, 2, hasBias: false);
        var holder = nn.Sequential(("layer", lin));
        var config = new LoraConfig { Rank = 1, Alpha = 3, TargetModules = TargetModules.Of("layer") };
        var peft = PeftModel.Create(holder, config, "one");
        peft.AddAdapter("two", config);
        Set(peft, "one", [1, 0], [1, 0]);
        Set(peft, "two", [0, 1], [0, 1]);
        AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [0.5, 0.25], "svd", new CombinationOptions { SvdRank = 2 });
        // ΔW_i = 3·B_i·A_i and the weight is w_i·3: diag(0.5·9, 0.25·9).
        Near(Delta(peft, "svd"), [4.5f, 0, 0, 2.25f], 1e-5);
    }

    [Fact]
    public void One_source_is_always_linear_and_a_negative_weight_negates_it()
    {
        var (_, peft) = TwoUnitAdapters();
        AdapterMerging.AddWeightedAdapter(peft, ["one"], [-0.5], "neg", new CombinationOptions { Type = CombinationType.Cat });
        Near(Delta(peft, "neg"), [-0.5f, 0, 0, 0]);
        Assert.Equal(1, ((LoraConfig)peft.Configs["neg"]).Rank);
    }

    [Fact]
    public void Equal_adapters_with_weights_one_and_minus_one_cancel()
    {
        var (_, peft) = TwoUnitAdapters();
        Set(peft, "two", [1, 0], [1, 0]);
        AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [1, -1], "zero", new CombinationOptions { Type = CombinationType.Linear });
        Near(Delta(peft, "zero"), [0, 0, 0, 0]);
    }

    [Fact]
    public void Sources_are_not_modified()
    {
        var (_, peft) = TwoUnitAdapters();
        var before = peft.AdapterStateDict("one").ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        foreach (var type in Enum.GetValues<CombinationType>())
        {
            AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [0.7, -0.3], "m" + (int)type, new CombinationOptions { Type = type, Density = 0.5, Seed = 1 });
        }
        foreach (var (key, t) in peft.AdapterStateDict("one"))
        {
            Assert.True(Weights.Exact(before[key], t), key);
        }
    }

    [Fact]
    public void Dora_sources_give_a_dora_adapter_whose_magnitude_is_the_base_row_norm_as_in_PEFT()
    {
        var (holder, peft) = TwoUnitAdapters(dora: true);
        Set(peft, "one", [0, 1], [1, 0]);
        Set(peft, "two", [1, 0], [0, 1]);
        using (torch.no_grad())
        {
            // Trained magnitudes of the sources; PEFT ignores them (the new adapter's magnitude is initialised from W with B = 0).
            peft.AdapterStateDict("one")[Prefix + "lora_magnitude_vector"].fill_(10);
        }
        AdapterMerging.AddWeightedAdapter(peft, ["one", "two"], [1, 1], "cat", new CombinationOptions { Type = CombinationType.Cat });
        Assert.True(((LoraConfig)peft.Configs["cat"]).UseDora);
        Near(peft.AdapterStateDict("cat")[Prefix + "lora_magnitude_vector"], [3, 6.4031243f], 1e-5);
        // V = W + [[0,1],[1,0]] = [[3,1],[5,5]]; W' = (m/‖V‖) ⊙ V = [[2.846050, 0.948683], [4.527693, 4.527693]].
        peft.SetActiveAdapters("cat");
        using var y = holder.call(torch.tensor(new float[] { 1, 1 }, 1, 2));
        Near(y, [3.794733f, 9.055386f], 1e-5);
    }

    [Fact]
    public void Svd_of_loha_adapters_at_full_rank_is_the_weighted_delta_sum()
    {
        torch.manual_seed(11);
        var lin = nn.Linear(4, 3, hasBias: false);
        var holder = nn.Sequential(("layer", lin));
        var config = new LoHaConfig { Rank = 2, Alpha = 2, InitWeights = false, TargetModules = TargetModules.Of("layer") };
        var peft = PeftModel.Create(holder, config, "p");
        peft.AddAdapter("q", config);
        var layer = peft.AdapterLayers().Single().Layer;
        using var expected = layer.DeltaWeight("p")! * 0.6 + layer.DeltaWeight("q")! * -0.2;
        Assert.Contains("svd_rank is required", Assert.Throws<PeftException>(() =>
            AdapterMerging.Combine(peft, ["p", "q"], [0.6, -0.2], new CombinationOptions())).Message);
        Assert.Contains("use an svd combination", Assert.Throws<PeftException>(() =>
            AdapterMerging.Combine(peft, ["p", "q"], [0.6, -0.2], new CombinationOptions { Type = CombinationType.Cat })).Message);
        using var combined = AdapterMerging.Combine(peft, ["p", "q"], [0.6, -0.2], new CombinationOptions { SvdRank = 3 });
        Assert.True(Weights.MaxAbsDiff(combined.DeltaWeight("layer"), expected) < 1e-5);
        // The LoRA result goes into a model without the LoHa sources: it then adds exactly that ΔW.
        peft.DeleteAdapter("p");
        peft.DeleteAdapter("q");
        combined.AddTo(peft, "merged");
        peft.SetActiveAdapters("merged");
        using var x = torch.randn(5, 4);
        using var y = holder.call(x);
        using var want = x.matmul((lin.weight! + expected).t());
        Assert.True(Weights.MaxAbsDiff(y, want) < 1e-5);
    }
}
