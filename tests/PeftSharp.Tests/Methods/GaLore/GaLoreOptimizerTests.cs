using PeftSharp.Methods.GaLore;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.GaLore;

/// <summary>GaLore's AdamW: the update rule by hand, the refresh schedule, the state shapes and sizes.</summary>
public class GaLoreOptimizerTests
{
    private static NamedParameter Param(string name, Tensor value) => new(name, new Parameter(value));

    private static void SetGrad(NamedParameter p, Tensor g) => p.Parameter.grad = g.clone();

    [Fact]
    public void Projected_update_equals_the_hand_computed_one_over_two_steps()
    {
        // The reference's G = [[3,1],[0,1],[1,0]], r = 1: |R| = r_i = [√10, √0.1, √0.9] (as |G·v1|), P = ±p, p = [3, 1]/√10.
        double[] w0 = [1, 2, 3, 4, 5, 6];
        double[] ri = [Math.Sqrt(10), Math.Sqrt(0.1), Math.Sqrt(0.9)];
        double[] pj = [3 / Math.Sqrt(10), 1 / Math.Sqrt(10)];
        const double lr = 0.1, scale = 0.5, eps = 1e-6, decay = 0.1, b1 = 0.9, b2 = 0.999;
        var w = Param("w", torch.tensor(w0.Select(v => (float)v).ToArray(), [3, 2]));
        var options = new GaLoreOptions { Rank = 1, UpdateProjectionGap = 10, Scale = scale, Eps = eps, WeightDecay = decay };
        using var opt = GaLoreAdamW.Create([w], options);

        var expected = (double[])w0.Clone();
        for (var t = 1; t <= 2; t++)
        {
            SetGrad(w, torch.tensor(new float[] { 3, 1, 0, 1, 1, 0 }, [3, 2]));
            opt.Step(lr);
            // Same G every step: M = (1−β1ᵗ)·R, V = (1−β2ᵗ)·R²; N = M/(√V + ε); the sign of P cancels in N·P.
            var stepSize = lr * Math.Sqrt(1 - Math.Pow(b2, t)) / (1 - Math.Pow(b1, t));
            for (var i = 0; i < 3; i++)
            {
                var n = (1 - Math.Pow(b1, t)) * ri[i] / (Math.Sqrt(1 - Math.Pow(b2, t)) * ri[i] + eps);
                for (var j = 0; j < 2; j++)
                {
                    var updated = expected[i * 2 + j] - stepSize * scale * n * pj[j];
                    expected[i * 2 + j] = updated * (1 - lr * decay);
                }
            }
            GaLoreProjectorTests.Close(expected, [.. w.Parameter.detach().to_type(ScalarType.Float64).data<double>()], 2e-6);
        }
    }

    [Fact]
    public void Projector_is_recomputed_from_the_current_gradient_every_T_steps_and_moments_are_kept()
    {
        torch.manual_seed(11);
        var w = Param("w", torch.randn(6, 4));
        using var opt = GaLoreAdamW.Create([w], new GaLoreOptions { Rank = 2, UpdateProjectionGap = 3 });
        Tensor? previous = null;
        Tensor? previousAvg = null;
        for (var step = 0; step < 7; step++)
        {
            var g = torch.randn(6, 4);
            SetGrad(w, g);
            opt.Step(1e-2);
            var state = opt.StateOf(w.Parameter)!;
            var projector = state.Tensors[GaLoreAdamW.ProjectorField].clone();
            var refresh = step % 3 == 0;
            if (refresh)
            {
                using var fresh = GaLoreProjector.Compute(g, 2, ProjectionSide.Right);
                Assert.True(Support.Weights.Exact(projector, fresh), $"step {step}: the projector must come from this step's gradient");
            }
            if (previous is not null)
            {
                Assert.Equal(!refresh, Support.Weights.Exact(projector, previous));
            }
            if (previousAvg is not null)
            {
                // Not reset and not rotated at a refresh: M = β1·M_old + (1−β1)·proj_new(G).
                using var expectedAvg = previousAvg * 0.9 + GaLoreProjector.Project(g, projector, ProjectionSide.Right) * 0.1;
                Assert.True((state.Tensors["exp_avg"] - expectedAvg).abs().max().item<float>() < 1e-6, $"step {step}: exp_avg");
            }
            previous = projector;
            previousAvg = state.Tensors["exp_avg"].clone();
        }
        Assert.Equal(7, opt.StateOf(w.Parameter)!.Step);
    }

    [Fact]
    public void State_is_r_by_n_not_m_by_n_and_its_bytes_match_the_formula()
    {
        torch.manual_seed(5);
        var tall = Param("tall", torch.randn(8, 5));
        var wide = Param("wide", torch.randn(5, 8));
        var bias = Param("bias", torch.randn(5));
        using var galore = GaLoreAdamW.Create([tall, wide, bias], new GaLoreOptions { Rank = 2 });
        foreach (var p in new[] { tall, wide, bias })
        {
            SetGrad(p, torch.randn_like(p.Parameter));
        }
        galore.Step(1e-3);
        long[] Shape(NamedParameter p, string field) => galore.StateOf(p.Parameter)!.Tensors[field].shape;
        Assert.Equal([8L, 2L], Shape(tall, "exp_avg"));
        Assert.Equal([8L, 2L], Shape(tall, "exp_avg_sq"));
        Assert.Equal([2L, 5L], Shape(tall, GaLoreAdamW.ProjectorField));
        Assert.Equal([2L, 8L], Shape(wide, "exp_avg"));
        Assert.Equal([5L, 2L], Shape(wide, GaLoreAdamW.ProjectorField));
        Assert.Equal([5L], Shape(bias, "exp_avg"));
        Assert.False(galore.StateOf(bias.Parameter)!.Tensors.ContainsKey(GaLoreAdamW.ProjectorField));

        // 2·m·r + r·n per matrix (= 2·r·max + r·min), 2·d for the unprojected bias; float32.
        Assert.Equal(2 * 8 * 2 + 2 * 5, GaLoreMemory.GaLoreStateElements(8, 5, 2));
        Assert.Equal(2 * 8 * 2 + 2 * 5, GaLoreMemory.GaLoreStateElements(5, 8, 2));
        Assert.Equal(4 * (2 * (2 * 8 * 2 + 2 * 5) + 2 * 5), GaLoreMemory.StateBytes(galore));

        using var adamw = AdamWOptimizer.Create([tall, wide, bias]);
        adamw.Step(1e-3);
        Assert.Equal(4 * (2 * 40 + 2 * 40 + 2 * 5), GaLoreMemory.StateBytes(adamw));
    }

    [Fact]
    public void Saved_state_loads_bit_exactly_and_a_wrong_rank_is_rejected_naming_the_tensor()
    {
        torch.manual_seed(9);
        var w = Param("w", torch.randn(6, 4));
        using var opt = GaLoreAdamW.Create([w], new GaLoreOptions { Rank = 2, UpdateProjectionGap = 2 });
        SetGrad(w, torch.randn(6, 4));
        opt.Step(1e-2);
        var state = opt.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal([2L, 4L], state["w/projector"].shape);

        using var other = GaLoreAdamW.Create([w], new GaLoreOptions { Rank = 2, UpdateProjectionGap = 2 });
        other.LoadStateDict(state, "state.safetensors");
        foreach (var (key, value) in other.StateDict())
        {
            Assert.True(Support.Weights.Exact(value, state[key]), key);
        }

        using var wrongRank = GaLoreAdamW.Create([w], new GaLoreOptions { Rank = 3 });
        var e = Assert.Throws<ModelMismatchException>(() => wrongRank.LoadStateDict(state, "state.safetensors"));
        Assert.Contains("'w/", e.Message);
        Assert.Contains("rank 3", e.Message);
    }

    [Fact]
    public void Hundred_steps_with_refreshes_leak_no_tensors()
    {
        torch.manual_seed(2);
        var w = Param("w", torch.randn(6, 4));
        var b = Param("b", torch.randn(4));
        using var opt = GaLoreAdamW.Create([w, b], new GaLoreOptions { Rank = 2, UpdateProjectionGap = 3 });
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                w.Parameter.grad = torch.randn(6, 4);
                b.Parameter.grad = torch.randn(4);
                opt.Step(1e-3);
                opt.ZeroGrad();
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
