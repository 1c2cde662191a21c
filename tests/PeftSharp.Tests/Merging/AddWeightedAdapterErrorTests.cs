using PeftSharp.Core;
using PeftSharp.Merging;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

/// <summary>The checks of PEFT's _check_add_weighted_adapter and our own, as one-line PeftExceptions that leave the model as it was.</summary>
public class AddWeightedAdapterErrorTests
{
    private static PeftModel Nested(params (string Name, LoraConfig Config)[] adapters)
    {
        var peft = PeftModel.Create(new NestedNet(), adapters[0].Config, adapters[0].Name);
        foreach (var (name, config) in adapters.Skip(1))
        {
            peft.AddAdapter(name, config);
        }
        return peft;
    }

    private static LoraConfig Q(int rank = 4) => new() { Rank = rank, Alpha = 8, TargetModules = TargetModules.Of("q_proj") };

    private static string Fails(PeftModel peft, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, CombinationOptions options, string name = "merged")
    {
        var before = peft.Configs.Keys.ToList();
        var layers = peft.AdapterLayers().Select(l => (l.Name, l.Layer.AdapterNames.Count)).ToList();
        var e = Assert.ThrowsAny<PeftException>(() => AdapterMerging.AddWeightedAdapter(peft, adapters, weights, name, options));
        Assert.Equal(before, peft.Configs.Keys.ToList());
        Assert.Equal(layers, peft.AdapterLayers().Select(l => (l.Name, l.Layer.AdapterNames.Count)).ToList());
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void Unequal_ranks_are_refused_by_the_factor_kinds_but_not_by_cat_or_svd()
    {
        var peft = Nested(("a", Q(4)), ("b", Q(2)));
        foreach (var type in new[] { CombinationType.Linear, CombinationType.Ties, CombinationType.DareLinear, CombinationType.DareTies, CombinationType.MagnitudePrune })
        {
            Assert.Contains("All adapters must have the same r value", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { Type = type, Density = 0.5 }));
        }
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], [1, 1], "cat", new CombinationOptions { Type = CombinationType.Cat });
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], [1, 1], "svd", new CombinationOptions());
        Assert.Equal(6, ((LoraConfig)peft.Configs["cat"]).Rank);
        Assert.Equal(4, ((LoraConfig)peft.Configs["svd"]).Rank);
    }

    [Fact]
    public void Rank_pattern_counts_toward_the_rank_as_PEFT_allocates_it()
    {
        var peft = Nested(("a", Q(4) with { RankPattern = new Dictionary<string, int> { ["blocks.0.q_proj"] = 6 } }), ("b", Q(4)));
        Assert.Contains("same r value", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { Type = CombinationType.Linear }));
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], [1, 1], "cat", new CombinationOptions { Type = CombinationType.Cat });
        Assert.Equal(10, ((LoraConfig)peft.Configs["cat"]).Rank);
    }

    [Fact]
    public void A_list_and_a_regex_of_target_modules_cannot_be_combined()
    {
        var peft = Nested(("a", Q()), ("b", Q() with { TargetModules = TargetModules.Regex(@".*\.v_proj") }));
        Assert.Contains("same target modules type", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { Type = CombinationType.Cat }));
    }

    [Fact]
    public void Regex_targets_are_joined_as_alternatives_and_lists_as_a_union()
    {
        var peft = Nested(("a", Q() with { TargetModules = TargetModules.Regex(@".*0\.q_proj") }), ("b", Q() with { TargetModules = TargetModules.Regex(@".*1\.q_proj") }),
            ("c", Q()), ("d", Q() with { TargetModules = TargetModules.Of("v_proj") }));
        AdapterMerging.AddWeightedAdapter(peft, ["a", "b"], [1, 1], "ab", new CombinationOptions { Type = CombinationType.Cat });
        AdapterMerging.AddWeightedAdapter(peft, ["c", "d"], [1, 1], "cd", new CombinationOptions { Type = CombinationType.Cat });
        Assert.Equal(@"(.*0\.q_proj)|(.*1\.q_proj)", peft.Configs["ab"].TargetModules!.Pattern);
        Assert.Equal(["q_proj", "v_proj"], peft.Configs["cd"].TargetModules!.Names!);
        Assert.Equal(4, peft.AdapterLayers().Count(l => l.Layer.AdapterNames.Contains("cd")));
    }

    [Fact]
    public void A_module_of_the_merged_config_without_any_source_is_refused()
    {
        // 'b' adapts only block 1's v_proj, but the merged config (layers_to_transform from 'a': all) adapts both.
        var peft = Nested(("a", Q()), ("b", Q() with { TargetModules = TargetModules.Of("v_proj"), LayersToTransform = [1] }));
        Assert.Contains("'blocks.0.v_proj' is adapted by the merged config", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { Type = CombinationType.Cat }));
    }

    [Fact]
    public void Bad_names_weights_and_options_are_refused_before_anything_changes()
    {
        var peft = Nested(("a", Q()), ("b", Q()));
        Assert.Contains("Adapter nope does not exist", Fails(peft, ["a", "nope"], [1, 1], new CombinationOptions()));
        Assert.Contains("2 adapters but 1 weights", Fails(peft, ["a", "b"], [1], new CombinationOptions()));
        Assert.Contains("must be a finite number", Fails(peft, ["a", "b"], [1, double.NaN], new CombinationOptions()));
        Assert.Contains("already exists", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions(), name: "a"));
        Assert.Contains("needs density", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { Type = CombinationType.Ties }));
        Assert.Contains("density must be >= 0", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { Type = CombinationType.Ties, Density = -1 }));
        Assert.Contains("svd_rank must be > 0", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { SvdRank = 0 }));
        Assert.Contains("svd_rank 7 exceeds min(out, in) = 6", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { SvdRank = 7 }));
        Assert.Contains("svd_clamp", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { SvdClamp = 1.5 }));
        Assert.Contains("svd_driver", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions { SvdDriver = "gesvdj" }));
        Assert.Contains("Invalid combination_type: 'mean'", Assert.Throws<PeftException>(() => CombinationTypes.Parse("mean")).Message);
    }

    [Fact]
    public void Two_sources_saving_the_same_module_are_refused()
    {
        var peft = Nested(("a", Q() with { ModulesToSave = ["lm_head"] }), ("b", Q() with { ModulesToSave = ["lm_head"] }), ("c", Q()));
        Assert.Contains("same module with modules_to_save, but found 1 such instance(s)", Fails(peft, ["a", "b"], [1, 1], new CombinationOptions()));
        // One source with it is fine: the merged adapter gets its own copy of the original module, as PEFT does.
        AdapterMerging.AddWeightedAdapter(peft, ["a", "c"], [1, 1], "ac", new CombinationOptions { Type = CombinationType.Cat });
        Assert.Contains(peft.SavedModules(), w => w.Wrapper.Has("ac"));
    }

    [Fact]
    public void Svd_clamp_bounds_every_factor_entry_by_the_quantile()
    {
        var peft = Nested(("a", Q()), ("b", Q() with { InitLoraWeights = InitLoraWeights.Random }));
        using (torch.no_grad())
        {
            foreach (var (_, t) in peft.AdapterStateDict("a"))
            {
                t.normal_();
            }
        }
        using var free = AdapterMerging.Combine(peft, ["a", "b"], [1, 1], new CombinationOptions());
        using var clamped = AdapterMerging.Combine(peft, ["a", "b"], [1, 1], new CombinationOptions { SvdClamp = 0.9 });
        foreach (var (module, f) in free.Factors)
        {
            using var all = torch.cat([f.B.flatten(), f.A.flatten()]);
            var hi = torch.quantile(all, torch.tensor(0.9f)).item<float>();
            var c = clamped.Factors[module];
            Assert.True(Weights.MaxAbsDiff(c.A, f.A.clamp(-hi, hi)) < 1e-6);
            Assert.True(Weights.MaxAbsDiff(c.B, f.B.clamp(-hi, hi)) < 1e-6);
            Assert.True(Weights.MaxAbsDiff(c.A, f.A) + Weights.MaxAbsDiff(c.B, f.B) > 0, "the 0.9 quantile clamps something");
        }
    }
}
