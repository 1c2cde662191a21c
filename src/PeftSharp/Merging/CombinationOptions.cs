namespace PeftSharp.Merging;

/// <summary>
/// Options of <see cref="AdapterMerging.AddWeightedAdapter"/>, with PEFT's defaults and names
/// (<c>add_weighted_adapter(combination_type=…, svd_rank=…, …)</c>).
/// </summary>
public sealed record CombinationOptions
{
    /// <summary>PEFT's <c>combination_type</c> (default <c>svd</c>). With a single source adapter PEFT always uses <c>linear</c>.</summary>
    public CombinationType Type { get; init; } = CombinationType.Svd;

    /// <summary>PEFT's <c>svd_rank</c>: rank of the result of the svd kinds (default: the largest source rank).</summary>
    public int? SvdRank { get; init; }

    /// <summary>PEFT's <c>svd_clamp</c>: a quantile q in [0, 1]; U·S and Vᴴ are clamped to ±h, h = quantile of their joint (signed) entries at q. Null: no clamping.</summary>
    public double? SvdClamp { get; init; }

    /// <summary>PEFT's <c>svd_full_matrices</c> (default true); only how the SVD is computed, the truncated factors are the same.</summary>
    public bool SvdFullMatrices { get; init; } = true;

    /// <summary>PEFT's <c>svd_driver</c>: a cuSOLVER option; TorchSharp 0.107 does not expose it, so only null is accepted.</summary>
    public string? SvdDriver { get; init; }

    /// <summary>PEFT's <c>density</c>: fraction of entries kept by the ties, dare and magnitude_prune kinds (required by them).</summary>
    public double? Density { get; init; }

    /// <summary>PEFT's <c>majority_sign_method</c> for the ties kinds (default total).</summary>
    public MajoritySignMethod MajoritySign { get; init; } = MajoritySignMethod.Total;

    /// <summary>
    /// Seed of the torch generator DARE draws its masks from, so a merge can be repeated. Null: torch's global generator
    /// (as PEFT, whose DARE results follow <c>torch.manual_seed</c>).
    /// </summary>
    public long? Seed { get; init; }

    /// <summary>Rejects bad values, naming PEFT's keyword.</summary>
    public void Validate()
    {
        if (SvdRank is <= 0)
        {
            throw new PeftException($"svd_rank must be > 0, got {SvdRank}");
        }
        if (SvdClamp is { } q && (double.IsNaN(q) || q < 0 || q > 1))
        {
            throw new PeftException($"svd_clamp is a quantile and must be in [0, 1], got {q}");
        }
        if (SvdDriver is not null)
        {
            throw new PeftException($"svd_driver '{SvdDriver}' selects a cuSOLVER routine (CUDA only in torch) and TorchSharp does not expose it; leave it unset");
        }
        if (Density is { } d && (double.IsNaN(d) || d < 0))
        {
            throw new PeftException($"density must be >= 0, got {d}");
        }
        if (Type.UsesDensity() && Density is null)
        {
            throw new PeftException($"combination_type '{Type.PeftName()}' needs density (the fraction of entries kept, in [0, 1])");
        }
    }
}
