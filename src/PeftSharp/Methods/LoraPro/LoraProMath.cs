using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraPro;

/// <summary>
/// The maths of LoRA-Pro (arXiv 2407.18242, Theorem 2.1 and the official <c>lorapro_full_adjustment</c>), on one layer's
/// factors A <c>[r, d_in]</c>, B <c>[d_out, r]</c> with scale s, so that ΔW = s·B·A. Given the LoRA gradients
/// <c>G_A = s·Bᵀg</c> and <c>G_B = s·g·Aᵀ</c> of a full-weight gradient g <c>[d_out, d_in]</c> (never formed), the adjusted
/// gradients
/// <c>g_A = (1/s²)·(BᵀB)⁻¹·G_A + X·A</c>, <c>g_B = (1/s²)·(I − B(BᵀB)⁻¹Bᵀ)·G_B·(AAᵀ)⁻¹ − B·X</c>
/// make the equivalent gradient <c>s·(B·g_A + g_B·A)</c> the Frobenius-closest rank-2r approximation of g. X does not change
/// it; the Sylvester equation <c>(BᵀB)·X + X·(AAᵀ) = −(1/s²)·(BᵀB)⁻¹·G_A·Aᵀ</c> picks the X that keeps (g_A, g_B) closest
/// to (G_A, G_B). Inverses are <c>pinv(M + δI)</c> as in the official code. Inputs in any floating dtype; the r×r
/// algebra runs in fp64, the rest in the inputs' dtype.
/// </summary>
public static class LoraProMath
{
    /// <summary>The regularised inverses of one layer, computed once per step and used by both adjustments.</summary>
    public sealed record Inverses(Tensor AAt, Tensor BtB, Tensor AAtInv, Tensor BtBInv);

    /// <summary>AAᵀ, BᵀB and <c>pinv(· + δI)</c> of each, in fp64 (r×r).</summary>
    public static Inverses Invert(Tensor a, Tensor b, double delta)
    {
        var a64 = a.to_type(ScalarType.Float64);
        var b64 = b.to_type(ScalarType.Float64);
        var aat = a64.matmul(a64.t());
        var btb = b64.t().matmul(b64);
        var eye = torch.eye(aat.shape[0], dtype: ScalarType.Float64, device: a.device);
        return new Inverses(aat, btb, torch.linalg.pinv(aat + delta * eye), torch.linalg.pinv(btb + delta * eye));
    }

    /// <summary>
    /// The adjusted gradients (g_A, g_B) for X = 0 (<paramref name="solveX"/> false) or for the Sylvester X, and X itself
    /// (an r×r zero matrix when not solved), in the dtype of <paramref name="gradA"/>.
    /// </summary>
    public static (Tensor GradA, Tensor GradB, Tensor X) Adjust(Tensor a, Tensor b, Tensor gradA, Tensor gradB, double scaling, Inverses inv, bool solveX)
    {
        var dtype = gradA.dtype;
        var c = 1.0 / (scaling * scaling);
        var btbInv = inv.BtBInv.to_type(dtype);
        var aatInv = inv.AAtInv.to_type(dtype);
        var gA = btbInv.matmul(gradA) * c;
        // (I − B(BᵀB)⁻¹Bᵀ)·G_B without the d_out × d_out projector: G_B − B·((BᵀB)⁻¹·(Bᵀ·G_B)).
        var projected = gradB - b.matmul(btbInv.matmul(b.t().matmul(gradB)));
        var gB = projected.matmul(aatInv) * c;
        if (!solveX)
        {
            return (gA, gB, torch.zeros_like(btbInv));
        }
        var rhs = inv.BtBInv.matmul(gradA.to_type(ScalarType.Float64)).matmul(a.to_type(ScalarType.Float64).t()) * -c;
        var x = SolveSylvester(inv.BtB, inv.AAt, rhs).to_type(dtype);
        return (gA + x.matmul(a), gB - b.matmul(x), x);
    }

    /// <summary>The equivalent full-weight gradient <c>s·(B·g_A + g_B·A)</c> <c>[d_out, d_in]</c>.</summary>
    public static Tensor EquivalentGradient(Tensor a, Tensor b, Tensor gA, Tensor gB, double scaling) =>
        (b.matmul(gA) + gB.matmul(a)) * scaling;

    /// <summary>
    /// Solves <c>P·X + X·Q = C</c> for symmetric positive semi-definite P <c>[m, m]</c> and Q <c>[n, n]</c> through their
    /// eigendecompositions: with <c>P = U diag(λ) Uᵀ</c> and <c>Q = V diag(μ) Vᵀ</c>, <c>X = U·[(UᵀCV)_ij / (λ_i + μ_j)]·Vᵀ</c>.
    /// The official code uses general complex eigendecompositions; for SPD matrices the symmetric one is real and stabler
    /// (reference trap 5). Where <c>λ_i + μ_j</c> vanishes (both singular) that entry is set to 0: the minimum-norm solution.
    /// </summary>
    public static Tensor SolveSylvester(Tensor p, Tensor q, Tensor c)
    {
        using var scope = torch.NewDisposeScope();
        var (lambda, u) = torch.linalg.eigh(p);
        var (mu, v) = torch.linalg.eigh(q);
        var f = u.t().matmul(c).matmul(v);
        var denominator = lambda.unsqueeze(1) + mu.unsqueeze(0);
        var tiny = 1e-30 + 1e-12 * denominator.abs().max().item<double>();
        var y = torch.where(denominator.abs() > tiny, f / denominator, torch.zeros_like(f));
        return u.matmul(y).matmul(v.t()).MoveToOuterDisposeScope();
    }
}
