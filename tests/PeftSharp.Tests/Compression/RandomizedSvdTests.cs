using PeftSharp.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Compression;

/// <summary>
/// The randomized SVD of the dense route (Halko–Martinsson–Tropp) against a spectrum fixed in the test
/// (U diag(σ) Vᵀ from QR-orthogonalised Gaussian factors): near-optimal error and leading singular values, bytes fixed by
/// the seed, and the refusal of a budget (its use by the dense route: <see cref="DeltaCompressionTests"/>).
/// </summary>
public sealed class RandomizedSvdTests
{
    // σᵢ = 0.7^i: rapidly decaying, with a tail that is not negligible at k = 10 (σ₁₁ ≈ 0.02).
    private static (Tensor Matrix, double[] Sigma) KnownSpectrum(long m, long n)
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(5);
        var r = Math.Min(m, n);
        var (u, _) = torch.linalg.qr(torch.randn([m, r], ScalarType.Float64, generator: g));
        var (v, _) = torch.linalg.qr(torch.randn([n, r], ScalarType.Float64, generator: g));
        var sigma = Enumerable.Range(0, (int)r).Select(i => Math.Pow(0.7, i)).ToArray();
        var matrix = (u * torch.tensor(sigma, ScalarType.Float64).unsqueeze(0)).matmul(v.t());
        return (matrix.MoveToOuterDisposeScope(), sigma);
    }

    [Theory]
    [InlineData(120, 80, 10)]
    [InlineData(60, 150, 6)]
    public void Rank_k_error_within_1_01_of_the_optimal_tail_and_top_singular_values_within_1e4(int m, int n, int k)
    {
        var (matrix, sigma) = KnownSpectrum(m, n);
        using var _ = matrix;
        var (u, s, vh) = RandomizedSvd.Of(matrix, k, oversampling: 8, powerIterations: 2, seed: 3);
        using (u)
        using (s)
        using (vh)
        {
            Assert.Equal(k + 8, s.shape[0]);
            var top = s.data<double>().ToArray();
            for (var i = 0; i < k; i++)
            {
                Assert.True(Math.Abs(top[i] - sigma[i]) <= 1e-4 * sigma[i], $"σ{i + 1}: {top[i]} vs {sigma[i]}");
            }
            using var approx = (u.narrow(1, 0, k) * s.narrow(0, 0, k).unsqueeze(0)).matmul(vh.narrow(0, 0, k));
            var error = (matrix - approx).norm().item<double>();
            var tail = FactoredSvd.TailNorm(sigma, k);
            Assert.True(error <= 1.01 * tail, $"‖A − A_k‖_F = {error}, optimal {tail}");
        }
    }

    [Fact]
    public void Same_seed_gives_identical_bytes_and_another_seed_does_not()
    {
        var (matrix, _) = KnownSpectrum(70, 50);
        using var _ = matrix;
        byte[] Bytes(long seed)
        {
            var (u, s, vh) = RandomizedSvd.Of(matrix, 5, 8, 2, seed);
            using (u)
            using (s)
            using (vh)
            {
                return [.. u.contiguous().bytes, .. s.contiguous().bytes, .. vh.contiguous().bytes];
            }
        }
        Assert.Equal(Bytes(7), Bytes(7));
        Assert.NotEqual(Bytes(7), Bytes(8));
    }

    [Fact]
    public void A_budget_with_the_randomized_svd_is_an_error_naming_both_flags()
    {
        var options = new CompressionOptions { Rank = 2, Budget = 1000, Svd = SvdAlgorithm.Randomized };
        var e = Assert.Throws<ConfigException>(options.Validate);
        Assert.Contains("--svd randomized", e.Message);
        Assert.Contains("--budget", e.Message);
        Assert.Throws<ConfigException>(new CompressionOptions { Budget = 1000, Svd = SvdAlgorithm.Randomized }.Validate);
    }
}
