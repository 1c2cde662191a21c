using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Decompositions;

/// <summary>
/// Decompositions of a frozen weight shared by the methods that build their adapter from one (LoRA-XS, LoRA-SB, LoLDU,
/// SALT). Everything here works on <c>[out, in]</c> matrices in the dtype decompositions run in (fp32, or fp64 for fp64
/// weights): LAPACK has no half-precision kernels, and fp16 pivots or singular vectors lose too much.
/// </summary>
internal static class WeightFactors
{
    /// <summary>The layers these methods adapt: Linear and GPT-2 Conv1D (its <c>[in, out]</c> weight is read transposed).</summary>
    public static bool IsLinearLike(BaseLayer layer) => layer.Kind is BaseLayerKind.Linear or BaseLayerKind.Conv1D;

    /// <summary>fp64 stays fp64; every other floating dtype is decomposed in fp32.</summary>
    public static ScalarType ComputeType(ScalarType dtype) => dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>A detached copy of the base weight in <c>[out, in]</c> layout and the compute dtype.</summary>
    public static Tensor OutInCopy(BaseLayer layer)
    {
        var w = layer.OutInWeight().detach();
        return w.to_type(ComputeType(w.dtype)).clone();
    }

    /// <summary>
    /// The rank-<paramref name="rank"/> truncation of the thin SVD <c>M = U diag(S) Vh</c>: <c>U_r [m, r]</c>,
    /// <c>S_r [r]</c> (descending), <c>Vh_r [r, n]</c>. Exact (LAPACK), not randomized.
    /// </summary>
    public static (Tensor U, Tensor S, Tensor Vh) TruncatedSvd(Tensor m, long rank)
    {
        var (u, s, vh) = torch.linalg.svd(m, fullMatrices: false);
        return (u[.., ..(int)rank], s[..(int)rank], vh[..(int)rank]);
    }

    /// <summary>A <c>[rows, cols]</c> matrix with orthonormal columns (rows ≥ cols): the Q of a Gaussian draw from torch's generator.</summary>
    public static Tensor RandomOrthonormalColumns(long rows, long cols, ScalarType dtype, Device device)
    {
        var (q, _) = torch.linalg.qr(torch.randn(rows, cols, dtype: ComputeType(dtype), device: device));
        return q.to_type(dtype);
    }

    /// <summary>Throws unless <paramref name="rank"/> fits the layer (a rank-r factor of a d_out × d_in matrix needs r ≤ min(d_in, d_out)).</summary>
    public static void CheckRank(string method, string key, long rank, BaseLayer layer)
    {
        var k = Math.Min(layer.InFeatures, layer.OutFeatures);
        if (rank > k)
        {
            throw new PeftException(
                $"{method}: {key} = {rank} exceeds min(d_in, d_out) = {k} of a {layer.InFeatures} → {layer.OutFeatures} {layer.Kind}; lower {key} or exclude the module");
        }
    }

    /// <summary>
    /// A copy of <paramref name="value"/> as a Parameter in the given dtype, owned by no dispose scope (the layer owns it;
    /// TorchSharp would otherwise dispose a Parameter made inside a scope when the scope ends).
    /// </summary>
    public static Parameter NewParameter(Tensor value, ScalarType dtype, bool trainable)
    {
        var p = new Parameter(value.detach().to_type(dtype).contiguous().clone(), requires_grad: trainable);
        p.DetachFromDisposeScope();
        return p;
    }
}
