namespace PeftSharp.Compression;

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
    }
}

/// <summary>
/// What compression did to one module: its shape (ΔW is <c>[OutFeatures, InFeatures]</c>, a Conv2d kernel flattened into
/// InFeatures), ranks, the singular values of ΔW and the Frobenius error left. <see cref="SourceRank"/> is the LoRA rank r
/// for a LoRA source, and the numerical rank of ΔW for any other method (singular values above σ₁·max(m, n)·ε of the
/// layer's dtype, as <c>torch.linalg.matrix_rank</c>).
/// </summary>
public sealed record ModuleCompression(string Module, long OutFeatures, long InFeatures, int SourceRank, int TargetRank, IReadOnlyList<double> SingularValues)
{
    /// <summary>‖ΔW − ΔW'‖_F = √Σ_{i&gt;k} σᵢ² (Eckart–Young).</summary>
    public double Error => FactoredSvd.TailNorm(SingularValues, TargetRank);

    /// <summary>Fraction of ‖ΔW‖²_F kept (1 for a zero update).</summary>
    public double RetainedEnergy
    {
        get
        {
            var total = SingularValues.Sum(s => s * s);
            return total == 0 ? 1 : SingularValues.Take(TargetRank).Sum(s => s * s) / total;
        }
    }

    /// <summary>Trainable parameters after compression: k·(d_in + d_out).</summary>
    public long Parameters => TargetRank * (OutFeatures + InFeatures);
}
