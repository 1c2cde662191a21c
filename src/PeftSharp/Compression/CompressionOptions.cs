namespace PeftSharp.Compression;

/// <summary>How the dense route factors each module's ΔW. CLI: <c>--svd exact|randomized</c>.</summary>
public enum SvdAlgorithm
{
    /// <summary>The full float64 SVD, O(m·n·min(m, n)); gives the whole spectrum (needed by a budget).</summary>
    Exact,

    /// <summary><see cref="RandomizedSvd"/>: the leading k + oversampling triplets only; needs a fixed <see cref="CompressionOptions.Rank"/>.</summary>
    Randomized,
}

/// <summary>
/// How <see cref="LoraCompression"/> shrinks an adapter. Give <see cref="Rank"/> (every module to that rank), or
/// <see cref="Budget"/> (ranks allocated by singular-value energy, <see cref="RankAllocation"/>), or both (the budget
/// allocation with <see cref="Rank"/> as each module's largest rank).
/// </summary>
public sealed record CompressionOptions
{
    /// <summary>Target rank k; must not exceed any module's current rank (compression never adds rank). CLI: <c>--rank</c>.</summary>
    public int? Rank { get; init; }

    /// <summary>Total trainable parameters of the result, Σ kᵢ·(d_in + d_out) over the modules. CLI: <c>--budget</c>.</summary>
    public long? Budget { get; init; }

    /// <summary>
    /// SVD of the dense route (non-LoRA, DoRA, PiSSA/OLoRA sources); default <see cref="SvdAlgorithm.Exact"/>. A plain LoRA
    /// is always factored exactly from its factors (<see cref="FactoredSvd"/>), which is already cheap. CLI: <c>--svd</c>.
    /// </summary>
    public SvdAlgorithm Svd { get; init; } = SvdAlgorithm.Exact;

    /// <summary>Randomized SVD: extra sketch columns p beyond the rank k (default 8, as Halko et al. suggest 5–10).</summary>
    public int Oversampling { get; init; } = 8;

    /// <summary>Randomized SVD: power iterations q, each followed by a QR (default 2).</summary>
    public int PowerIterations { get; init; } = 2;

    /// <summary>Randomized SVD: seed of the Gaussian test matrix's own generator (default 0). CLI: <c>--seed</c>, shared with fine-tuning.</summary>
    public long Seed { get; init; }

    public void Validate()
    {
        if (Rank is null && Budget is null)
        {
            throw new ConfigException("compression needs a target rank (--rank) or a parameter budget (--budget)");
        }
        if (Rank is < 1)
        {
            throw new ConfigException($"--rank must be >= 1, got {Rank}");
        }
        if (Budget is < 1)
        {
            throw new ConfigException($"--budget must be >= 1, got {Budget}");
        }
        if (Svd == SvdAlgorithm.Randomized && Budget is not null)
        {
            throw new ConfigException(
                "--svd randomized needs a fixed --rank without --budget: a budget is allocated over each module's whole spectrum, which only the exact SVD gives");
        }
        if (Svd == SvdAlgorithm.Randomized && Rank is null)
        {
            throw new ConfigException("--svd randomized needs a fixed target rank (--rank)");
        }
        if (Oversampling < 0)
        {
            throw new ConfigException($"oversampling must be >= 0, got {Oversampling}");
        }
        if (PowerIterations < 0)
        {
            throw new ConfigException($"power iterations must be >= 0, got {PowerIterations}");
        }
    }
}

/// <summary>
/// What compression did to one module: its shape (ΔW is <c>[OutFeatures, InFeatures]</c>, a Conv2d kernel flattened into
/// InFeatures), ranks, the singular values of ΔW and the Frobenius error left. <see cref="SourceRank"/> is the LoRA rank r
/// for a LoRA source, and the numerical rank of ΔW for any other method (singular values above σ₁·max(m, n)·ε of the
/// layer's dtype, as <c>torch.linalg.matrix_rank</c>).
/// </summary>
/// <remarks>
/// With a randomized SVD, <see cref="SingularValues"/> holds only the k + p estimated leading values (and
/// <see cref="SourceRank"/> counts among them), and <see cref="SquaredNorm"/> gives ‖ΔW‖²_F.
/// </remarks>
public sealed record ModuleCompression(string Module, long OutFeatures, long InFeatures, int SourceRank, int TargetRank, IReadOnlyList<double> SingularValues,
    double? SquaredNorm = null)
{
    /// <summary>
    /// ‖ΔW − ΔW'‖_F = √Σ_{i&gt;k} σᵢ² (Eckart–Young); with <see cref="SquaredNorm"/> (randomized SVD, ΔW' = Q·[QᵀΔW]_k)
    /// √(‖ΔW‖²_F − Σ_{i≤k} σ̃ᵢ²), exact since ΔW − QQᵀΔW is orthogonal to Q·(anything).
    /// </summary>
    public double Error => SquaredNorm is double total
        ? Math.Sqrt(Math.Max(0, total - SingularValues.Take(TargetRank).Sum(s => s * s)))
        : FactoredSvd.TailNorm(SingularValues, TargetRank);

    /// <summary>Fraction of ‖ΔW‖²_F kept (1 for a zero update).</summary>
    public double RetainedEnergy
    {
        get
        {
            var total = SquaredNorm ?? SingularValues.Sum(s => s * s);
            return total == 0 ? 1 : Math.Min(1, SingularValues.Take(TargetRank).Sum(s => s * s) / total);
        }
    }

    /// <summary>Trainable parameters after compression: k·(d_in + d_out).</summary>
    public long Parameters => TargetRank * (OutFeatures + InFeatures);
}
