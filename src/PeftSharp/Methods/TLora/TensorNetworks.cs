using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.TLora;

/// <summary>
/// Tensor-train-matrix (TTM) and tensor-ring-matrix (TRM) maths on plain tensors (reference §16a). A matrix index is split
/// row-major over the factors: <c>i = (i_1, …, i_K)</c>, i_1 most significant, so <c>T = G_1 ⊗ … ⊗ G_K</c> for TT rank 1.
/// TT core k: <c>[ρ_{k−1}, n_k (row), n_k (column), ρ_k]</c> with ρ₀ = ρ_K = 1; TR core k: <c>[q, o_k, i_k, q]</c>, closed by a trace.
/// </summary>
internal static class TensorNetworks
{
    /// <summary>
    /// d split into <paramref name="count"/> factors, each the largest divisor not above the balanced root of what is left
    /// (4096, 3 → 16·16·16; 768, 3 → 8·8·12; 6, 2 → 2·3; 7, 2 → 1·7). The product is exactly d.
    /// </summary>
    public static long[] Factorize(long d, int count)
    {
        var factors = new long[count];
        var rest = d;
        for (var k = 0; k < count - 1; k++)
        {
            var root = IntegerRoot(rest, count - k);
            var f = root;
            while (rest % f != 0)
            {
                f--;
            }
            factors[k] = f;
            rest /= f;
        }
        factors[count - 1] = rest;
        return factors;
    }

    // The largest f with f^k ≤ n (exact integer arithmetic: a floating cube root of 4096 is 15.99…).
    private static long IntegerRoot(long n, int k)
    {
        long f = 1;
        while (Pow(f + 1, k) <= n)
        {
            f++;
        }
        return f;
    }

    private static double Pow(long b, int k) => Math.Pow(b, k);

    /// <summary>
    /// <c>T·x</c> for T in TTM format, over the last dimension of x, without forming T: the cores are contracted with x one
    /// at a time, last core first.
    /// </summary>
    public static Tensor TtApply(IReadOnlyList<Tensor> cores, Tensor x)
    {
        var d = x.shape[^1];
        var n = x.numel() / d;
        var z = x.reshape(n, d, 1, 1);
        var remaining = d;
        for (var k = cores.Count - 1; k >= 0; k--)
        {
            var g = cores[k];
            var (size, rankOut) = (g.shape[1], g.shape[3]);
            remaining /= size;
            var done = z.shape[3];
            // z[p, q, j, b, t] · g[c, i, j, b] → [p, q, c, i, t]: consume input index j_k and rank b, emit output i_k and rank c.
            z = torch.einsum("pqjbt,cijb->pqcit", z.reshape(n, remaining, size, rankOut, done), g)
                .reshape(n, remaining, g.shape[0], size * done);
        }
        return z.reshape(x.shape);
    }

    /// <summary>The full <c>[d, d]</c> matrix of a TTM operator (for merging).</summary>
    public static Tensor TtFull(IReadOnlyList<Tensor> cores)
    {
        var m = cores[0].squeeze(0);
        for (var k = 1; k < cores.Count; k++)
        {
            var g = cores[k];
            m = torch.einsum("IJa,aijb->IiJjb", m, g).reshape(m.shape[0] * g.shape[1], m.shape[1] * g.shape[2], g.shape[3]);
        }
        return m.squeeze(2);
    }

    /// <summary>The full <c>[Π o_k, Π i_k]</c> matrix of a TRM tensor: <c>ΔR[(o), (i)] = Tr(Π_k H_k[:, o_k, i_k, :])</c>.</summary>
    public static Tensor TrFull(IReadOnlyList<Tensor> cores)
    {
        var m = cores[0];
        for (var k = 1; k < cores.Count; k++)
        {
            var h = cores[k];
            m = torch.einsum("aOIb,boic->aOoIic", m, h).reshape(m.shape[0], m.shape[1] * h.shape[1], m.shape[2] * h.shape[2], h.shape[3]);
        }
        return m.diagonal(0, 0, 3).sum(-1);
    }
}
