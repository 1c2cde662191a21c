using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.Sora;

/// <summary>
/// SoRA, sparse low-rank adaptation (Ding et al., EMNLP 2023, arXiv 2311.11696): LoRA with a gate vector g between A and B,
/// <c>y = W x + s·B·(g ⊙ A·dropout(x))</c>, <c>s = lora_alpha / r</c>. g is trained by its own AdamW and, after each step,
/// soft-thresholded (a proximal L1 step), so gates reach exact zeros; an L1 term <c>sparse_lambda·mean|g|</c> is added to
/// the loss. The pruned adapter (<see cref="SoraPruning"/>) is a plain LoRA of rank #nonzero gates. PEFT has no SoRA:
/// the type string is PeftSharp's, the keys follow the official code (TsinghuaC3I/SoRA, <c>run_glue.py</c>).
/// </summary>
public sealed record SoraConfig : LoraKeysConfig
{
    /// <summary>PeftSharp's type string (not in PEFT).</summary>
    public const string Type = "SORA";

    /// <summary>
    /// A SoRA config with the official defaults: r = 8 (the maximum rank and gate length, official <c>lora_r</c>, the GLUE
    /// scripts' value), α = 16 (s = α / r; PEFT's LoRA default is 8), dropout 0.
    /// </summary>
    public SoraConfig() => Alpha = 16;

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>true: A Kaiming-uniform, B = 0 (identity at init); false: B Kaiming-uniform too. g ~ N(0, 1) either way, as the official code.</summary>
    [JsonPropertyName("init_lora_weights")]
    public bool InitLoraWeights { get; init; } = true;

    /// <summary>Weight λ of the L1 term <c>λ·mean(|g|)</c> added to the loss (official <c>sparse_lambda</c>, default 1e-3).</summary>
    [JsonPropertyName("sparse_lambda")]
    public double SparseLambda { get; init; } = 1e-3;

    /// <summary>Threshold ξ of the proximal step after each optimizer step (official <c>sparse_lambda_2</c>, default 1e-3; 0 disables it).</summary>
    [JsonPropertyName("sparse_lambda_2")]
    public double SparseLambda2 { get; init; } = 1e-3;

    /// <summary>
    /// <c>"official"</c> (default): the official <c>SparseAdamW</c> operator, shift by ξ then zero every |v| &lt; ξ, so
    /// |v| &lt; 2ξ becomes 0; <c>"soft"</c>: textbook soft-thresholding <c>sign(v)·max(|v| − ξ, 0)</c>.
    /// </summary>
    [JsonPropertyName("threshold_form")]
    public string ThresholdForm { get; init; } = SoraThreshold.Official;

    /// <summary>
    /// false (default, official GLUE scripts): ξ is absolute; true: ξ is multiplied by the gate's learning rate of the
    /// step (the paper's <c>T_{η·λ}</c>, official <c>sparse_optimizer_multiply_lr.py</c>).
    /// </summary>
    [JsonPropertyName("threshold_times_lr")]
    public bool ThresholdTimesLearningRate { get; init; }

    /// <summary>The gates' learning rate as a multiple of the scheduled one (official <c>sparse_lr</c>, which defaults to the main lr; default 1).</summary>
    [JsonPropertyName("sparse_lr_scale")]
    public double SparseLearningRateScale { get; init; } = 1;

    /// <summary>
    /// Sparsifying schedule of ξ (Algorithm 1): null (default: constant ξ), <c>"linear"</c>, <c>"log_linear"</c> or
    /// <c>"exp_linear"</c>, from <c>sparse_lambda_2</c> to <c>max_lambda</c> in <c>lambda_num</c> values, one per stage
    /// of <c>lambda_stage_steps</c> optimizer steps (official <c>lambda_schedule</c>).
    /// </summary>
    [JsonPropertyName("lambda_schedule")]
    public string? LambdaSchedule { get; init; }

    /// <summary>Last ξ of the schedule (official <c>max_lambda</c>).</summary>
    [JsonPropertyName("max_lambda")]
    public double? MaxLambda { get; init; }

    /// <summary>Number of ξ values (stages) of the schedule, the first being <c>sparse_lambda_2</c> (official <c>lambda_num</c>).</summary>
    [JsonPropertyName("lambda_num")]
    public int? LambdaNum { get; init; }

    /// <summary>Optimizer steps per stage (the official code retrains 15 epochs per stage); stage k starts at step k·this.</summary>
    [JsonPropertyName("lambda_stage_steps")]
    public int? LambdaStageSteps { get; init; }

    public override void Validate()
    {
        base.Validate();
        if (!(SparseLambda >= 0))
        {
            throw new ConfigException($"sparse_lambda must be >= 0, got {SparseLambda}");
        }
        if (!(SparseLambda2 >= 0))
        {
            throw new ConfigException($"sparse_lambda_2 must be >= 0, got {SparseLambda2}");
        }
        if (!(SparseLearningRateScale > 0))
        {
            throw new ConfigException($"sparse_lr_scale must be > 0, got {SparseLearningRateScale}");
        }
        if (ThresholdForm is not (SoraThreshold.Official or SoraThreshold.Soft))
        {
            throw new ConfigException($"threshold_form must be \"{SoraThreshold.Official}\" or \"{SoraThreshold.Soft}\", got \"{ThresholdForm}\"");
        }
        if (LambdaSchedule is null)
        {
            return;
        }
        if (LambdaSchedule is not ("linear" or "log_linear" or "exp_linear"))
        {
            throw new ConfigException($"lambda_schedule must be null, \"linear\", \"log_linear\" or \"exp_linear\", got \"{LambdaSchedule}\"");
        }
        if (MaxLambda is not double max || !(max >= 0))
        {
            throw new ConfigException($"max_lambda must be set (>= 0) with lambda_schedule \"{LambdaSchedule}\", got {MaxLambda?.ToString() ?? "null"}");
        }
        if (LambdaNum is not int num || num < 1)
        {
            throw new ConfigException($"lambda_num must be set (>= 1) with lambda_schedule \"{LambdaSchedule}\", got {LambdaNum?.ToString() ?? "null"}");
        }
        if (LambdaStageSteps is not int every || every < 1)
        {
            throw new ConfigException($"lambda_stage_steps must be set (>= 1) with lambda_schedule \"{LambdaSchedule}\", got {LambdaStageSteps?.ToString() ?? "null"}");
        }
        if (LambdaSchedule == "exp_linear" && !(SparseLambda2 > 0 && max > 0))
        {
            throw new ConfigException($"lambda_schedule \"exp_linear\" is geometric: sparse_lambda_2 and max_lambda must be > 0, got {SparseLambda2} and {max}");
        }
    }
}
