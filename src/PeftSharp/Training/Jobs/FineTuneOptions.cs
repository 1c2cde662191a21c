using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace PeftSharp.Training.Jobs;

/// <summary>What a fine-tuning run learns from the data.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FineTuneTask>))]
public enum FineTuneTask
{
    /// <summary>Chosen from the data: labels → classification, instructions/chats → sft, plain text → lm.</summary>
    Auto,

    /// <summary>Sequence classification (a head in modules_to_save, loss on the class).</summary>
    Classification,

    /// <summary>Causal-LM supervised fine-tuning with prompt masking (loss on the response only).</summary>
    Sft,

    /// <summary>Plain-text language modelling (optionally packed).</summary>
    Lm,
}

/// <summary>
/// Everything a <c>peft train</c> run needs, with the keys of a <c>--config run.json</c> file (snake_case). Unset
/// paths fall back to the bundled default: LoRA on all-MiniLM-L6-v2 with a classification head on the UCI sentiment
/// sentences. The resolved options are saved next to the adapter as <c>run_config.json</c>.
/// </summary>
public sealed record FineTuneOptions
{
    [JsonPropertyName("model")] public string? Model { get; init; }

    [JsonPropertyName("data")] public string? Data { get; init; }

    /// <summary>A separate validation file; without one, <see cref="ValidationSplit"/> of the training file is held out.</summary>
    [JsonPropertyName("validation")] public string? Validation { get; init; }

    [JsonPropertyName("validation_split")] public double ValidationSplit { get; init; } = 0.1;

    [JsonPropertyName("task")] public FineTuneTask Task { get; init; } = FineTuneTask.Auto;

    /// <summary>Method or preset name (<c>lora</c>, <c>dora</c>, <c>vera</c>, …; <c>peft methods</c> lists them).</summary>
    [JsonPropertyName("method")] public string Method { get; init; } = "lora";

    [JsonPropertyName("r")] public int Rank { get; init; } = 8;

    [JsonPropertyName("lora_alpha")] public double Alpha { get; init; } = 16;

    [JsonPropertyName("lora_dropout")] public double Dropout { get; init; } = 0.05;

    /// <summary>Modules to adapt; null uses PEFT's defaults for the model type (q/v projections, GPT-2 c_attn, BERT query/value).</summary>
    [JsonPropertyName("target_modules")] public IReadOnlyList<string>? TargetModules { get; init; }

    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 1e-3;

    /// <summary><c>constant</c>, <c>linear</c> or <c>cosine</c>, each after a linear warm-up.</summary>
    [JsonPropertyName("lr_scheduler")] public string Scheduler { get; init; } = "linear";

    [JsonPropertyName("warmup_ratio")] public double WarmupRatio { get; init; } = 0.06;

    [JsonPropertyName("epochs")] public double Epochs { get; init; } = 3;

    /// <summary>Optimizer steps; overrides <see cref="Epochs"/> when set.</summary>
    [JsonPropertyName("max_steps")] public long? MaxSteps { get; init; }

    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 16;

    [JsonPropertyName("gradient_accumulation_steps")] public int GradientAccumulation { get; init; } = 1;

    [JsonPropertyName("max_length")] public int MaxLength { get; init; } = 128;

    /// <summary><c>adamw</c>, <c>sgd</c>, or <c>galore</c> (GaLore's AdamW with rank <see cref="Rank"/> on the Linear weights; for full fine-tuning).</summary>
    [JsonPropertyName("optimizer")] public string Optimizer { get; init; } = "adamw";

    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 0.01;

    [JsonPropertyName("max_grad_norm")] public double? MaxGradNorm { get; init; } = 1.0;

    [JsonPropertyName("seed")] public int Seed { get; init; } = 42;

    [JsonPropertyName("eval_every")] public int EvalEvery { get; init; }

    [JsonPropertyName("log_every")] public int LogEvery { get; init; } = 10;

    [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; }

    [JsonPropertyName("keep_checkpoints")] public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Run folder; default <c>runs/&lt;timestamp&gt;</c>.</summary>
    [JsonPropertyName("output")] public string? Output { get; init; }

    /// <summary>A checkpoint folder to continue from (same options; the loss sequence continues exactly).</summary>
    [JsonPropertyName("resume")] public string? Resume { get; init; }

    [JsonPropertyName("device")] public string Device { get; init; } = "cpu";

    [JsonPropertyName("gradient_checkpointing")] public bool GradientCheckpointing { get; init; }

    /// <summary>Skip malformed data rows (counted and reported) instead of failing on the first.</summary>
    [JsonPropertyName("skip_bad_rows")] public bool SkipBadRows { get; init; }

    /// <summary>Pack plain-text LM examples into full blocks.</summary>
    [JsonPropertyName("packing")] public bool Packing { get; init; }

    /// <summary>Validation examples shown with their predictions before and after training (classification).</summary>
    [JsonPropertyName("show_examples")] public int ShowExamples { get; init; } = 5;

    /// <summary>Train every weight (full fine-tuning) instead of an adapter: the baseline of docs/results.md.</summary>
    [JsonPropertyName("full_finetune")] public bool FullFineTune { get; init; }

    /// <summary>Train only the classification head (no adapter): the second baseline.</summary>
    [JsonPropertyName("head_only")] public bool HeadOnly { get; init; }

    /// <summary>
    /// Method-specific keys set on the adapter config by their PEFT JSON names, after the common knobs
    /// (e.g. <c>{"use_dora": true}</c>, SoRA's <c>{"sora_lambda": 0.1}</c>); CLI: <c>--method-option KEY=VALUE</c>.
    /// An unknown key is an error naming the method.
    /// </summary>
    [JsonPropertyName("method_options")] public IReadOnlyDictionary<string, JsonNode?>? MethodOptions { get; init; }

    /// <summary>
    /// A saved adapter folder (PEFT format) to continue training instead of a fresh adapter: its config (method, ranks,
    /// targets, modules_to_save) replaces method/r/lora_alpha/target_modules/method_options. Used by
    /// <c>peft compress --finetune-steps</c> (LoRA-Squeeze's short fine-tuning at the target rank).
    /// </summary>
    [JsonPropertyName("init_adapter")] public string? InitAdapter { get; init; }
}
