using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.GaLore;

/// <summary>GaLore's <c>proj_type</c>: how the projected side is chosen from the weight's shape.</summary>
public enum GaLoreProjection
{
    /// <summary><c>std</c>: right singular vectors when m ≥ n (state m×r), left ones when m &lt; n (state r×n): the state is r × the longer side.</summary>
    Standard,

    /// <summary><c>reverse_std</c>: the opposite choice of <see cref="Standard"/>.</summary>
    ReverseStandard,

    /// <summary><c>left</c>: always the left singular vectors, <c>R = Pᵀ G</c>.</summary>
    Left,

    /// <summary><c>right</c>: always the right singular vectors, <c>R = G Pᵀ</c>.</summary>
    Right,
}

/// <summary>Which side of G = [m, n] the projector multiplies.</summary>
public enum ProjectionSide
{
    /// <summary><c>P = U_r</c> [m, r]; <c>R = Pᵀ·G</c> [r, n]; back: <c>P·N</c>.</summary>
    Left,

    /// <summary><c>P = V_rᵀ</c> [r, n]; <c>R = G·Pᵀ</c> [m, r]; back: <c>N·P</c>.</summary>
    Right,
}

/// <summary>
/// The projection maths of GaLore's <c>GaLoreProjector</c> (<c>galore_torch/galore_projector.py</c>) as pure functions of
/// tensors, so the optimizer keeps the projector as ordinary state. G is the gradient of a weight stored as [m, n].
/// </summary>
public static class GaLoreProjector
{
    /// <summary>The side projected for a [m, n] weight under <paramref name="projection"/>.</summary>
    public static ProjectionSide Side(long m, long n, GaLoreProjection projection) => projection switch
    {
        GaLoreProjection.Standard => m >= n ? ProjectionSide.Right : ProjectionSide.Left,
        GaLoreProjection.ReverseStandard => m >= n ? ProjectionSide.Left : ProjectionSide.Right,
        GaLoreProjection.Left => ProjectionSide.Left,
        _ => ProjectionSide.Right,
    };

    /// <summary>The rank actually used: the official code slices r singular vectors out of min(m, n), so r is clamped.</summary>
    public static long EffectiveRank(long m, long n, int rank) => Math.Min(rank, Math.Min(m, n));

    /// <summary>Shape of the projector P: [r, n] (right) or [m, r] (left).</summary>
    public static long[] ProjectorShape(long m, long n, int rank, ProjectionSide side)
    {
        var r = EffectiveRank(m, n, rank);
        return side == ProjectionSide.Right ? [r, n] : [m, r];
    }

    /// <summary>Shape of the projected gradient R and of Adam's moments: [m, r] (right) or [r, n] (left).</summary>
    public static long[] StateShape(long m, long n, int rank, ProjectionSide side)
    {
        var r = EffectiveRank(m, n, rank);
        return side == ProjectionSide.Right ? [m, r] : [r, n];
    }

    /// <summary>
    /// A new projector from the gradient: the top-r right (<c>Vh[:r, :]</c>) or left (<c>U[:, :r]</c>) singular vectors of a
    /// reduced SVD. The SVD runs in float32 (trap 4 of the reference) and the result is cast back to G's dtype; it is a
    /// contiguous copy, so it does not keep the full factor alive.
    /// </summary>
    public static Tensor Compute(Tensor grad, int rank, ProjectionSide side)
    {
        using var scope = torch.NewDisposeScope();
        var matrix = grad.dtype == ScalarType.Float32 ? grad : grad.to_type(ScalarType.Float32);
        var (u, _, vh) = torch.linalg.svd(matrix, fullMatrices: false);
        var r = EffectiveRank(grad.shape[0], grad.shape[1], rank);
        var p = side == ProjectionSide.Right ? vh.narrow(0, 0, r) : u.narrow(1, 0, r);
        return p.to_type(grad.dtype).contiguous().clone().MoveToOuterDisposeScope();
    }

    /// <summary>R = G·Pᵀ (right) or Pᵀ·G (left).</summary>
    public static Tensor Project(Tensor grad, Tensor projector, ProjectionSide side) =>
        side == ProjectionSide.Right ? torch.matmul(grad, projector.t()) : torch.matmul(projector.t(), grad);

    /// <summary>The update back in the weight's space, times the scale α: α·N·P (right) or α·P·N (left).</summary>
    public static Tensor ProjectBack(Tensor lowRank, Tensor projector, ProjectionSide side, double scale)
    {
        using var scope = torch.NewDisposeScope();
        var full = side == ProjectionSide.Right ? torch.matmul(lowRank, projector) : torch.matmul(projector, lowRank);
        return (full * scale).MoveToOuterDisposeScope();
    }
}
