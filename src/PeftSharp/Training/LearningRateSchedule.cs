namespace PeftSharp.Training;

/// <summary>Shape of the learning-rate curve after warm-up.</summary>
public enum ScheduleKind
{
    /// <summary>transformers' <c>get_constant_schedule_with_warmup</c>.</summary>
    Constant,

    /// <summary>transformers' <c>get_linear_schedule_with_warmup</c>: linear decay to 0 at <see cref="LearningRateSchedule.TotalSteps"/>.</summary>
    Linear,

    /// <summary>transformers' <c>get_cosine_schedule_with_warmup</c>: half a cosine down to 0 (by default).</summary>
    Cosine,
}

/// <summary>
/// The learning rate as a pure function of the optimizer step (0-based: the lr used by the step that is about to run),
/// with a linear warm-up from 0, as transformers' <c>get_*_schedule_with_warmup</c> + torch's <c>LambdaLR</c>:
/// <c>lr(step) = PeakLearningRate · λ(step)</c>.
/// </summary>
public sealed record LearningRateSchedule
{
    public ScheduleKind Kind { get; init; } = ScheduleKind.Linear;

    /// <summary>The lr reached at the end of warm-up (the optimizer's base lr in torch terms).</summary>
    public double PeakLearningRate { get; init; } = 1e-4;

    /// <summary>Steps of linear warm-up from 0 to the peak; 0 starts at the peak.</summary>
    public long WarmupSteps { get; init; }

    /// <summary>Total optimizer steps of the run (the decay reaches 0 here); unused by <see cref="ScheduleKind.Constant"/>.</summary>
    public long TotalSteps { get; init; }

    /// <summary>Cosine cycles over the decay (transformers' <c>num_cycles</c>, default 0.5 = a half cosine to 0).</summary>
    public double NumCycles { get; init; } = 0.5;

    /// <summary>A constant lr with no warm-up.</summary>
    public static LearningRateSchedule Constant(double learningRate) => new() { Kind = ScheduleKind.Constant, PeakLearningRate = learningRate };

    /// <summary>The multiplier λ(step) in [0, 1].</summary>
    public double Multiplier(long step)
    {
        if (step < WarmupSteps)
        {
            return (double)step / Math.Max(1, WarmupSteps);
        }
        switch (Kind)
        {
            case ScheduleKind.Constant:
                return 1.0;
            case ScheduleKind.Linear:
                return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
            case ScheduleKind.Cosine:
                var progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * NumCycles * 2.0 * progress)));
            default:
                throw new PeftException($"unknown schedule kind {Kind}");
        }
    }

    /// <summary>The learning rate for optimizer step <paramref name="step"/> (0-based).</summary>
    public double LearningRate(long step) => PeakLearningRate * Multiplier(step);

    public void Validate()
    {
        if (PeakLearningRate < 0 || WarmupSteps < 0)
        {
            throw new ConfigException($"learning rate and warm-up steps must be >= 0, got lr={PeakLearningRate}, warmup={WarmupSteps}");
        }
        if (Kind != ScheduleKind.Constant && TotalSteps <= 0)
        {
            throw new ConfigException($"a {Kind} schedule needs TotalSteps > 0, got {TotalSteps}");
        }
    }
}
