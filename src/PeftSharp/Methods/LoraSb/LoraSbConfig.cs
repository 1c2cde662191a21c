using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.LoraSb;

/// <summary>
/// LoRA-SB (Ponkshe et al., arXiv 2411.19557): LoRA-XS's <c>y = W x + B R A dropout(x)</c> (only R trained, scale 1), but
/// B, R and A start as the rank-r truncated SVD of an approximation of the first full fine-tuning update, estimated from
/// the gradient of the first <c>calibration_samples</c> training samples (<see cref="LoraSbCalibration"/>; the trainer runs it
/// before the first step). PEFT has no LoRA-SB, so <c>peft_type</c> is PeftSharp's <c>LORA_SB</c>. The calibration keys
/// are saved with the adapter, as PEFT keeps EVA's data-driven init settings in its config.
/// </summary>
public sealed record LoraSbConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "LORA_SB";

    /// <summary><c>calibration_update</c>: the first Adam step, <c>−lr · sign(G)</c> (the official code).</summary>
    public const string SignUpdate = "sign";

    /// <summary><c>calibration_update</c>: the first SGD step, <c>−lr · G</c>.</summary>
    public const string GradientUpdate = "gradient";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r; R is r×r (default 8, as PEFT's LoRA). There is no α: the official scripts force α = r, so s = 1.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Dropout probability on the adapter input only (default 0).</summary>
    [JsonPropertyName("lora_dropout")]
    public double Dropout { get; init; }

    /// <summary>
    /// <c>true</c> (default): until calibrated, B and A are random orthonormal frames and R = 0 (output = base);
    /// calibration replaces all three. <c>false</c>: R ~ N(0, 1/r²) instead (for tests: the trainer then skips calibration,
    /// which never overwrites an adapter whose R is non-zero).
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    /// <summary>How many training samples (rows) the gradient estimate reads (default 50, as the official code).</summary>
    [JsonPropertyName("calibration_samples")]
    public int CalibrationSamples { get; init; } = 50;

    /// <summary>
    /// The learning rate η of the approximated first step. The official code uses the lr of the first warm-up step,
    /// <c>lr / (warmup_ratio · total_steps)</c>. Required to calibrate; no default, because the right value depends on the run.
    /// </summary>
    [JsonPropertyName("calibration_lr")]
    public double? CalibrationLearningRate { get; init; }

    /// <summary><c>"sign"</c> (default, ΔW₁ = −η·sign(G), Adam's first step) or <c>"gradient"</c> (ΔW₁ = −η·G, SGD's).</summary>
    [JsonPropertyName("calibration_update")]
    public string CalibrationUpdate { get; init; } = SignUpdate;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Dropout < 0 || Dropout >= 1 || double.IsNaN(Dropout))
        {
            throw new ConfigException($"lora_dropout must be in [0, 1), got {Dropout}");
        }
        if (CalibrationSamples <= 0)
        {
            throw new ConfigException($"calibration_samples must be > 0, got {CalibrationSamples}");
        }
        if (CalibrationLearningRate is { } lr && (lr <= 0 || !double.IsFinite(lr)))
        {
            throw new ConfigException($"calibration_lr must be > 0, got {lr}");
        }
        if (CalibrationUpdate is not (SignUpdate or GradientUpdate))
        {
            throw new ConfigException($"calibration_update must be \"{SignUpdate}\" or \"{GradientUpdate}\", got \"{CalibrationUpdate}\"");
        }
    }
}
