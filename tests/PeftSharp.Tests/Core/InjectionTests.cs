using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Core;

public class InjectionTests
{
    private static IReadOnlyList<string> Targets(nn.Module model, AdapterConfig config) => Injector.FindTargets(model, config);

    [Fact]
    public void Suffix_list_matches_exact_or_dotted_suffix_only()
    {
        var net = new NestedNet();
        Assert.Equal(["blocks.0.q_proj", "blocks.1.q_proj"], Targets(net, new LoraConfig { TargetModules = TargetModules.Of("q_proj") }));
        Assert.Equal(["stem.proj"], Targets(net, new LoraConfig { TargetModules = TargetModules.Of("proj") }));
        Assert.Equal(["branches.left", "branches.right"], Targets(net, new LoraConfig { TargetModules = TargetModules.Of("left", "right") }));
    }

    [Fact]
    public void Regex_must_match_the_whole_name()
    {
        var net = new NestedNet();
        Assert.Equal(["blocks.1.v_proj"], Targets(net, new LoraConfig { TargetModules = TargetModules.Regex(@"blocks\.1\.v_proj") }));
        Assert.Equal(["blocks.0.q_proj", "blocks.0.v_proj"], Targets(net, new LoraConfig { TargetModules = TargetModules.Regex(@".*0\.(q|v)_proj") }));
        Assert.Throws<PeftException>(() => Targets(net, new LoraConfig { TargetModules = TargetModules.Regex("q_proj") }));
    }

    [Fact]
    public void All_linear_skips_the_output_head_and_exclude_modules_applies()
    {
        var net = new NestedNet();
        var all = Targets(net, new LoraConfig { TargetModules = TargetModules.AllLinearLayers });
        Assert.Equal(["stem.proj", "blocks.0.q_proj", "blocks.0.v_proj", "blocks.1.q_proj", "blocks.1.v_proj", "branches.left", "branches.right"], all);
        var excluded = Targets(net, new LoraConfig { TargetModules = TargetModules.AllLinearLayers, ExcludeModules = TargetModules.Of("v_proj", "left") });
        Assert.Equal(["stem.proj", "blocks.0.q_proj", "blocks.1.q_proj", "branches.right"], excluded);
    }

    [Fact]
    public void Layers_to_transform_selects_by_index_with_and_without_pattern()
    {
        var net = new NestedNet();
        Assert.Equal(["blocks.1.q_proj"], Targets(net, new LoraConfig { TargetModules = TargetModules.Of("q_proj"), LayersToTransform = [1] }));
        Assert.Equal(["blocks.0.q_proj"], Targets(net, new LoraConfig { TargetModules = TargetModules.Of("q_proj"), LayersToTransform = [0], LayersPattern = ["blocks"] }));
        Assert.Throws<PeftException>(() => Targets(net, new LoraConfig { TargetModules = TargetModules.Of("q_proj"), LayersToTransform = [0], LayersPattern = ["layers"] }));
        Assert.Equal(3, Injector.LayerIndex("model.layers.3.self_attn.q_proj", null));
        Assert.Equal(7, Injector.LayerIndex("transformer.h.7.attn.c_attn", ["h"]));
        Assert.Null(Injector.LayerIndex("lm_head", null));
    }

    [Fact]
    public void Pattern_that_matches_nothing_names_the_nearest_modules()
    {
        var net = new NestedNet();
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(net, new LoraConfig { TargetModules = TargetModules.Of("q_prj") }));
        Assert.Contains("q_prj", e.Message);
        Assert.Contains("blocks.0.q_proj", e.Message);
        Assert.DoesNotContain(net.named_modules(), m => m.module is AdapterLayer);
    }

    [Fact]
    public void Injection_reaches_sequential_module_list_and_module_dict_and_forward_uses_the_adapters()
    {
        torch.manual_seed(21);
        var net = new NestedNet();
        var x = torch.randn(2, 4);
        using var before = net.call(x);
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("proj", "q_proj", "left") });
        Assert.IsType<LoraLayer>(ModuleTree.Get(net, "stem.proj"));
        Assert.IsType<LoraLayer>(net.blocks[0].named_children().First(c => c.name == "q_proj").module);
        Assert.IsType<LoraLayer>(net.branches["left"]);
        Assert.Equal(["stem", "blocks", "branches", "lm_head"], net.named_children().Select(c => c.name));
        using (torch.no_grad())
        {
            foreach (var p in peft.AdapterStateDict("default").Values.Where(p => p.shape[0] != 2))
            {
                p.fill_(0.5f);
            }
        }
        using var after = net.call(x);
        Assert.False(after.allclose(before), "each adapted container slot must be the one the forward calls");
        // Each wrapped module contributes: disabling one kind at a time changes the output.
        foreach (var name in new[] { "stem.proj", "blocks.0.q_proj", "branches.left" })
        {
            var layer = (AdapterLayer)ModuleTree.Get(net, name);
            layer.Disabled = true;
            using var without = net.call(x);
            layer.Disabled = false;
            Assert.False(without.allclose(after), $"{name} is not reached by the forward");
        }
    }

    [Fact]
    public void A_field_typed_as_Linear_cannot_be_wrapped_and_the_error_says_why()
    {
        var holder = new ConcreteHolder();
        var e = Assert.Throws<PeftException>(() => PeftModel.Create(holder, new LoraConfig { TargetModules = TargetModules.Of("fc") }));
        Assert.Contains("fc", e.Message);
        Assert.Contains("Module<Tensor, Tensor>", e.Message);
        Assert.IsType<TorchSharp.Modules.Linear>(holder.named_children().Single().module);
    }

    [Fact]
    public void Rank_and_alpha_patterns_resolve_per_module_by_name_suffix()
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraConfig
        {
            Rank = 4,
            Alpha = 8,
            TargetModules = TargetModules.Of("q_proj", "v_proj"),
            RankPattern = new Dictionary<string, int> { ["blocks.1.q_proj"] = 2, ["v_proj"] = 6 },
            AlphaPattern = new Dictionary<string, double> { ["q_proj"] = 1 },
        });
        var layer = (LoraLayer)ModuleTree.Get(net, "blocks.1.q_proj");
        Assert.Equal(2, layer.RankOf("default"));
        Assert.Equal(0.5, layer.ScalingOf("default"));
        Assert.Equal(4, ((LoraLayer)ModuleTree.Get(net, "blocks.0.q_proj")).RankOf("default"));
        Assert.Equal(6, ((LoraLayer)ModuleTree.Get(net, "blocks.0.v_proj")).RankOf("default"));
        Assert.Equal(8.0 / 6, ((LoraLayer)ModuleTree.Get(net, "blocks.0.v_proj")).ScalingOf("default"), 12);
        Assert.NotNull(peft);
    }

    [Fact]
    public void Modules_to_save_get_a_trainable_copy_switched_with_the_adapter()
    {
        torch.manual_seed(22);
        var net = new NestedNet();
        var x = torch.randn(2, 4);
        using var baseOut = net.call(x);
        var peft = PeftModel.Create(net, new LoraConfig { TargetModules = TargetModules.Of("q_proj"), ModulesToSave = ["lm_head"] });
        var wrapper = Assert.IsType<ModulesToSaveWrapper>(ModuleTree.Get(net, "lm_head"));
        Assert.Contains("base_model.model.lm_head.weight", peft.AdapterStateDict("default").Keys);
        Assert.True(wrapper.CopyOf("default").parameters().All(p => p.requires_grad));
        Assert.True(wrapper.Original.parameters().All(p => !p.requires_grad));
        using (torch.no_grad())
        {
            peft.AdapterStateDict("default")["base_model.model.lm_head.bias"].add_(1.0f);
        }
        using var adapted = net.call(x);
        Assert.True(Weights.MaxAbsDiff(adapted, baseOut + 1) < 1e-5);
        using (peft.DisableAdapters())
        {
            using var disabled = net.call(x);
            Assert.True(Weights.Exact(disabled, baseOut));
        }
        var plain = (nn.Module<Tensor, Tensor>)peft.MergeAndUnload();
        using var merged = plain.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, baseOut + 1) < 1e-5);
    }

    private sealed class ConcreteHolder : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Linear fc = nn.Linear(3, 3);

        public ConcreteHolder() : base(nameof(ConcreteHolder)) => RegisterComponents();

        public override Tensor forward(Tensor x) => fc.call(x);
    }
}
