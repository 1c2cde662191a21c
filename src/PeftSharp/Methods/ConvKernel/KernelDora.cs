using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.ConvKernel;

/// <summary>
/// DoRA's magnitude/direction split for any weight whose first dimension is the output channel (Linear <c>[out, in]</c>,
/// Conv2d <c>[out, in/g, k_h, k_w]</c>): <c>W' = m ⊙ V / ‖V‖</c>, <c>V = W + ΔW</c>, the norm over every dimension but the
/// first and detached from backprop (DoRA paper §4.3; the same idea as <c>Methods/Dora/DoraVariant.cs</c>, written here
/// for kernels of any rank so the conv-kernel methods need not go through LoRA's layer).
/// </summary>
internal static class KernelDora
{
    /// <summary><c>‖W + ΔW‖₂</c> per output channel, <c>[C_out]</c>, detached; summed in fp32 and returned in W's dtype.</summary>
    public static Tensor ChannelNorm(Tensor weight, Tensor delta)
    {
        using var scope = torch.NewDisposeScope();
        var v = (weight.detach() + delta.detach()).to(ScalarType.Float32);
        return v.flatten(1).norm(1, keepdim: false).to(weight.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The magnitude's stored shape, as PEFT: <c>[C_out]</c> for Linear, <c>[1, C_out, 1, 1]</c> for Conv2d.</summary>
    public static long[] MagnitudeShape(BaseLayer layer) =>
        layer.Kind == BaseLayerKind.Conv2d ? [1, layer.OutFeatures, 1, 1] : [layer.OutFeatures];

    /// <summary>A per-channel vector reshaped to broadcast over a weight of <paramref name="dims"/> dimensions: <c>[C, 1, …]</c>.</summary>
    public static Tensor OverWeight(Tensor perChannel, int dims)
    {
        var shape = Enumerable.Repeat(1L, dims).ToArray();
        shape[0] = -1;
        return perChannel.reshape(shape);
    }
}
