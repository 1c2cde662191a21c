using PeftSharp.Methods.GaLore;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.GaLore;

/// <summary>The projection maths, against the reference's hand-computed example (methods_training.md §12).</summary>
public class GaLoreProjectorTests
{
    private static Tensor G() => torch.tensor(new float[] { 3, 1, 0, 1, 1, 0 }, [3, 2]);

    private static double[] Values(Tensor t) => [.. t.to_type(ScalarType.Float64).data<double>()];

    internal static void Close(double[] expected, double[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"[{i}]: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Fact]
    public void Reference_example_tall_gradient_projects_on_the_right_singular_vector()
    {
        using var g = G();
        var side = GaLoreProjector.Side(3, 2, GaLoreProjection.Standard);
        Assert.Equal(ProjectionSide.Right, side);
        using var p = GaLoreProjector.Compute(g, 1, side);
        Assert.Equal([1L, 2L], p.shape);
        // P = ±[0.948683, 0.316228]; singular vectors are defined up to sign, so compare |P| and sign-free products.
        Close([0.948683, 0.316228], Values(p.abs()), 1e-6);
        using var r = GaLoreProjector.Project(g, p, side);
        Assert.Equal([3L, 1L], r.shape);
        Close([3.162278, 0.316228, 0.948683], Values(r.abs()), 1e-5);
        using var back = GaLoreProjector.ProjectBack(r, p, side, 1.0);
        Close([3, 1, 0.3, 0.1, 0.9, 0.3], Values(back), 1e-5);
        Assert.Equal(1.0, (g - back).norm().item<float>(), 5);
    }

    [Fact]
    public void Wide_gradient_projects_on_the_left_singular_vector()
    {
        using var g = G().t().contiguous();
        var side = GaLoreProjector.Side(2, 3, GaLoreProjection.Standard);
        Assert.Equal(ProjectionSide.Left, side);
        using var p = GaLoreProjector.Compute(g, 1, side);
        Assert.Equal([2L, 1L], p.shape);
        Close([0.948683, 0.316228], Values(p.abs()), 1e-6);
        using var r = GaLoreProjector.Project(g, p, side);
        Assert.Equal([1L, 3L], r.shape);
        using var back = GaLoreProjector.ProjectBack(r, p, side, 2.0);
        Close([6, 0.6, 1.8, 2, 0.2, 0.6], Values(back), 1e-5);
    }

    [Theory]
    [InlineData(GaLoreProjection.Standard, 8, 5, ProjectionSide.Right)]
    [InlineData(GaLoreProjection.Standard, 5, 8, ProjectionSide.Left)]
    [InlineData(GaLoreProjection.Standard, 6, 6, ProjectionSide.Right)]
    [InlineData(GaLoreProjection.ReverseStandard, 8, 5, ProjectionSide.Left)]
    [InlineData(GaLoreProjection.ReverseStandard, 5, 8, ProjectionSide.Right)]
    [InlineData(GaLoreProjection.Left, 8, 5, ProjectionSide.Left)]
    [InlineData(GaLoreProjection.Right, 5, 8, ProjectionSide.Right)]
    public void Side_follows_the_shape_as_the_reference_says(GaLoreProjection projection, long m, long n, ProjectionSide expected) =>
        Assert.Equal(expected, GaLoreProjector.Side(m, n, projection));

    [Fact]
    public void Full_rank_projection_round_trips_the_gradient_so_sgd_through_it_is_sgd()
    {
        torch.manual_seed(3);
        using var g = torch.randn(5, 3);
        foreach (var side in new[] { ProjectionSide.Right, ProjectionSide.Left })
        {
            var m = side == ProjectionSide.Right ? g : g.t().contiguous();
            using var p = GaLoreProjector.Compute(m, 3, side);
            using var back = GaLoreProjector.ProjectBack(GaLoreProjector.Project(m, p, side), p, side, 1.0);
            Assert.True((back - m).abs().max().item<float>() < 1e-5, $"{side}: full-rank P·Pᵀ must be the identity on G");
        }
    }

    [Fact]
    public void Rank_above_min_side_is_clamped_as_the_reference_slices()
    {
        Assert.Equal([3L, 4L], GaLoreProjector.ProjectorShape(9, 4, 3, ProjectionSide.Right));
        Assert.Equal([4L, 4L], GaLoreProjector.ProjectorShape(9, 4, 64, ProjectionSide.Right));
        Assert.Equal([9L, 4L], GaLoreProjector.StateShape(9, 4, 64, ProjectionSide.Right));
        Assert.Equal([4L, 9L], GaLoreProjector.StateShape(4, 9, 64, ProjectionSide.Left));
        using var p = GaLoreProjector.Compute(torch.randn(9, 4), 64, ProjectionSide.Right);
        Assert.Equal([4L, 4L], p.shape);
    }
}
