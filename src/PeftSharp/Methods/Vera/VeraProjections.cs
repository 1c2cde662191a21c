using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Vera;

/// <summary>
/// The frozen random matrices of one VeRA adapter, shared by all its layers: <c>A [r, max d_in]</c> and
/// <c>B [max d_out, r]</c> (PEFT's <c>base_model.vera_A</c> / <c>vera_B</c>). They are plain tensors, not registered
/// buffers, so every layer holds the same object and it is saved once; each layer moves its slice to its own device.
/// </summary>
internal sealed class VeraProjections
{
    private VeraProjections(Tensor a, Tensor b)
    {
        A = a;
        B = b;
    }

    /// <summary><c>[r, max d_in]</c>.</summary>
    public Tensor A { get; }

    /// <summary><c>[max d_out, r]</c>.</summary>
    public Tensor B { get; }

    public long Rank => A.shape[0];

    public long MaxIn => A.shape[1];

    public long MaxOut => B.shape[0];

    /// <summary>
    /// Draws the projections for the given targets, as PEFT's <c>VeraModel._init_vera_A_vera_B</c>: sized by the largest
    /// in/out features among the targets, both Kaiming-uniform (gain √2, fan_in) from one CPU generator seeded with
    /// <c>projection_prng_key</c>, A first. libtorch's CPU generator is PyTorch's, so the values equal PEFT's wherever the
    /// random stream has not changed between the two builds (checked against PEFT 0.20 on torch 1.13); they are then cast
    /// to the first target's device and dtype, as PEFT moves them to the base layer's.
    /// </summary>
    public static VeraProjections Create(VeraConfig config, IReadOnlyList<BaseLayer> targets)
    {
        if (targets.Count == 0)
        {
            throw new PeftException("VeRA: no target layer to size the shared projections vera_A / vera_B by");
        }
        var maxIn = targets.Max(t => t.InFeatures);
        var maxOut = targets.Max(t => t.OutFeatures);
        using var scope = torch.NewDisposeScope();
        using var generator = new torch.Generator(unchecked((ulong)config.ProjectionPrngKey), torch.CPU);
        var a = KaimingUniform([config.Rank, maxIn], fanIn: maxIn, generator);
        var b = KaimingUniform([maxOut, config.Rank], fanIn: config.Rank, generator);
        var device = targets[0].Device;
        var dtype = targets[0].DType;
        return new VeraProjections(Keep(a.to(dtype, device)), Keep(b.to(dtype, device)));
    }

    // PEFT's vera/model.py `_kaiming_init`: bound = √3 · gain / √fan_in with gain = √2, drawn in fp32.
    private static Tensor KaimingUniform(long[] shape, long fanIn, torch.Generator generator)
    {
        var std = Math.Sqrt(2) / Math.Sqrt(fanIn);
        var bound = Math.Sqrt(3.0) * std;
        return torch.empty(shape, dtype: ScalarType.Float32).uniform_(-bound, bound, generator);
    }

    // The projections outlive any dispose scope the adapter was created in, as the layers' parameters do.
    private static Tensor Keep(Tensor t)
    {
        var copy = t.detach().clone();
        copy.DetachFromDisposeScope();
        return copy;
    }
}
