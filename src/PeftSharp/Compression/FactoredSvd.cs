using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Compression;

/// <summary>
/// The SVD of a low-rank update <c>ΔW = s·B·A</c> (B <c>[m, r]</c>, A <c>[r, n]</c>) computed without forming ΔW
/// (LoRA-Squeeze, arXiv 2602.10993): thin QRs <c>B = Q_B R_B</c> and <c>Aᵀ = Q_A R_A</c> give
/// <c>ΔW = s·Q_B (R_B R_Aᵀ) Q_Aᵀ</c>, so the SVD of the small core <c>s·R_B R_Aᵀ = U_c Σ V_cᵀ</c> yields
/// <c>U = Q_B U_c</c>, <c>V = Q_A V_c</c>. Exact (no randomisation), O((m + n)·r²) instead of O(m·n·min(m, n)).
/// Everything is float64 on the factors' device; the instance owns its tensors.
/// </summary>
public sealed class FactoredSvd : IDisposable
{
    private FactoredSvd(Tensor qb, Tensor rb, Tensor qa, Tensor ra, Tensor coreU, Tensor s, Tensor coreV, double scale)
    {
        QB = qb;
        RB = rb;
        QA = qa;
        RA = ra;
        CoreU = coreU;
        S = s;
        CoreV = coreV;
        Scale = scale;
    }

    internal Tensor QB { get; }

    internal Tensor RB { get; }

    internal Tensor QA { get; }

    internal Tensor RA { get; }

    internal Tensor CoreU { get; }

    internal Tensor CoreV { get; }

    /// <summary>The scale s the factors were taken with.</summary>
    public double Scale { get; }

    /// <summary>Singular values of ΔW, descending, float64 <c>[min(m, n, r)]</c>.</summary>
    public Tensor S { get; }

    /// <summary>The singular values as doubles.</summary>
    public double[] SingularValues() => S.cpu().data<double>().ToArray();

    /// <summary>Left singular vectors <c>[m, t]</c> (a new tensor).</summary>
    public Tensor U() => QB.matmul(CoreU);

    /// <summary>Right singular vectors <c>[n, t]</c> (a new tensor), so that ΔW = U diag(S) Vᵀ.</summary>
    public Tensor V() => QA.matmul(CoreV);

    /// <summary>The SVD of <c>scale·b·a</c>; <paramref name="b"/> is <c>[m, r]</c>, <paramref name="a"/> is <c>[r, n]</c> (read only).</summary>
    public static FactoredSvd Of(Tensor b, Tensor a, double scale)
    {
        if (b.dim() != 2 || a.dim() != 2 || b.shape[1] != a.shape[0])
        {
            throw new PeftException($"FactoredSvd: B [{string.Join(", ", b.shape)}] and A [{string.Join(", ", a.shape)}] are not [m, r] and [r, n]");
        }
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (qb, rb) = torch.linalg.qr(b.detach().to(ScalarType.Float64));
        var (qa, ra) = torch.linalg.qr(a.detach().t().to(ScalarType.Float64));
        var (u, s, vh) = torch.linalg.svd(rb.matmul(ra.t()) * scale, fullMatrices: false);
        var result = new FactoredSvd(qb, rb, qa, ra, u, s, vh.t(), scale);
        foreach (var t in new[] { qb, rb, qa, ra, u, s })
        {
            t.MoveToOuterDisposeScope();
        }
        result.CoreV.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// The best rank-<paramref name="k"/> approximation as LoRA factors for a new scale <paramref name="newScale"/>, split
    /// evenly: <c>B' = U_k·√(Σ_k / s')</c> <c>[m, k]</c>, <c>A' = √(Σ_k / s')·V_kᵀ</c> <c>[k, n]</c>, so
    /// <c>s'·B'·A' = U_k Σ_k V_kᵀ</c> (Eckart–Young: ‖ΔW − s'B'A'‖_F = √Σ_{i&gt;k} σᵢ²). float64, new tensors.
    /// </summary>
    public (Tensor B, Tensor A) Truncate(int k, double newScale)
    {
        if (k < 1 || k > S.shape[0])
        {
            throw new PeftException($"FactoredSvd: rank {k} is outside [1, {S.shape[0]}]");
        }
        using var scope = torch.NewDisposeScope();
        var (b, a) = BalancedFactors(QB.matmul(CoreU.narrow(1, 0, k)), S.narrow(0, 0, k), QA.matmul(CoreV.narrow(1, 0, k)).t(), newScale);
        return (b.MoveToOuterDisposeScope(), a.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// LoRA factors of <c>U_k diag(σ_k) Vh_k</c> for scale <paramref name="newScale"/>, √σ split evenly:
    /// <c>B' = U_k·√(σ_k / s')</c> <c>[m, k]</c>, <c>A' = √(σ_k / s')·Vh_k</c> <c>[k, n]</c>. New tensors.
    /// </summary>
    internal static (Tensor B, Tensor A) BalancedFactors(Tensor uK, Tensor sigmaK, Tensor vhK, double newScale)
    {
        if (!(newScale > 0))
        {
            throw new PeftException($"FactoredSvd: the new scale must be > 0, got {newScale}");
        }
        using var scope = torch.NewDisposeScope();
        var root = (sigmaK / newScale).sqrt();
        var b = uK * root.unsqueeze(0);
        var a = root.unsqueeze(1) * vhK;
        return (b.MoveToOuterDisposeScope(), a.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The r × k maps of rank coordinates that <see cref="Truncate"/> applied: with <c>P = R_B⁺ U_c,k D</c> and
    /// <c>Q = D V_c,kᵀ (R_A⁺)ᵀ</c> (D = diag √(Σ_k / s')), <c>B' = B·P</c> and <c>A' = Q·A</c> when B and A have full rank
    /// r. A gradient of ΔW then maps exactly: <c>∂B' = (s'/s)·∂B·Qᵀ</c>, <c>∂A' = (s'/s)·Pᵀ·∂A</c>. float64, new tensors.
    /// </summary>
    public (Tensor P, Tensor Q) RankMaps(int k, double newScale)
    {
        using var scope = torch.NewDisposeScope();
        var root = (S.narrow(0, 0, k) / newScale).sqrt();
        var p = torch.linalg.pinv(RB).matmul(CoreU.narrow(1, 0, k)) * root.unsqueeze(0);
        var q = root.unsqueeze(1) * torch.linalg.pinv(RA).matmul(CoreV.narrow(1, 0, k)).t();
        return (p.MoveToOuterDisposeScope(), q.MoveToOuterDisposeScope());
    }

    /// <summary>‖ΔW − best rank-k approximation‖_F = √Σ_{i&gt;k} σᵢ² (Eckart–Young).</summary>
    public static double TailNorm(IReadOnlyList<double> singularValues, int k) =>
        Math.Sqrt(singularValues.Skip(k).Sum(s => s * s));

    public void Dispose()
    {
        foreach (var t in new[] { QB, RB, QA, RA, CoreU, S, CoreV })
        {
            t.Dispose();
        }
    }
}
