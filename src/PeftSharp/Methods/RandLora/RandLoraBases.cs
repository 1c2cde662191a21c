using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.RandLora;

/// <summary>
/// The frozen random bases of one RandLoRA adapter, shared by all its layers (PEFT's <c>base_model.randlora_A</c> /
/// <c>randlora_B</c>): <c>A [r, 1, d]</c>, a single rank-r basis on the smaller side, and <c>B [D, n, r]</c>, n bases on
/// the larger side, where D and d are the larger and smaller of the largest target's (out, in) sizes and
/// <c>n = ⌈d / r⌉</c>. Plain tensors, not registered buffers: every layer holds the same object and slices
/// <c>A[:, :, :d_layer]</c>, <c>B[:D_layer, :n_layer, :]</c>.
/// </summary>
internal sealed class RandLoraBases
{
    private RandLoraBases(Tensor a, Tensor b)
    {
        A = a;
        B = b;
    }

    /// <summary><c>[r, 1, d]</c>.</summary>
    public Tensor A { get; }

    /// <summary><c>[D, n, r]</c>.</summary>
    public Tensor B { get; }

    public long Rank => A.shape[0];

    public long MinDim => A.shape[2];

    public long MaxDim => B.shape[0];

    public long NumBases => B.shape[1];

    /// <summary>Bases needed for a full-rank update of a layer whose smaller side is <paramref name="minDim"/>: ⌈minDim / r⌉.</summary>
    public static long NumBasesFor(long minDim, long rank) => (minDim + rank - 1) / rank;

    /// <summary>
    /// Draws the bases as PEFT's <c>RandLoraModel._pre_injection_hook</c> does, from one CPU generator seeded with
    /// <c>projection_prng_key</c> (libtorch's generator is PyTorch's, so the draw equals PEFT's where the random stream
    /// has not changed between builds; checked against PEFT 0.20 on torch 1.13). Dense: A, then n slices of B, each
    /// Kaiming-uniform (a = √5) in bf16, then each tensor divided by its own std. <c>sparse</c> / <c>very_sparse</c>:
    /// uniform draws mapped to −1 below 1/(2s), +1 above 1 − 1/(2s), else 0, with s = 3 or √d, then divided by the std.
    /// The result is cast to the first target's device and dtype, as PEFT moves them to the base layer's.
    /// </summary>
    public static RandLoraBases Create(RandLoraConfig config, IReadOnlyList<BaseLayer> targets)
    {
        if (targets.Count == 0)
        {
            throw new PeftException("RandLoRA: no target layer to size the shared bases randlora_A / randlora_B by");
        }
        var maxOut = targets.Max(t => t.OutFeatures);
        var maxIn = targets.Max(t => t.InFeatures);
        var maxDim = Math.Max(maxOut, maxIn);
        var minDim = Math.Min(maxOut, maxIn);
        var r = (long)config.Rank;
        var n = NumBasesFor(minDim, r);
        using var scope = torch.NewDisposeScope();
        using var generator = new torch.Generator(unchecked((ulong)config.ProjectionPrngKey), torch.CPU);
        Tensor a, b;
        if (config.VerySparse || config.Sparse)
        {
            var sparsity = config.VerySparse ? Math.Sqrt(minDim) : 3.0;
            var rawA = torch.empty([r, 1, minDim], dtype: ScalarType.Float32).uniform_(0, 1, generator);
            var rawB = torch.empty([maxDim, n, r], dtype: ScalarType.Float32).uniform_(0, 1, generator);
            a = Ternary(rawA, sparsity);
            b = Ternary(rawB, sparsity);
        }
        else
        {
            a = KaimingUniformBf16([r, 1, minDim], fanIn: minDim, generator);
            b = torch.cat(Enumerable.Range(0, (int)n).Select(_ => KaimingUniformBf16([maxDim, 1, r], fanIn: r, generator)).ToList(), dim: 1);
        }
        // PEFT: "std normalisation is empirically found to be the best".
        a = a / a.std();
        b = b / b.std();
        return new RandLoraBases(Keep(a, targets[0]), Keep(b, targets[0]));
    }

    // torch.nn.init.kaiming_uniform_(a=√5, fan_in, leaky_relu) on a bf16 tensor, as PEFT's randlora `_kaiming_init`
    // (which allocates bf16 whenever accelerate reports bf16 support, as it does on every CPU).
    private static Tensor KaimingUniformBf16(long[] shape, long fanIn, torch.Generator generator)
    {
        var negativeSlope = Math.Sqrt(5);
        var gain = Math.Sqrt(2.0 / (1 + negativeSlope * negativeSlope));
        var bound = Math.Sqrt(3.0) * (gain / Math.Sqrt(fanIn));
        return torch.empty(shape, dtype: ScalarType.BFloat16).uniform_(-bound, bound, generator);
    }

    // PEFT's `_init_randlora_A_randlora_B_sparse`: P(−1) = P(+1) = 1/(2s).
    private static Tensor Ternary(Tensor uniform, double sparsity)
    {
        var threshold = 1 / (2 * sparsity);
        return (uniform > 1 - threshold).to(ScalarType.Float32) - (uniform < threshold).to(ScalarType.Float32);
    }

    // The bases outlive any dispose scope the adapter was created in, as the layers' parameters do.
    private static Tensor Keep(Tensor t, BaseLayer like)
    {
        var kept = t.to(like.DType, like.Device).detach().clone();
        kept.DetachFromDisposeScope();
        return kept;
    }
}
