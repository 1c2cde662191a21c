namespace PeftSharp.Training;

/// <summary>
/// What the trainer reports through <see cref="TrainerOptions.Progress"/> (an <see cref="IProgress{T}"/>); a console or
/// UI renders these. <see cref="Step"/> is the number of optimizer steps completed when the event is raised.
/// </summary>
public abstract record TrainingEvent(long Step);

/// <summary>One optimizer step finished. <paramref name="Loss"/> is the mean over its micro-batches.</summary>
public sealed record StepCompleted(long Step, double Loss, double LearningRate, double GradNorm, long Tokens, double ElapsedSeconds) : TrainingEvent(Step);

/// <summary>
/// A logging interval finished (every <see cref="TrainerOptions.LogEvery"/> steps): the line written to metrics.jsonl.
/// <paramref name="Loss"/> is the mean over the good steps of the interval.
/// </summary>
public sealed record MetricsLogged(long Step, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, double ElapsedSeconds) : TrainingEvent(Step);

/// <summary>A step's loss or gradients were NaN/Inf: no update was made. <paramref name="ConsecutiveBadSteps"/> counts this one.</summary>
public sealed record StepSkipped(long Step, string Reason, int ConsecutiveBadSteps) : TrainingEvent(Step);

/// <summary>An evaluation ran.</summary>
public sealed record EvaluationCompleted(long Step, EvaluationResult Result) : TrainingEvent(Step);

/// <summary>A checkpoint was written (atomically) to <paramref name="Directory"/>.</summary>
public sealed record CheckpointSaved(long Step, string Directory) : TrainingEvent(Step);

/// <summary>Training resumed from <paramref name="Directory"/> after <paramref name="Step"/> steps.</summary>
public sealed record TrainingResumed(long Step, string Directory) : TrainingEvent(Step);

/// <summary>The run reached its last step.</summary>
public sealed record TrainingFinished(long Step, TrainingSummary Summary) : TrainingEvent(Step);

/// <summary>
/// The result of one evaluation: the mean loss (null if not computed) and named metrics (<c>perplexity</c>,
/// <c>accuracy</c>, <c>macro_f1</c>, <c>exact_match</c>, …).
/// </summary>
public sealed record EvaluationResult(double? Loss, IReadOnlyDictionary<string, double> Metrics)
{
    public static EvaluationResult Empty { get; } = new(null, new Dictionary<string, double>());
}
