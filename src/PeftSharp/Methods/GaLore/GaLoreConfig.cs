using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.GaLore;

/// <summary>
/// GaLore (Zhao et al., arXiv 2403.03507): the full weights of the target modules are trained, with Adam moments kept in
/// a rank-r projection of the gradient (top singular vectors of the gradient, recomputed every
/// <see cref="UpdateProjectionGap"/> steps). PEFT has no GaLore, so <c>peft_type</c> is PeftSharp's <c>GALORE</c>; the keys
/// are those of the official optimizer's parameter group (<c>jiaweizzhao/GaLore</c>, <c>galore_torch/adamw.py</c>), except
/// the rank, which is <c>r</c> as in every PEFT config. The optimizer keys apply to the target weights only; every other
/// trainable parameter (a classification head) gets the trainer's own optimizer.
/// </summary>
public sealed record GaLoreConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "GALORE";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r of the projection (GaLore's <c>rank</c>); clamped to min(d_in, d_out). Default 128 (the official CLI's).</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 128;

    /// <summary>T: the projector is recomputed from the current gradient at optimizer steps 0, T, 2T, … Default 200 (GaLoreProjector's).</summary>
    [JsonPropertyName("update_proj_gap")]
    public int UpdateProjectionGap { get; init; } = 200;

    /// <summary>α: the back-projected update is multiplied by it (an lr multiplier on the target weights). Default 1.0.</summary>
    [JsonPropertyName("scale")]
    public double Scale { get; init; } = 1.0;

    /// <summary>
    /// Which side is projected: <c>std</c> (default: right singular vectors when d_out ≥ d_in, else left), <c>reverse_std</c>,
    /// <c>left</c>, <c>right</c>. The official two-sided <c>full</c> is not supported.
    /// </summary>
    [JsonPropertyName("proj_type")]
    public string ProjectionType { get; init; } = "std";

    /// <summary>Adam's (β1, β2). Default (0.9, 0.999).</summary>
    [JsonPropertyName("betas")]
    public IReadOnlyList<double> Betas { get; init; } = [0.9, 0.999];

    /// <summary>Added to √v before the bias correction (transformers' AdamW, which GaLore's optimizer copies). Default 1e-6.</summary>
    [JsonPropertyName("eps")]
    public double Eps { get; init; } = 1e-6;

    /// <summary>Decoupled weight decay on the target weights, applied after the update as in GaLore's AdamW. Default 0.</summary>
    [JsonPropertyName("weight_decay")]
    public double WeightDecay { get; init; }

    /// <summary>The optimizer hyperparameters these keys describe.</summary>
    public GaLoreOptions ToOptions() => new()
    {
        Rank = Rank,
        UpdateProjectionGap = UpdateProjectionGap,
        Scale = Scale,
        Projection = GaLoreOptions.ParseProjection(ProjectionType),
        Beta1 = Betas.Count == 2 ? Betas[0] : 0.9,
        Beta2 = Betas.Count == 2 ? Betas[1] : 0.999,
        Eps = Eps,
        WeightDecay = WeightDecay,
    };

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (UpdateProjectionGap <= 0)
        {
            throw new ConfigException($"update_proj_gap must be > 0, got {UpdateProjectionGap}");
        }
        if (!(Scale > 0) || double.IsInfinity(Scale))
        {
            throw new ConfigException($"scale must be a finite number > 0, got {Scale}");
        }
        _ = GaLoreOptions.ParseProjection(ProjectionType);
        if (Betas is null || Betas.Count != 2 || Betas.Any(b => !(b >= 0 && b < 1)))
        {
            throw new ConfigException($"betas must be two numbers in [0, 1), got [{string.Join(", ", Betas ?? [])}]");
        }
        if (!(Eps >= 0) || !(WeightDecay >= 0))
        {
            throw new ConfigException($"eps and weight_decay must be >= 0, got eps={Eps}, weight_decay={WeightDecay}");
        }
    }
}
