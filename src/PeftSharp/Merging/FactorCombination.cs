using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Merging;

/// <summary>
/// The per-module maths of <c>add_weighted_adapter</c> (PEFT <c>lora/model.py</c>): <c>cat</c>, the kinds that act on A and
/// B separately (<c>_generalized_task_arithmetic_weighted_adapter</c>) and the SVD kinds
/// (<c>_svd_generalized_task_arithmetic_weighted_adapter</c>). Each returns new tensors; sources are only read.
/// </summary>
internal static class FactorCombination
{
    /// <summary>A LoRA adapter's (A, B) on a layer, under PEFT's layouts.</summary>
    public static LoraFactors Factors(LoraLayer layer, string adapter)
    {
        var t = layer.AdapterTensors(adapter);
        var (a, b) = LoraLayer.FactorKeys(layer.Base.Kind);
        return new LoraFactors(t[a], t[b]);
    }

    /// <summary>A' = [w₁s₁A₁; w₂s₂A₂; …], B' = [B₁ B₂ …], zero-padded to <paramref name="rank"/> as PEFT writes them into a rank-Σr slot.</summary>
    public static LoraFactors Cat(LoraLayer layer, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, long rank)
    {
        using var scope = torch.NewDisposeScope();
        var a = new List<Tensor>();
        var b = new List<Tensor>();
        for (var i = 0; i < adapters.Count; i++)
        {
            var f = Factors(layer, adapters[i]);
            a.Add(f.A.detach() * weights[i] * layer.ScalingOf(adapters[i]));
            b.Add(f.B.detach());
        }
        var catA = torch.cat(a, 0);
        var catB = torch.cat(b, 1);
        var pad = rank - catA.shape[0];
        if (pad > 0)
        {
            var shapeA = catA.shape.ToArray();
            shapeA[0] = pad;
            var shapeB = catB.shape.ToArray();
            shapeB[1] = pad;
            catA = torch.cat([catA, torch.zeros(shapeA, catA.dtype, catA.device)], 0);
            catB = torch.cat([catB, torch.zeros(shapeB, catB.dtype, catB.device)], 1);
        }
        return Moved(catA, catB);
    }

    /// <summary>
    /// The operation on A and on B separately, with weights ±√|w·s| on A (the sign goes on A only) and √|w·s| on B. All
    /// sources must have the module's rank.
    /// </summary>
    public static LoraFactors FactorWise(string module, LoraLayer layer, IReadOnlyList<string> adapters, IReadOnlyList<double> weights,
        TaskVectorOperation operation, CombinationOptions options, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        var sources = adapters.Select(a => Factors(layer, a)).ToList();
        for (var i = 1; i < sources.Count; i++)
        {
            if (sources[i].Rank != sources[0].Rank)
            {
                throw new PeftException(
                    $"'{module}': adapter '{adapters[i]}' has rank {sources[i].Rank} but '{adapters[0]}' has {sources[0].Rank}; all adapters must have the same r value for combination_type {options.Type.PeftName()}");
            }
        }
        var weightsA = new double[adapters.Count];
        var weightsB = new double[adapters.Count];
        for (var i = 0; i < adapters.Count; i++)
        {
            var ws = weights[i] * layer.ScalingOf(adapters[i]);
            weightsB[i] = Math.Sqrt(Math.Abs(ws));
            weightsA[i] = ws >= 0 ? weightsB[i] : -weightsB[i];
        }
        var dtype = sources[0].A.dtype;
        // PEFT draws DARE's masks for every A first, then every B (its loop over [A deltas, B deltas]).
        var a = TaskVectorMerging.Apply(operation, sources.Select(f => f.A.detach()).ToList(), weightsA, options.Density, options.MajoritySign, generator);
        var b = TaskVectorMerging.Apply(operation, sources.Select(f => f.B.detach()).ToList(), weightsB, options.Density, options.MajoritySign, generator);
        return Moved(a.to(dtype), b.to(dtype));
    }

    /// <summary>
    /// The operation on the sources' ΔWs, then a truncated SVD: B' = U_k·diag(S_k), A' = Vᴴ_k, optionally clamped. A
    /// LoRA source enters as (w·s)·ΔW with ΔW = s·B·A (PEFT multiplies its weight by the scale and its
    /// <c>get_delta_weight</c> already holds the scale, so s counts twice); any other method as w·ΔW.
    /// </summary>
    public static LoraFactors Svd(string module, AdapterLayer layer, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, long rank,
        CombinationOptions options, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        var deltas = new List<Tensor>();
        var effective = new double[adapters.Count];
        for (var i = 0; i < adapters.Count; i++)
        {
            if (layer is LoraLayer lora)
            {
                deltas.Add(lora.LoraDelta(adapters[i]).detach());
                effective[i] = weights[i] * lora.ScalingOf(adapters[i]);
            }
            else
            {
                deltas.Add((layer.DeltaWeight(adapters[i]) ?? throw new PeftException(
                    $"'{module}': {layer.PeftType} adapter '{adapters[i]}' has no closed-form ΔW, so the svd combinations cannot use it")).detach());
                effective[i] = weights[i];
            }
        }
        var delta = TaskVectorMerging.Apply(options.Type.Operation(), deltas, effective, options.Density, options.MajoritySign, generator);
        var outShape = delta.shape;
        var matrix = delta.dim() > 2 ? delta.flatten(1) : delta;
        var m = matrix.shape[0];
        var n = matrix.shape[1];
        if (rank > Math.Min(m, n))
        {
            throw new PeftException($"'{module}': svd_rank {rank} exceeds min(out, in) = {Math.Min(m, n)} of its ΔW [{m}, {n}]");
        }
        var dtype = layer is LoraLayer l0 ? Factors(l0, adapters[0]).A.dtype : layer.Base.DType;
        // LAPACK has no half-precision SVD; PEFT would fail there, we factor in float32 and cast back.
        if (matrix.dtype is ScalarType.Float16 or ScalarType.BFloat16)
        {
            matrix = matrix.to(ScalarType.Float32);
        }
        var (u, s, vh) = torch.linalg.svd(matrix, fullMatrices: options.SvdFullMatrices);
        var k = (int)rank;
        var bOut = u.narrow(1, 0, k).matmul(torch.diag(s.narrow(0, 0, k)));
        var aOut = vh.narrow(0, 0, k);
        if (options.SvdClamp is { } q)
        {
            var dist = torch.cat([bOut.flatten(), aOut.flatten()]);
            var hi = torch.quantile(dist, torch.tensor(q, dist.dtype, dist.device)).to(ScalarType.Float64).item<double>();
            bOut = bOut.clamp(-hi, hi);
            aOut = aOut.clamp(-hi, hi);
        }
        if (outShape.Length == 4)
        {
            aOut = aOut.reshape(k, outShape[1], outShape[2], outShape[3]);
            bOut = bOut.reshape(outShape[0], k, 1, 1);
        }
        return Moved(aOut.to(dtype).contiguous(), bOut.to(dtype).contiguous());
    }

    private static LoraFactors Moved(Tensor a, Tensor b) => new(a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope());
}
