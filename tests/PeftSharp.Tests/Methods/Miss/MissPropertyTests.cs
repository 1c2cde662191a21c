using PeftSharp.Core;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Miss;
using PeftSharp.Tests.Support;
using TorchSharp;
using static PeftSharp.Tests.Methods.Miss.ShardTestHelpers;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Miss;

/// <summary>Init shapes and values, layer-shape errors, PEFT's names, several adapters on one layer, and leaks.</summary>
public class MissPropertyTests
{
    [Theory]
    [InlineData(ShardInit.Balance, new long[] { 4, 8 })]
    [InlineData(ShardInit.Bat, new long[] { 2, 4, 4 })]
    [InlineData(ShardInit.Mini, new long[] { 4, 2 })]
    public void Zero_inits_have_PEFTs_block_shape_and_leave_the_output_unchanged(ShardInit init, long[] shape)
    {
        torch.manual_seed(3);
        var lin = nn.Linear(12, 8);
        var x = torch.randn(5, 12);
        using var before = lin.call(x);
        var (holder, peft) = Wrap(lin, Config(MissConfig.Type, 4, init, miniR: 2));
        Assert.Equal(shape, Block(peft).shape);
        Assert.True(Weights.Exact(Block(peft), torch.zeros(shape)));
        using var after = holder.call(x);
        Assert.True(Weights.Exact(after, before));
    }

    [Fact]
    public void Init_weights_false_is_kaiming_uniform_on_the_balance_shape()
    {
        torch.manual_seed(4);
        var (_, peft) = Wrap(nn.Linear(8, 400), Config(MissConfig.Type, 4, ShardInit.Random));
        var block = Block(peft);
        Assert.Equal([4L, 400], block.shape);
        // kaiming_uniform_(a = √5) on [r, d_out]: fan_in = d_out, bound = 1/√d_out = 0.05.
        var maxAbs = block.abs().max().item<float>();
        Assert.InRange(maxAbs, 0.045, 0.05);
        Assert.True(block.std().item<float>() > 0.02);
    }

    [Theory]
    [InlineData(MissConfig.Type)]
    [InlineData(BoneConfig.Type)]
    public void Bat_rejects_an_output_dim_not_divisible_by_r_and_leaves_the_model_untouched(string peftType)
    {
        var holder = nn.Sequential(("layer", nn.Linear(4, 6)));
        var e = Assert.ThrowsAny<PeftException>(() => PeftModel.Create(holder, Config(peftType, 4, ShardInit.Bat)));
        Assert.Contains("\"bat\"", e.Message);
        Assert.Contains("r = 4", e.Message);
        Assert.Contains("4 → 6", e.Message);
        Assert.IsType<TorchSharp.Modules.Linear>(holder.named_children().Single().module);
    }

    [Fact]
    public void Mini_rejects_an_output_dim_not_divisible_by_mini_r()
    {
        var holder = nn.Sequential(("layer", nn.Linear(4, 6)));
        var e = Assert.ThrowsAny<PeftException>(() => PeftModel.Create(holder, Config(MissConfig.Type, 2, ShardInit.Mini, miniR: 4)));
        Assert.Contains("mini_r = 4", e.Message);
        Assert.Contains("out_features = 6", e.Message);
    }

    [Fact]
    public void Balance_accepts_any_output_dim_and_an_input_dim_not_divisible_by_r()
    {
        torch.manual_seed(5);
        var (holder, peft) = Wrap(nn.Linear(7, 5), Config(MissConfig.Type, 3));
        SetBlock(peft, torch.randn(3, 5));
        var x = torch.randn(2, 7);
        using (torch.no_grad())
        {
            using var unmerged = holder.call(x);
            peft.Merge();
            using var merged = holder.call(x);
            Assert.True(MaxAbsDiff(merged, unmerged) < 1e-5);
        }
    }

    [Theory]
    [InlineData(MissConfig.Type, "miss_block")]
    [InlineData(BoneConfig.Type, "bone_block")]
    public void Tensors_carry_PEFTs_in_memory_and_saved_names(string peftType, string key)
    {
        var (holder, peft) = Wrap(nn.Linear(4, 4), Config(peftType, 2));
        Assert.Equal([$"base_model.model.layer.{key}"], peft.AdapterStateDict("default").Keys);
        var trainable = holder.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name);
        Assert.Equal([$"layer.{key}.default"], trainable);
        var hasDropout = holder.named_modules().Any(m => m.name == "layer.miss_dropout.default");
        Assert.Equal(peftType == MissConfig.Type, hasDropout);
    }

    [Fact]
    public void Two_bat_adapters_apply_in_turn_and_merge_and_unmerge_consistently()
    {
        torch.manual_seed(6);
        var lin = nn.Linear(4, 4);
        var w0 = lin.weight!.detach().clone();
        var (holder, peft) = Wrap(lin, Config(MissConfig.Type, 2, ShardInit.Bat), "a");
        peft.AddAdapter("b", Config(MissConfig.Type, 2, ShardInit.Bat));
        peft.SetActiveAdapters("a", "b");
        var ba = torch.randn(2, 2, 2) * 0.3;
        var bb = torch.randn(2, 2, 2) * 0.3;
        SetBlock(peft, ba, "a");
        SetBlock(peft, bb, "b");
        var x = torch.randn(3, 4);
        using (torch.no_grad())
        {
            // W_a = W0 + bat_a(W0); W_ab = W_a + bat_b(W_a): PEFT's bat forward composes the active adapters in order.
            var wa = w0 + ShardMath.BatDelta(w0, ba);
            var wab = wa + ShardMath.BatDelta(wa, bb);
            using var unmerged = holder.call(x);
            Assert.True(MaxAbsDiff(unmerged, nn.functional.linear(x, wab, lin.bias)) < 1e-5);
            peft.Merge();
            Assert.True(MaxAbsDiff(lin.weight!, wab) < 1e-5);
            peft.Unmerge();
            Assert.True(MaxAbsDiff(lin.weight!, w0) < 1e-5);
        }
    }

    [Fact]
    public void Unmerging_a_bat_block_with_singular_I_plus_b_throws_and_keeps_the_weight()
    {
        var (_, peft) = Wrap(nn.Linear(4, 4), Config(MissConfig.Type, 2, ShardInit.Bat));
        // Block-row 1 is −I, so I + b₁ = 0.
        SetBlock(peft, torch.tensor(new float[] { 0.1f, 0, 0, 0.1f, -1, 0, 0, -1 }, 2, 2, 2));
        peft.Merge();
        var layer = peft.AdapterLayers().Single().Layer;
        var merged = layer.Base.Weight.detach().clone();
        var e = Assert.ThrowsAny<PeftException>(() => peft.Unmerge());
        Assert.Contains("singular", e.Message);
        Assert.Contains("'default'", e.Message);
        Assert.True(Weights.Exact(layer.Base.Weight, merged));
    }

    [Fact]
    public void Bone_and_MiSS_compute_the_same_function_for_the_same_blocks()
    {
        torch.manual_seed(8);
        var weight = torch.randn(8, 8);
        var x = torch.randn(3, 8);
        foreach (var init in new[] { ShardInit.Balance, ShardInit.Bat })
        {
            var outputs = new List<Tensor>();
            var block = init == ShardInit.Bat ? torch.randn(2, 4, 4) : torch.randn(4, 8);
            foreach (var type in new[] { MissConfig.Type, BoneConfig.Type })
            {
                var lin = nn.Linear(8, 8, hasBias: false);
                using (torch.no_grad())
                {
                    lin.weight!.copy_(weight);
                }
                var (holder, peft) = Wrap(lin, Config(type, 4, init));
                SetBlock(peft, block);
                using var _ = torch.no_grad();
                outputs.Add(holder.call(x));
            }
            Assert.True(Weights.Exact(outputs[0], outputs[1]), $"{init}: Bone and MiSS differ");
        }
    }

    [Theory]
    [InlineData(ShardInit.Balance)]
    [InlineData(ShardInit.Bat)]
    public void Hundred_forward_backward_steps_leak_no_tensors(ShardInit init)
    {
        torch.manual_seed(9);
        var net = new NestedNet(d: 8);
        var peft = PeftModel.Create(net, new MissConfig { Rank = 4, InitWeights = init, Dropout = 0.1, TargetModules = TargetModules.Of("q_proj", "v_proj", "left") });
        var x = torch.randn(3, 4);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                var loss = net.call(x).pow(2).mean();
                loss.backward();
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
