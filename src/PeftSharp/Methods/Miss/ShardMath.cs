using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Miss;

/// <summary>
/// The tensor maths of MiSS and Bone on plain tensors (reference §10; PEFT <c>miss/layer.py</c>, <c>bone/layer.py</c>).
/// Weights are in <c>nn.Linear</c>'s <c>[d_out, d_in]</c> layout; block (i, k) is <c>W[i·r:(i+1)·r, k·r:(k+1)·r]</c>.
/// </summary>
internal static class ShardMath
{
    /// <summary>
    /// ΔW of a shared block D <c>[r, d_out]</c>: <c>ΔW[o, k·r + j] = D[j, o]</c>, i.e. Dᵀ repeated along the input and cut
    /// at d_in. The cut is PEFT's remainder rule: the last partial shard gets the first <c>d_in mod r</c> columns of Dᵀ.
    /// </summary>
    public static Tensor SharedDelta(Tensor d, long inFeatures)
    {
        var r = d.shape[0];
        var copies = (inFeatures + r - 1) / r;
        return d.t().repeat(1, copies).narrow(1, 0, inFeatures);
    }

    /// <summary>Zero-pads the last dimension up to a multiple of r, as PEFT does before summing the shards.</summary>
    public static Tensor PadToShards(Tensor x, long r)
    {
        var pad = (r - x.shape[^1] % r) % r;
        return pad == 0 ? x : nn.functional.pad(x, [0, pad]);
    }

    /// <summary>Σₖ xₖ over the r-wide shards of the last dimension (already a multiple of r): <c>[…, n·r] → […, r]</c>.</summary>
    public static Tensor SumShards(Tensor x, long r)
    {
        long[] shape = [.. x.shape[..^1], x.shape[^1] / r, r];
        return x.reshape(shape).sum(-2);
    }

    /// <summary>A mini block <c>[r, mini_r]</c> tiled to <c>[r, d_out]</c> (column o is column <c>o mod mini_r</c>).</summary>
    public static Tensor TileMini(Tensor mini, long outFeatures) => mini.repeat(1, outFeatures / mini.shape[1]);

    /// <summary>
    /// Bone/bat ΔW for the current weight: block-wise <c>Wᵢₖ·bᵢ + bᵢ</c>, with b <c>[d_out/r, r, r]</c> shared along the input
    /// blocks k of output block-row i. The update depends on W, so it is not additive across adapters.
    /// </summary>
    public static Tensor BatDelta(Tensor weight, Tensor b)
    {
        var blocks = ToBlocks(weight, b.shape[^1]);
        return FromBlocks(blocks.matmul(b) + b, weight.shape);
    }

    /// <summary>Inverse of the bat merge: <c>Wᵢₖ = (W'ᵢₖ − bᵢ)(I + bᵢ)⁻¹</c>. Throws when some <c>I + bᵢ</c> is singular.</summary>
    public static Tensor BatUnmerge(Tensor merged, Tensor b, string what)
    {
        var r = b.shape[^1];
        var plusIdentity = torch.eye(r, dtype: b.dtype, device: b.device) + b;
        // Not linalg.inv_ex: in TorchSharp 0.107 it returns a matrix that is not the inverse ((I+b)·inv ≠ I, info 0).
        Tensor inverse;
        try
        {
            inverse = torch.linalg.inv(plusIdentity);
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            throw new PeftException($"{what}: cannot unmerge the bat block, I + b is singular ({e.Message.Split('\n')[0]})", e);
        }
        if (!inverse.isfinite().all().item<bool>())
        {
            throw new PeftException($"{what}: cannot unmerge the bat block, (I + b)⁻¹ is not finite");
        }
        var blocks = ToBlocks(merged, r);
        return FromBlocks((blocks - b).matmul(inverse), merged.shape);
    }

    // [d_out, d_in] → [d_in/r, d_out/r, r, r]: input block first so b (indexed by the output block) broadcasts over it.
    private static Tensor ToBlocks(Tensor w, long r) => w.reshape(w.shape[0] / r, r, w.shape[1] / r, r).permute(2, 0, 1, 3);

    private static Tensor FromBlocks(Tensor blocks, long[] shape) => blocks.permute(1, 2, 0, 3).reshape(shape);
}
