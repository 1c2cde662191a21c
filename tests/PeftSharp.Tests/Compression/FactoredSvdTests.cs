using PeftSharp.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Compression;

public class FactoredSvdTests
{
    private static Tensor T(double[,] values) => torch.tensor(values, ScalarType.Float64);

    private static double MaxAbs(Tensor a, Tensor b) => (a - b).abs().max().item<double>();

    // methods_training.md §14 unit test: B = [[1,0],[0,2],[1,1]], A = [[1,1,0],[0,1,1]], s = 1.
    [Fact]
    public void Reference_example_singular_values_rank1_error_and_exact_rank2()
    {
        using var b = T(new double[,] { { 1, 0 }, { 0, 2 }, { 1, 1 } });
        using var a = T(new double[,] { { 1, 1, 0 }, { 0, 1, 1 } });
        using var svd = FactoredSvd.Of(b, a, 1.0);
        var s = svd.SingularValues();
        Assert.Equal(2, s.Length);
        Assert.Equal(3.752701, s[0], 5);
        Assert.Equal(1.384643, s[1], 5);

        using var delta = T(new double[,] { { 1, 1, 0 }, { 0, 2, 2 }, { 1, 2, 1 } });
        var (b1, a1) = svd.Truncate(1, 1.0);
        Assert.Equal(1.384643, (delta - b1.matmul(a1)).norm().item<double>(), 5);
        var (b2, a2) = svd.Truncate(2, 1.0);
        Assert.True(MaxAbs(b2.matmul(a2), delta) < 1e-9);
    }

    [Theory]
    [InlineData(20, 30, 5, 0.7)]
    [InlineData(8, 3, 6, 2.0)] // r above min(m, n): a non-square R
    [InlineData(40, 12, 12, 0.25)]
    public void Factored_svd_equals_svd_of_the_formed_update_within_1e5(int m, int n, int r, double scale)
    {
        var g = new Generator(11);
        using var b = torch.randn([m, r], ScalarType.Float64, generator: g);
        using var a = torch.randn([r, n], ScalarType.Float64, generator: g);
        using var delta = b.matmul(a) * scale;
        using var svd = FactoredSvd.Of(b.to(ScalarType.Float32), a.to(ScalarType.Float32), scale);
        using var dense = torch.linalg.svdvals(delta);
        var expected = dense.data<double>().ToArray();
        var got = svd.SingularValues();
        for (var i = 0; i < got.Length; i++)
        {
            Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-5 * Math.Max(1, expected[0]), $"σ{i}: {got[i]} vs {expected[i]}");
        }
        // Rank of ΔW is at most min(m, n, r): the singular values the core does not have are zero.
        Assert.All(expected.Skip(got.Length), x => Assert.True(x < 1e-5 * expected[0]));
        using var rebuilt = svd.U().matmul(torch.diag(svd.S)).matmul(svd.V().t());
        Assert.True(MaxAbs(rebuilt, delta) <= 1e-5 * Math.Max(1, delta.abs().max().item<double>()));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    public void Truncation_is_the_best_rank_k_approximation(int k)
    {
        var g = new Generator(5);
        using var b = torch.randn([16, 6], ScalarType.Float64, generator: g);
        using var a = torch.randn([6, 10], ScalarType.Float64, generator: g);
        const double scale = 0.5;
        using var delta = b.matmul(a) * scale;
        using var svd = FactoredSvd.Of(b, a, scale);
        var (bk, ak) = svd.Truncate(k, newScale: 3.0);
        using var approx = bk.matmul(ak) * 3.0;

        // Eckart–Young: the error is the tail of the singular values of the formed ΔW...
        var (u, s, vh) = torch.linalg.svd(delta, fullMatrices: false);
        var sv = s.data<double>().ToArray();
        var tail = Math.Sqrt(sv.Skip(k).Sum(x => x * x));
        Assert.Equal(tail, (delta - approx).norm().item<double>(), 9);
        Assert.Equal(tail, FactoredSvd.TailNorm(sv, k), 12);
        // ...and the approximation is the dense truncated SVD (compare products: vectors are defined up to sign).
        using var denseK = u.narrow(1, 0, k).matmul(torch.diag(s.narrow(0, 0, k))).matmul(vh.narrow(0, 0, k));
        Assert.True(MaxAbs(approx, denseK) < 1e-9);
        // No other rank-k matrix from the same factors does better (a sanity check against a random competitor).
        using var other = b.narrow(1, 0, k).matmul(a.narrow(0, 0, k)) * scale;
        Assert.True((delta - other).norm().item<double>() > tail);
        Assert.Equal([16L, k], bk.shape);
        Assert.Equal([(long)k, 10L], ak.shape);
    }

    [Fact]
    public void Truncated_factors_are_balanced_and_absorb_the_new_scale()
    {
        var g = new Generator(3);
        using var b = torch.randn([9, 4], ScalarType.Float64, generator: g);
        using var a = torch.randn([4, 7], ScalarType.Float64, generator: g);
        using var svd = FactoredSvd.Of(b, a, 2.0);
        var (b2, a2) = svd.Truncate(2, 0.5);
        // Column norms of B' equal row norms of A' (= √(σ/s')).
        var s = svd.SingularValues();
        var colB = b2.norm(0).data<double>().ToArray();
        var rowA = a2.norm(1).data<double>().ToArray();
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(Math.Sqrt(s[i] / 0.5), colB[i], 9);
            Assert.Equal(Math.Sqrt(s[i] / 0.5), rowA[i], 9);
        }
    }

    [Fact]
    public void Rank_maps_reproduce_the_truncated_factors_from_the_old_ones()
    {
        var g = new Generator(8);
        using var b = torch.randn([12, 5], ScalarType.Float64, generator: g);
        using var a = torch.randn([5, 9], ScalarType.Float64, generator: g);
        using var svd = FactoredSvd.Of(b, a, 1.5);
        var (bk, ak) = svd.Truncate(3, 0.75);
        var (p, q) = svd.RankMaps(3, 0.75);
        Assert.Equal([5L, 3L], p.shape);
        Assert.Equal([3L, 5L], q.shape);
        Assert.True(MaxAbs(b.matmul(p), bk) < 1e-9);
        Assert.True(MaxAbs(q.matmul(a), ak) < 1e-9);
    }

    [Fact]
    public void Mismatched_factor_shapes_are_rejected()
    {
        using var b = torch.zeros(4, 3);
        using var a = torch.zeros(2, 5);
        var e = Assert.Throws<PeftException>(() => FactoredSvd.Of(b, a, 1));
        Assert.Contains("[4, 3]", e.Message);
    }
}
