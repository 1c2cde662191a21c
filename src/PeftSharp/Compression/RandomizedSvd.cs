using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Compression;

/// <summary>
/// Truncated SVD by randomized subspace iteration (Halko, Martinsson &amp; Tropp, SIAM Review 2011, Algorithms 4.4 and
/// 5.1): a Gaussian test matrix Ω <c>[n, k + p]</c> from a generator seeded with <see cref="CompressionOptions.Seed"/>
/// (never the global torch RNG), Y = AΩ, then q power iterations Y = A(AᵀQ) with a QR re-orthonormalisation after every
/// product (without it the columns collapse onto σ₁ in floating point); finally the SVD of the small B = QᵀA
/// <c>[k + p, n]</c> gives U = Q·U_B. Cost O(m·n·(k + p)·(2q + 2)) instead of O(m·n·min(m, n)); float64.
/// </summary>
internal static class RandomizedSvd
{
    /// <summary>
    /// The leading <c>l = min(k + p, min(m, n))</c> singular triplets of <paramref name="matrix"/> <c>[m, n]</c> (read only):
    /// U <c>[m, l]</c>, S <c>[l]</c> descending, Vh <c>[l, n]</c>, new float64 tensors. When k + p ≥ min(m, n) the sketch
    /// would be the whole space, so the exact SVD is taken instead.
    /// </summary>
    public static (Tensor U, Tensor S, Tensor Vh) Of(Tensor matrix, int k, int oversampling, int powerIterations, long seed)
    {
        if (matrix.dim() != 2)
        {
            throw new PeftException($"RandomizedSvd: expected a matrix, got shape [{string.Join(", ", matrix.shape)}]");
        }
        using var scope = torch.NewDisposeScope();
        var a = matrix.detach().to(ScalarType.Float64);
        var (m, n) = (a.shape[0], a.shape[1]);
        var l = (long)k + oversampling;
        if (l >= Math.Min(m, n))
        {
            var (ue, se, vhe) = torch.linalg.svd(a, fullMatrices: false);
            return (ue.MoveToOuterDisposeScope(), se.MoveToOuterDisposeScope(), vhe.MoveToOuterDisposeScope());
        }
        // Drawn on the CPU so that the same seed gives the same Ω on every device.
        using var generator = new Generator(unchecked((ulong)seed));
        var omega = torch.randn([n, l], ScalarType.Float64, generator: generator).to(a.device);
        var q = Orthonormal(a.matmul(omega));
        for (var i = 0; i < powerIterations; i++)
        {
            q = Orthonormal(a.matmul(Orthonormal(a.t().matmul(q))));
        }
        var (ub, s, vh) = torch.linalg.svd(q.t().matmul(a), fullMatrices: false);
        return (q.matmul(ub).MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope(), vh.MoveToOuterDisposeScope());
    }

    private static Tensor Orthonormal(Tensor y)
    {
        var (q, _) = torch.linalg.qr(y);
        return q;
    }
}
