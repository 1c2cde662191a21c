using PeftSharp.Training;

namespace PeftSharp.Tests.Training;

/// <summary>Learning-rate schedules against transformers' lr_lambda values (warm-up 2, total 10), computed by hand.</summary>
public class ScheduleTests
{
    private static readonly double[] s_linear = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0];
    private static readonly double[] s_cosine =
        [0.0, 0.5, 1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.30865828381745514, 0.14644660940672627, 0.03806023374435663, 0.0];

    [Fact]
    public void Linear_with_warmup_matches_transformers()
    {
        var s = new LearningRateSchedule { Kind = ScheduleKind.Linear, PeakLearningRate = 2e-3, WarmupSteps = 2, TotalSteps = 10 };
        for (var step = 0; step < s_linear.Length; step++)
        {
            Assert.Equal(s_linear[step], s.Multiplier(step), 12);
            Assert.Equal(2e-3 * s_linear[step], s.LearningRate(step), 15);
        }
    }

    [Fact]
    public void Cosine_with_warmup_matches_transformers()
    {
        var s = new LearningRateSchedule { Kind = ScheduleKind.Cosine, PeakLearningRate = 1, WarmupSteps = 2, TotalSteps = 10 };
        for (var step = 0; step < s_cosine.Length; step++)
        {
            Assert.Equal(s_cosine[step], s.LearningRate(step), 12);
        }
    }

    [Fact]
    public void Constant_with_warmup_ramps_then_holds()
    {
        var s = new LearningRateSchedule { Kind = ScheduleKind.Constant, PeakLearningRate = 0.5, WarmupSteps = 4 };
        Assert.Equal([0.0, 0.125, 0.25, 0.375, 0.5, 0.5, 0.5], Enumerable.Range(0, 7).Select(i => s.LearningRate(i)));
        Assert.Equal(0.3, LearningRateSchedule.Constant(0.3).LearningRate(0));
    }

    [Fact]
    public void Decaying_schedule_without_total_steps_is_rejected()
    {
        var e = Assert.Throws<ConfigException>(() => new LearningRateSchedule { Kind = ScheduleKind.Cosine }.Validate());
        Assert.Contains("TotalSteps", e.Message);
    }
}
