using System.Text.Json.Nodes;
using TorchSharp;

namespace PeftSharp.Training;

/// <summary>Evaluation, metrics lines and the run summary.</summary>
public sealed partial class Trainer
{
    /// <summary>Runs the configured evaluation (custom, or loss/perplexity on the eval data) now, in eval mode.</summary>
    public EvaluationResult Evaluate()
    {
        if (_options.Evaluate is { } custom)
        {
            return WithEvalMode(() => custom(Step));
        }
        if (_options.EvalData is { } evalData)
        {
            return WithEvalMode(() => Evaluation.Evaluator.Loss(evalData, _loss));
        }
        return EvaluationResult.Empty;
    }

    private void LogInterval()
    {
        var last = _history[^1];
        var seconds = ElapsedSeconds - _interval.StartSeconds;
        var logged = new MetricsLogged(Step,
            _interval.GoodSteps > 0 ? _interval.LossSum / _interval.GoodSteps : double.NaN,
            last.LearningRate, last.GradNorm, seconds > 0 ? _interval.Tokens / seconds : 0, ElapsedSeconds);
        AppendLog(MetricsLog.Line(logged));
        _options.Progress?.Report(logged);
        _interval = new Interval(0, 0, 0, ElapsedSeconds);
    }

    private EvaluationResult RunEvaluation()
    {
        var result = Evaluate();
        _lastEval = result;
        _lastEvalStep = Step;
        AppendLog(MetricsLog.Line(Step, result));
        _options.Progress?.Report(new EvaluationCompleted(Step, result));
        return result;
    }

    private T WithEvalMode<T>(Func<T> run)
    {
        var wasTraining = _model.Model.training;
        _model.Model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            return run();
        }
        finally
        {
            _model.Model.train(wasTraining);
        }
    }

    private void AppendLog(JsonObject line)
    {
        _log.Add(line);
        _metrics?.Append((JsonObject)line.DeepClone());
    }

    private TrainingSummary Summary()
    {
        var (trainable, total) = _model.ParameterCounts();
        var seconds = ElapsedSeconds;
        return new TrainingSummary
        {
            Task = _options.Task,
            Metric = _options.Metric,
            Before = MetricOf(_before),
            After = MetricOf(_lastEval),
            TrainableParameters = trainable,
            TotalParameters = total,
            Steps = Step,
            TrainSeconds = seconds,
            TokensPerSecond = seconds > 0 ? _tokens / seconds : 0,
            PeakMemoryBytes = TrainingSummary.MeasurePeakMemory(),
        };
    }

    private double? MetricOf(EvaluationResult? result) => result is null ? null
        : _options.Metric == "loss" ? result.Loss
        : result.Metrics.TryGetValue(_options.Metric, out var v) ? v : null;
}
