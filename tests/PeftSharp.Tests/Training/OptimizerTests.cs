using PeftSharp.Tests.IO;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

/// <summary>AdamW and SGD against values computed by hand (plain Python, torch 1.13's formulas), and their state handling.</summary>
public class OptimizerTests
{
    private static readonly float[][] s_grads = [[0.5f, 0.1f], [-0.3f, 0.2f]];

    private static NamedParameter Param(string name, params float[] values) =>
        new(name, new Parameter(torch.tensor(values).reshape(1, values.Length)));

    private static void SetGrad(NamedParameter p, float[] g)
    {
        using var t = torch.tensor(g).reshape(p.Parameter.shape);
        p.Parameter.grad = t;
    }

    private static float[] Values(Tensor t) => t.detach().cpu().data<float>().ToArray();

    private static void Run(TrainingOptimizer optimizer, NamedParameter p, double lr, params float[][] grads)
    {
        foreach (var g in grads)
        {
            SetGrad(p, g);
            optimizer.Step(lr);
        }
    }

    [Fact]
    public void AdamW_two_steps_match_hand_computed_torch_formula_with_decay_before_update()
    {
        var p = Param("w", 1.0f, -2.0f);
        using var opt = new AdamWOptimizer(ParameterGroups.Single([p], 0.5), new AdamWOptions { WeightDecay = 0.5 });
        Run(opt, p, 0.1, s_grads[0]);
        Assert.Equal([0.85f, -1.99999999f], Values(p.Parameter), new FloatTolerance(1e-6f));
        Run(opt, p, 0.1, s_grads[1]);
        // A decay applied after the Adam update would give 0.79239 / -1.99652 here.
        Assert.Equal([0.78835020f, -1.99651819f], Values(p.Parameter), new FloatTolerance(1e-6f));
        var state = opt.StateOf(p.Parameter)!;
        Assert.Equal(2, state.Step);
        Assert.Equal([0.015f, 0.029f], Values(state.Tensors["exp_avg"]), new FloatTolerance(1e-7f));
        Assert.Equal([3.39750e-4f, 4.9990e-5f], Values(state.Tensors["exp_avg_sq"]), new FloatTolerance(1e-9f));
    }

    [Fact]
    public void AdamW_default_groups_exempt_one_dimensional_parameters_from_decay()
    {
        var matrix = Param("m", 1.0f, 1.0f);
        var bias = new NamedParameter("b", new Parameter(torch.tensor(new[] { 1.0f, 1.0f })));
        using var opt = AdamWOptimizer.Create([matrix, bias], new AdamWOptions { WeightDecay = 0.5 });
        Assert.Equal(["decay", "no_decay"], opt.Groups.Select(g => g.Name));
        foreach (var p in new[] { matrix, bias })
        {
            using var zero = torch.zeros_like(p.Parameter);
            p.Parameter.grad = zero;
        }
        opt.Step(0.1);
        // Zero gradient: Adam's update is 0, so only the decay moves a weight.
        Assert.Equal([0.95f, 0.95f], Values(matrix.Parameter), new FloatTolerance(1e-7f));
        Assert.Equal([1.0f, 1.0f], Values(bias.Parameter));
    }

    [Fact]
    public void Group_learning_rate_scale_multiplies_the_scheduled_rate()
    {
        var p = Param("w", 1.0f, -2.0f);
        using var opt = new SgdOptimizer([new ParameterGroup("b", [p], learningRateScale: 4)]);
        Run(opt, p, 0.025, s_grads[0]);
        Assert.Equal([0.95f, -2.01f], Values(p.Parameter), new FloatTolerance(1e-7f));
    }

    [Theory]
    [InlineData(0.0, 0.0, 0.0, false, 0.98f, -2.03f)]
    [InlineData(0.9, 0.1, 0.01, false, 0.9292459f, -2.0313928f)]
    [InlineData(0.9, 0.0, 0.01, true, 0.91707411f, -2.05585112f)]
    public void Sgd_two_steps_match_hand_computed_torch_formula(double momentum, double dampening, double decay, bool nesterov, float w0, float w1)
    {
        var p = Param("w", 1.0f, -2.0f);
        using var opt = SgdOptimizer.Create([p], new SgdOptions { Momentum = momentum, Dampening = dampening, WeightDecay = decay, Nesterov = nesterov });
        Run(opt, p, 0.1, s_grads);
        Assert.Equal([w0, w1], Values(p.Parameter), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void Sgd_nesterov_without_momentum_is_rejected_naming_the_option()
    {
        var e = Assert.Throws<ConfigException>(() => SgdOptimizer.Create([Param("w", 1f)], new SgdOptions { Nesterov = true }));
        Assert.Contains("nesterov", e.Message);
    }

    [Fact]
    public void Parameters_without_gradient_are_skipped_and_keep_no_state()
    {
        var a = Param("a", 1f, 2f);
        var b = Param("b", 3f, 4f);
        using var opt = AdamWOptimizer.Create([a, b]);
        SetGrad(a, [1f, 1f]);
        opt.Step(0.1);
        Assert.Equal([3f, 4f], Values(b.Parameter));
        Assert.Null(opt.StateOf(b.Parameter));
        Assert.NotNull(opt.StateOf(a.Parameter));
    }

    [Fact]
    public void Rebuild_with_map_carries_moments_into_the_new_shape()
    {
        var p = Param("w", 1.0f, -2.0f);
        using var opt = AdamWOptimizer.Create([p]);
        Run(opt, p, 0.1, s_grads);
        var expAvg = Values(opt.StateOf(p.Parameter)!.Tensors["exp_avg"]);
        var bigger = new Parameter(torch.cat([p.Parameter.detach(), torch.zeros(1, 2)], 1));
        opt.RebuildState(p.Parameter, bigger, (_, old) => torch.cat([old, torch.zeros_like(old)], 1));
        var state = opt.StateOf(bigger)!;
        Assert.Null(opt.StateOf(p.Parameter));
        Assert.Equal(2, state.Step);
        Assert.Equal([1L, 4L], state.Tensors["exp_avg"].shape);
        Assert.Equal([.. expAvg, 0f, 0f], Values(state.Tensors["exp_avg"]));
        Assert.Same(bigger, opt.Parameters.Single().Parameter);
        Assert.Equal("w", opt.Parameters.Single().Name);
    }

    [Fact]
    public void Rebuild_without_map_keeps_state_of_same_shape_and_resets_a_new_shape()
    {
        var p = Param("w", 1.0f, -2.0f);
        using var opt = AdamWOptimizer.Create([p]);
        Run(opt, p, 0.1, s_grads[0]);
        var same = new Parameter(p.Parameter.detach().clone());
        opt.RebuildState(p.Parameter, same);
        Assert.Equal(1, opt.StateOf(same)!.Step);
        var other = new Parameter(torch.zeros(1, 3));
        opt.RebuildState(same, other);
        Assert.Null(opt.StateOf(other));
        opt.ResetState(other);
    }

    [Fact]
    public void Reset_state_restarts_bias_correction()
    {
        var p = Param("w", 1.0f, -2.0f);
        using var opt = new AdamWOptimizer(ParameterGroups.Single([p], 0.5), new AdamWOptions { WeightDecay = 0.5 });
        Run(opt, p, 0.1, s_grads[1]);
        opt.ResetState(p.Parameter);
        Assert.Null(opt.StateOf(p.Parameter));
        var before = Values(p.Parameter);
        Run(opt, p, 0.1, s_grads[0]);
        // A fresh first step moves every entry by lr·sign(g) (plus decay), whatever the history.
        Assert.Equal(before[0] * 0.95f - 0.1f, Values(p.Parameter)[0], 1e-6f);
    }

    [Fact]
    public void Saved_state_continues_bit_identically_after_load()
    {
        using var dir = new TempDir();
        var p1 = Param("w", 1.0f, -2.0f);
        var p2 = Param("w", 1.0f, -2.0f);
        using var a = SgdOptimizer.Create([p1], new SgdOptions { Momentum = 0.9 });
        using var b = SgdOptimizer.Create([p2], new SgdOptions { Momentum = 0.9 });
        Run(a, p1, 0.1, s_grads[0]);
        Run(b, p2, 0.1, s_grads[0]);
        b.Save(dir.File("opt.safetensors"));
        var p3 = new NamedParameter("w", new Parameter(p2.Parameter.detach().clone()));
        using var c = SgdOptimizer.Create([p3], new SgdOptions { Momentum = 0.9 });
        c.Load(dir.File("opt.safetensors"));
        Run(a, p1, 0.1, s_grads[1]);
        Run(c, p3, 0.1, s_grads[1]);
        Assert.Equal(Values(p1.Parameter), Values(p3.Parameter));
        Assert.Equal(1 + 1, c.StateOf(p3.Parameter)!.Step);
    }

    [Fact]
    public void Loading_state_of_another_shape_fails_naming_the_tensor_and_changes_nothing()
    {
        using var dir = new TempDir();
        var p = Param("w", 1.0f, -2.0f);
        using var a = AdamWOptimizer.Create([p]);
        Run(a, p, 0.1, s_grads[0]);
        a.Save(dir.File("opt.safetensors"));
        var q = Param("w", 1f, 2f, 3f);
        using var b = AdamWOptimizer.Create([q]);
        Run(b, q, 0.1, [1f, 1f, 1f]);
        var e = Assert.Throws<ModelMismatchException>(() => b.Load(dir.File("opt.safetensors")));
        Assert.Contains("w/exp_avg", e.Message);
        Assert.Equal(1, b.StateOf(q.Parameter)!.Step);
        var sgd = SgdOptimizer.Create([Param("w", 1f, 2f)]);
        Assert.Throws<ModelMismatchException>(() => sgd.Load(dir.File("opt.safetensors")));
    }

    [Fact]
    public void Composite_optimizer_rejects_a_parameter_claimed_twice()
    {
        var p = Param("w", 1f);
        Assert.Throws<PeftException>(() => new CompositeOptimizer([SgdOptimizer.Create([p]), SgdOptimizer.Create([p])]));
    }

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}
