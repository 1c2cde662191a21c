using System.Globalization;
using PeftSharp.Training;
using Spectre.Console;

namespace PeftSharp.Cli.Rendering;

/// <summary>
/// Shows training events: a live Spectre.Console progress bar (step, loss, lr, tokens/s, ETA) on a terminal, plain
/// lines otherwise (CI logs, pipes). Events arrive on the training thread.
/// </summary>
internal sealed class TrainingProgress : IProgress<TrainingEvent>
{
    private long _totalSteps;
    private readonly bool _interactive;
    private ProgressTask? _task;
    private double _lastTokensPerSecond;

    public TrainingProgress(long totalSteps, bool? interactive = null)
    {
        _totalSteps = totalSteps;
        _interactive = interactive ?? (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive);
    }

    /// <summary>Runs <paramref name="train"/> with the live display when interactive.</summary>
    public T Run<T>(Func<T> train)
    {
        if (!_interactive)
        {
            return train();
        }
        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                _task = ctx.AddTask("training", maxValue: Math.Max(1, _totalSteps));
                return train();
            });
    }

    public void Report(TrainingEvent value)
    {
        switch (value)
        {
            case PeftSharp.Training.Jobs.TrainingPlanned plan:
                _totalSteps = plan.TotalSteps;
                if (_task is not null)
                {
                    _task.MaxValue = Math.Max(1, plan.TotalSteps);
                }
                break;
            case StepCompleted s when _task is not null:
                _task.Value = s.Step;
                _task.Description = string.Create(CultureInfo.InvariantCulture,
                    $"step {s.Step}/{_totalSteps} loss {s.Loss:F4} lr {s.LearningRate:G3} {_lastTokensPerSecond:F0} tok/s");
                break;
            case MetricsLogged m:
                _lastTokensPerSecond = m.TokensPerSecond;
                if (_task is null)
                {
                    Line($"step {m.Step}/{_totalSteps}  loss {m.Loss:F4}  lr {m.LearningRate:G3}  grad_norm {m.GradNorm:F3}  {m.TokensPerSecond:F0} tok/s  {Eta(m)}");
                }
                break;
            case StepSkipped k:
                Line($"warning: step {k.Step} skipped ({k.Reason}); {k.ConsecutiveBadSteps} bad step(s) in a row");
                break;
            case EvaluationCompleted e:
                Line($"eval at step {e.Step}: " + string.Join("  ", Describe(e.Result)));
                break;
            case CheckpointSaved c:
                Line($"checkpoint at step {c.Step}: {c.Directory}");
                break;
            case TrainingResumed r:
                Line($"resumed at step {r.Step} from {r.Directory}");
                break;
        }
    }

    internal static IEnumerable<string> Describe(EvaluationResult r)
    {
        if (r.Loss is double l)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"loss {l:F4}");
        }
        foreach (var (k, v) in r.Metrics)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{k} {v:F4}");
        }
    }

    private string Eta(MetricsLogged m)
    {
        if (m.Step <= 0 || m.ElapsedSeconds <= 0)
        {
            return "";
        }
        var remaining = TimeSpan.FromSeconds(m.ElapsedSeconds / m.Step * Math.Max(0, _totalSteps - m.Step));
        return "ETA " + remaining.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture);
    }

    private void Line(string text)
    {
        if (_task is not null)
        {
            AnsiConsole.MarkupLine(Markup.Escape(text));
        }
        else
        {
            Console.WriteLine(text);
        }
    }
}
