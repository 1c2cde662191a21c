using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.Diffora;

/// <summary>
/// DiffoRA (Jiang, Wang, Yuan, arXiv 2502.08905): not every candidate module gets a LoRA. Each candidate carries a LoRA
/// (<c>r</c>, <c>lora_alpha</c>, <c>lora_dropout</c>, <c>use_rslora</c> from <see cref="RsLoraKeysConfig"/>) and one architecture logit ω; during the search the
/// layer computes the continuous relaxation <c>y = γ·(W x + s·B A x) + (1 − γ)·W x</c>, <c>γ = sigmoid(ω)</c>. After
/// <see cref="SearchSteps"/> optimizer steps the differential adaptation matrix is discretised: the top modules by γ keep
/// their LoRA (with the weights learned in the search: weight sharing), the others lose it, and the adapter becomes a
/// plain LoRA. PEFT has no DiffoRA; the keys below are PeftSharp's (the LoRA keys are PEFT's).
/// </summary>
public sealed record DifforaConfig : RsLoraKeysConfig
{
    /// <summary>PeftSharp's type string while the search runs; after discretisation the adapter is saved as <c>LORA</c>.</summary>
    public const string Type = "DIFFORA";

    /// <summary>Key listing the selected modules in the saved LoRA config (and the run's report).</summary>
    public const string SelectedModulesKey = "diffora_selected_modules";

    /// <summary>Key holding every candidate's γ at discretisation in the saved LoRA config.</summary>
    public const string GatesKey = "diffora_gates";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>LoRA init: <c>true</c> (A Kaiming-uniform, B = 0), <c>false</c> or <c>"gaussian"</c>; residual inits are refused.</summary>
    [JsonPropertyName("init_lora_weights")]
    public InitLoraWeights InitLoraWeights { get; init; } = InitLoraWeights.Default;

    /// <summary>
    /// ρ: the share of candidates kept at discretisation (default 0.5). With <see cref="BudgetUnit"/> <c>modules</c>,
    /// K = max(1, round(ρ·N)) modules; with <c>parameters</c>, the longest prefix of the γ ranking whose LoRA parameters
    /// fit in ρ × (the LoRA parameters of all candidates).
    /// </summary>
    [JsonPropertyName("selection_ratio")]
    public double SelectionRatio { get; init; } = 0.5;

    /// <summary>What <see cref="SelectionRatio"/> counts: <c>modules</c> (default) or <c>parameters</c>.</summary>
    [JsonPropertyName("budget_unit")]
    public string BudgetUnit { get; init; } = "modules";

    /// <summary>Optimizer steps of the continuous search; the matrix is discretised after this many steps (default 20).</summary>
    [JsonPropertyName("search_steps")]
    public int SearchSteps { get; init; } = 20;

    /// <summary>Learning rate of the architecture logits relative to the scheduled one (their own AdamW, no decay; default 10).</summary>
    [JsonPropertyName("arch_lr_scale")]
    public double ArchLearningRateScale { get; init; } = 10;

    /// <summary>Initial logit ω of every candidate (default 0: γ = 0.5).</summary>
    [JsonPropertyName("gate_init")]
    public double GateInit { get; init; }

    public override void Validate()
    {
        base.Validate();
        if (InitLoraWeights.Method is not (null or "gaussian"))
        {
            throw new ConfigException($"init_lora_weights must be true, false or \"gaussian\" for DiffoRA, got \"{InitLoraWeights.Method}\"");
        }
        if (!(SelectionRatio > 0 && SelectionRatio <= 1))
        {
            throw new ConfigException($"selection_ratio must be in (0, 1], got {SelectionRatio}");
        }
        if (BudgetUnit is not ("modules" or "parameters"))
        {
            throw new ConfigException($"budget_unit must be \"modules\" or \"parameters\", got \"{BudgetUnit}\"");
        }
        if (SearchSteps < 1)
        {
            throw new ConfigException($"search_steps must be >= 1, got {SearchSteps}");
        }
        if (!(ArchLearningRateScale >= 0) || double.IsInfinity(ArchLearningRateScale))
        {
            throw new ConfigException($"arch_lr_scale must be >= 0, got {ArchLearningRateScale}");
        }
        if (!double.IsFinite(GateInit))
        {
            throw new ConfigException($"gate_init must be finite, got {GateInit}");
        }
    }

    /// <summary>The LoRA every candidate carries (same keys), before discretisation narrows the targets.</summary>
    internal LoraConfig ToLora(TargetModules targets) => new()
    {
        TargetModules = targets,
        ModulesToSave = ModulesToSave,
        BaseModelNameOrPath = BaseModelNameOrPath,
        Revision = Revision,
        TaskType = TaskType,
        InferenceMode = InferenceMode,
        Rank = Rank,
        Alpha = Alpha,
        Dropout = Dropout,
        UseRsLora = UseRsLora,
        InitLoraWeights = InitLoraWeights,
    };
}
