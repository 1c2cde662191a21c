using PeftSharp.Merging;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

/// <summary>PEFT's merge_utils operations on hand-computed examples, and DARE by its statistics.</summary>
public class TaskVectorMergingTests
{
    private static Tensor V(params float[] values) => torch.tensor(values);

    private static void Near(Tensor actual, params float[] expected) =>
        Assert.True(Weights.MaxAbsDiff(actual, V(expected)) < 1e-6, $"got [{string.Join(", ", actual.data<float>().ToArray())}]");

    [Fact]
    public void Task_arithmetic_is_the_weighted_sum()
    {
        Near(TaskVectorMerging.TaskArithmetic([V(1, 2), V(-1, 4)], [0.5, 2]), -1.5f, 9);
    }

    [Fact]
    public void Magnitude_prune_keeps_floor_density_times_numel_largest_entries()
    {
        // k = int(0.5 · 4) = 2: -3 and 2 stay.
        Near(TaskVectorMerging.Prune(V(1, -3, 2, 0.5f), 0.5, PruneMethod.Magnitude), 0, -3, 2, 0);
        // k = int(0.6 · 4) = 2 as well (truncated, not rounded).
        Near(TaskVectorMerging.Prune(V(1, -3, 2, 0.5f), 0.6, PruneMethod.Magnitude), 0, -3, 2, 0);
        Near(TaskVectorMerging.Prune(V(1, -3, 2, 0.5f), 1.0, PruneMethod.Magnitude), 1, -3, 2, 0.5f);
        Near(TaskVectorMerging.MagnitudePrune([V(1, -3, 2, 0.5f), V(4, 0, 0, 1)], [1, 0.5], 0.25), 2, -3, 0, 0);
    }

    [Fact]
    public void Ties_without_pruning_averages_weighted_entries_that_agree_with_the_total_sign()
    {
        // Σ = [0, −3, 5, 4.1] → signs [+, −, +, +]; t2's −1 disagrees in entry 0. Weighted: t1·1, t2·0.5;
        // agreeing sums [1, −2.5, 4, 2.1] over counts [1, 2, 2, 2].
        Near(TaskVectorMerging.Ties([V(1, -2, 3, 0.1f), V(-1, -1, 2, 4)], [1, 0.5], density: 1), 1, -1.25f, 2, 1.05f);
    }

    [Fact]
    public void Ties_prunes_each_tensor_before_electing_and_zeros_never_count()
    {
        // Pruned to 2 of 4: t1 → [0, −2, 3, 0], t2 → [0, 0, 2, 4]; Σ = [0, −2, 5, 4] → [+, −, +, +].
        // Entry 0 has no agreeing value (zeros have sign 0): 0 / max(0, 1) = 0.
        Near(TaskVectorMerging.Ties([V(1, -2, 3, 0.1f), V(-1, -1, 2, 4)], [1, 0.5], density: 0.5), 0, -2, 2, 2);
    }

    [Fact]
    public void Total_and_frequency_sign_elections_differ_when_one_large_value_outweighs_two_small()
    {
        Tensor[] t = [V(3), V(-1), V(-1)];
        Near(TaskVectorMerging.Ties(t, [1, 1, 1], 1, MajoritySignMethod.Total), 3);
        Near(TaskVectorMerging.Ties(t, [1, 1, 1], 1, MajoritySignMethod.Frequency), -1);
        using var stacked = torch.stack(t, 0);
        Assert.Equal([true, false, false], TaskVectorMerging.MajoritySignMask(stacked, MajoritySignMethod.Total).reshape(-1).data<bool>().ToArray());
    }

    [Fact]
    public void Disjoint_merge_divides_by_the_count_of_agreeing_entries_not_the_weight_sum()
    {
        using var weighted = torch.tensor(new float[] { 2, 4, 6, 0 }, 2, 2);
        using var mask = torch.tensor(new[] { true, true, true, false }, 2, 2);
        Near(TaskVectorMerging.DisjointMerge(weighted, mask).reshape(-1), 4, 4);
    }

    [Fact]
    public void Dare_keeps_about_density_of_entries_each_divided_by_density()
    {
        using var ones = torch.ones(200, 200);
        using var g = new Generator(7, torch.CPU);
        using var pruned = TaskVectorMerging.Prune(ones, 0.3, PruneMethod.Random, rescale: true, g);
        var kept = pruned.ne(0).to(ScalarType.Float64).mean().item<double>();
        // 40 000 Bernoulli(0.3) draws: σ = 0.0023; 5σ.
        Assert.InRange(kept, 0.3 - 0.0115, 0.3 + 0.0115);
        // Every kept entry is exactly 1/density (float32), every other exactly 0.
        using var values = pruned.masked_select(pruned.ne(0));
        Assert.True(values.eq(1f / 0.3f).all().item<bool>());
        using var linear = TaskVectorMerging.DareLinear([ones, ones * 2], [0.5, 0.25], 0.5, g);
        // E[result] = 0.5·1 + 0.25·2 = 1: the rescale keeps the expectation (σ of the mean ≈ 0.0025).
        Assert.InRange(linear.mean().item<float>(), 0.99, 1.01);
    }

    [Fact]
    public void Dare_with_a_seeded_generator_repeats_and_another_seed_differs()
    {
        using var t = torch.arange(1, 101, dtype: ScalarType.Float32);
        using var g1 = new Generator(5, torch.CPU);
        using var g2 = new Generator(5, torch.CPU);
        using var g3 = new Generator(6, torch.CPU);
        using var a = TaskVectorMerging.DareTies([t, -t], [1, 0.5], 0.5, MajoritySignMethod.Total, g1);
        using var b = TaskVectorMerging.DareTies([t, -t], [1, 0.5], 0.5, MajoritySignMethod.Total, g2);
        using var c = TaskVectorMerging.DareTies([t, -t], [1, 0.5], 0.5, MajoritySignMethod.Total, g3);
        Assert.True(Weights.Exact(a, b));
        Assert.False(Weights.Exact(a, c));
    }

    [Fact]
    public void Inputs_are_left_unchanged()
    {
        using var t1 = V(1, -2, 3, 0.1f);
        using var t2 = V(-1, -1, 2, 4);
        using var copy1 = t1.clone();
        using var copy2 = t2.clone();
        using var _ = TaskVectorMerging.Ties([t1, t2], [1, 0.5], 0.5);
        using var __ = TaskVectorMerging.DareLinear([t1, t2], [1, 0.5], 0.5);
        Assert.True(Weights.Exact(t1, copy1) && Weights.Exact(t2, copy2));
    }

    [Fact]
    public void Bad_density_shapes_and_counts_are_peft_exceptions()
    {
        Assert.Contains("Density should be >= 0", Assert.Throws<PeftException>(() => TaskVectorMerging.Prune(V(1, 2), -0.1, PruneMethod.Magnitude)).Message);
        Assert.Contains("density must be > 0 for DARE", Assert.Throws<PeftException>(() => TaskVectorMerging.DareLinear([V(1)], [1], 0)).Message);
        Assert.Contains("task tensor 1 is [3]", Assert.Throws<PeftException>(() => TaskVectorMerging.TaskArithmetic([V(1, 2), V(1, 2, 3)], [1, 1])).Message);
        Assert.Contains("2 task tensors but 1 weights", Assert.Throws<PeftException>(() => TaskVectorMerging.TaskArithmetic([V(1), V(2)], [1])).Message);
    }
}
