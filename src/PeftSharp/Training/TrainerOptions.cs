using PeftSharp.Training.Optim;

namespace PeftSharp.Training;

/// <summary>Runs an evaluation at a given number of completed steps.</summary>
public delegate EvaluationResult Evaluate(long step);

/// <summary>How a <see cref="Trainer"/> runs. Defaults follow transformers' Trainer where it has one.</summary>
public sealed record TrainerOptions
{
    /// <summary>Optimizer steps to run in total (a resumed run continues up to the same number).</summary>
    public long MaxSteps { get; init; } = 100;

    /// <summary>Micro-batches per optimizer step; each micro-batch loss is scaled by 1/N before backward.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Global L2 norm the gradients are clipped to (torch's <c>clip_grad_norm_</c>); null turns clipping off. Default 1.0.</summary>
    public double? MaxGradNorm { get; init; } = 1.0;

    /// <summary>The learning rate per step.</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant(1e-4);

    /// <summary>Builds the optimizer over the trainable parameters the methods' hooks did not claim. Default: AdamW (torch defaults).</summary>
    public Func<IReadOnlyList<NamedParameter>, TrainingOptimizer>? Optimizer { get; init; }

    /// <summary>Seeds torch's default generator (dropout, inits) and the data shuffling.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Shuffle an indexable dataset every epoch.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>After this many NaN/Inf steps in a row training stops with a <see cref="PeftException"/>.</summary>
    public int MaxConsecutiveBadSteps { get; init; } = 5;

    /// <summary>Steps per metrics.jsonl line and <see cref="MetricsLogged"/> event.</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Evaluate every N steps (0: only before the first and after the last step, when an evaluation is configured).</summary>
    public int EvalEvery { get; init; }

    /// <summary>Write a checkpoint every N steps (0: none). Needs <see cref="OutputDirectory"/>.</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>How many of the most recent checkpoints to keep; the best by eval loss is kept as well.</summary>
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Folder for metrics.jsonl, summary.json and checkpoint-N folders; null writes nothing.</summary>
    public string? OutputDirectory { get; init; }

    /// <summary>Evaluation data: the default evaluation is its mean loss and perplexity.</summary>
    public IBatchDataset? EvalData { get; init; }

    /// <summary>A custom evaluation replacing the default one (accuracy, exact match, …).</summary>
    public Evaluate? Evaluate { get; init; }

    /// <summary>Evaluate before the first step, for the summary's <c>before</c>.</summary>
    public bool EvaluateBeforeTraining { get; init; } = true;

    /// <summary>Hooks in addition to those the model's layers and methods provide.</summary>
    public IReadOnlyList<ITrainingHooks> Hooks { get; init; } = [];

    /// <summary>Receives <see cref="TrainingEvent"/>s (synchronously, on the training thread).</summary>
    public IProgress<TrainingEvent>? Progress { get; init; }

    /// <summary>The summary's <c>task</c>.</summary>
    public string Task { get; init; } = "train";

    /// <summary>The summary's <c>metric</c>: <c>loss</c> or a key of <see cref="EvaluationResult.Metrics"/>.</summary>
    public string Metric { get; init; } = "loss";

    public void Validate()
    {
        if (MaxSteps < 0 || GradientAccumulationSteps < 1 || MaxConsecutiveBadSteps < 1 || LogEvery < 1 || EvalEvery < 0 || CheckpointEvery < 0 || KeepCheckpoints < 1)
        {
            throw new ConfigException(
                $"trainer options out of range: max_steps={MaxSteps} (>= 0), gradient_accumulation_steps={GradientAccumulationSteps} (>= 1), " +
                $"max_consecutive_bad_steps={MaxConsecutiveBadSteps} (>= 1), log_every={LogEvery} (>= 1), eval_every={EvalEvery} (>= 0), " +
                $"checkpoint_every={CheckpointEvery} (>= 0), keep_checkpoints={KeepCheckpoints} (>= 1)");
        }
        if (MaxGradNorm is <= 0)
        {
            throw new ConfigException($"max_grad_norm must be > 0 or unset, got {MaxGradNorm}");
        }
        if (CheckpointEvery > 0 && OutputDirectory is null)
        {
            throw new ConfigException("checkpoint_every needs an output directory");
        }
        Schedule.Validate();
    }
}
