using System.Diagnostics;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Training;

/// <summary>One optimizer step as recorded: <paramref name="Step"/> counts completed steps (1 for the first).</summary>
public sealed record StepRecord(long Step, double Loss, double LearningRate, double GradNorm, long Tokens, bool Skipped);

/// <summary>What <see cref="Trainer.Train"/> returns.</summary>
public sealed record TrainingResult(IReadOnlyList<StepRecord> Steps, EvaluationResult? Before, EvaluationResult? After, TrainingSummary Summary);

/// <summary>
/// Trains the active adapters of a <see cref="PeftModel"/> (every parameter with <c>requires_grad</c>), one readable
/// step at a time (<see cref="TrainStep"/>, in the spirit of nanoGPT's train.py), with gradient accumulation, NaN/Inf
/// skipping, clipping, the methods' hooks, a learning-rate schedule, evaluation, metrics and exact-resume checkpoints.
/// </summary>
public sealed partial class Trainer : IDisposable
{
    private readonly PeftModel _model;
    private readonly BatchLoss _loss;
    private readonly TrainingData _data;
    private readonly TrainerOptions _options;
    private readonly List<ITrainingHooks> _hooks;
    private readonly List<IAuxiliaryLoss> _auxiliary;
    private readonly List<StepRecord> _history = [];
    private readonly List<JsonObject> _log = [];
    private readonly MetricsLog? _metrics;
    private readonly Stopwatch _clock = new();
    private List<NamedParameter> _trainable;
    private bool _started;
    private int _badSteps;
    private double _elapsedBefore;
    private long _tokens;
    private Interval _interval = new(0, 0, 0, 0);
    private EvaluationResult? _before;
    private EvaluationResult? _lastEval;
    private long _lastEvalStep = -1;
    private (long Step, double Loss)? _best;

    /// <summary>
    /// Prepares training: seeds torch's generator and the data order with <see cref="TrainerOptions.Seed"/>, collects the
    /// hooks (adapter layers, method descriptors, options) and builds the optimizer (the hooks' own first, the
    /// default for the rest). <paramref name="loss"/> runs the forward and returns the batch's mean loss.
    /// </summary>
    public Trainer(PeftModel model, BatchLoss loss, TrainingData data, TrainerOptions? options = null)
    {
        _model = model;
        _loss = loss;
        _data = data;
        _options = options ?? new TrainerOptions();
        _options.Validate();
        _hooks = CollectHooks(model, _options.Hooks);
        _auxiliary = [.. _hooks.OfType<IAuxiliaryLoss>()];
        _trainable = TrainableParameters();
        if (_trainable.Count == 0)
        {
            throw new PeftException("the model has no trainable parameters (is an adapter active and the model not in inference mode?)");
        }
        Optimizer = BuildOptimizer();
        torch.manual_seed(_options.Seed);
        _data.Start(_options.Seed);
        if (_options.OutputDirectory is { } output)
        {
            _metrics = new MetricsLog(Path.Combine(output, MetricsLog.FileName));
        }
    }

    /// <summary>Optimizer steps completed (also the 0-based index of the next step).</summary>
    public long Step { get; private set; }

    public TrainingOptimizer Optimizer { get; private set; }

    /// <summary>The hooks in the order they run.</summary>
    public IReadOnlyList<ITrainingHooks> Hooks => _hooks;

    /// <summary>Every step so far (including those before a resume).</summary>
    public IReadOnlyList<StepRecord> History => _history;

    /// <summary>The parameters being trained, by PEFT name.</summary>
    public IReadOnlyList<NamedParameter> Trainable => _trainable;

    /// <summary>Runs steps until <see cref="TrainerOptions.MaxSteps"/>, evaluating, logging and checkpointing as configured.</summary>
    public TrainingResult Train()
    {
        if (Step == 0 && _before is null && _options.EvaluateBeforeTraining && HasEvaluation)
        {
            _before = RunEvaluation();
        }
        while (Step < _options.MaxSteps)
        {
            TrainStep();
            AfterStep();
        }
        if (HasEvaluation && _lastEvalStep != Step)
        {
            RunEvaluation();
        }
        var summary = Summary();
        if (_options.OutputDirectory is { } output)
        {
            summary.Save(Path.Combine(output, "summary.json"));
        }
        _options.Progress?.Report(new TrainingFinished(Step, summary));
        return new TrainingResult(_history, _before, _lastEval, summary);
    }

    /// <summary>
    /// One optimizer step, top to bottom. Everything it allocates lives in one dispose scope, so the live tensor count
    /// stays flat from step to step.
    /// </summary>
    public StepRecord TrainStep()
    {
        Start();
        _clock.Start();
        var info = new TrainingStep(Step, _options.Schedule.LearningRate(Step), _options.Seed);
        var accumulation = _options.GradientAccumulationSteps;
        using var scope = torch.NewDisposeScope();

        foreach (var h in _hooks)
        {
            h.OnStepBegin(info);
        }

        // Forward/backward over the micro-batches; gradients add up, so each loss is scaled by 1/N.
        double lossSum = 0;
        long tokens = 0;
        for (var micro = 0; micro < accumulation; micro++)
        {
            using var microScope = torch.NewDisposeScope();
            var batch = _data.Next();
            tokens += batch.TokenCount();
            var loss = ForwardLoss(batch);
            lossSum += loss.to_type(ScalarType.Float64).item<double>();
            (accumulation == 1 ? loss : loss / accumulation).backward();
        }
        var meanLoss = lossSum / accumulation;

        // A NaN/Inf loss or gradient skips the update; the norm is NaN/Inf exactly when some gradient is.
        var withGrad = _trainable.Where(p => p.Parameter.grad is not null).ToList();
        var gradNorm = Gradients.GlobalNorm(withGrad);
        if (BadStep(info, meanLoss, gradNorm, tokens, "") is { } skipped)
        {
            return skipped;
        }

        if (_hooks.Count > 0)
        {
            foreach (var h in _hooks)
            {
                h.PreStep(info, withGrad);
            }
            gradNorm = Gradients.GlobalNorm(withGrad);
            if (BadStep(info, meanLoss, gradNorm, tokens, " after the PreStep hooks") is { } skippedAfterHooks)
            {
                return skippedAfterHooks;
            }
        }
        _badSteps = 0;

        if (_options.MaxGradNorm is { } maxNorm)
        {
            Gradients.ClipByGlobalNorm(withGrad, maxNorm);
        }
        Optimizer.Step(info.LearningRate);
        foreach (var h in _hooks)
        {
            h.PostStep(info);
        }
        ZeroGrad();

        // Structural changes come last, on clean gradients; the optimizer state follows the replaced parameters.
        var changed = false;
        foreach (var h in _hooks)
        {
            var changes = h.OnSchedule(info, Optimizer);
            ApplyChanges(changes);
            changed |= changes.Count > 0;
        }
        if (changed)
        {
            _trainable = TrainableParameters();
        }
        return Record(new StepRecord(Step + 1, meanLoss, info.LearningRate, gradNorm, tokens, Skipped: false));
    }

    // The batch's loss plus the auxiliary terms of the hooks that add one (the logged loss is this sum: what is optimised).
    private Tensor ForwardLoss(Batch batch)
    {
        if (_auxiliary.Count == 0)
        {
            return _loss(batch);
        }
        foreach (var a in _auxiliary)
        {
            a.BeginForward(batch);
        }
        var loss = _loss(batch);
        foreach (var a in _auxiliary)
        {
            if (a.EndForward(batch) is { } term)
            {
                loss = loss + term;
            }
        }
        return loss;
    }

    private bool HasEvaluation => _options.Evaluate is not null || _options.EvalData is not null;

    private StepRecord? BadStep(TrainingStep info, double loss, double gradNorm, long tokens, string where)
    {
        if (double.IsFinite(loss) && double.IsFinite(gradNorm))
        {
            return null;
        }
        ZeroGrad();
        _badSteps++;
        var reason = !double.IsFinite(loss) ? $"loss is {loss}" : $"gradient norm is {gradNorm}{where}";
        _options.Progress?.Report(new StepSkipped(info.Step + 1, reason, _badSteps));
        var record = Record(new StepRecord(info.Step + 1, loss, info.LearningRate, gradNorm, tokens, Skipped: true));
        if (_badSteps >= _options.MaxConsecutiveBadSteps)
        {
            var last = _options.OutputDirectory is { } o ? Checkpoints.Latest(o) : null;
            throw new PeftException(
                $"training stopped: {_badSteps} consecutive steps had a NaN/Inf loss or gradient (last: step {info.Step + 1}, {reason}); " +
                (last is null ? "no checkpoint was written" : $"the last good checkpoint is {last}") +
                ". Lower the learning rate or check the data.");
        }
        return record;
    }

    private StepRecord Record(StepRecord record)
    {
        _clock.Stop();
        Step = record.Step;
        _history.Add(record);
        _tokens += record.Tokens;
        _interval = record.Skipped
            ? _interval with { Tokens = _interval.Tokens + record.Tokens }
            : new Interval(_interval.LossSum + record.Loss, _interval.GoodSteps + 1, _interval.Tokens + record.Tokens, _interval.StartSeconds);
        if (!record.Skipped)
        {
            _options.Progress?.Report(new StepCompleted(record.Step, record.Loss, record.LearningRate, record.GradNorm, record.Tokens, ElapsedSeconds));
        }
        return record;
    }

    private void AfterStep()
    {
        if (Step % _options.LogEvery == 0)
        {
            LogInterval();
        }
        if (_options.EvalEvery > 0 && Step % _options.EvalEvery == 0 && HasEvaluation)
        {
            RunEvaluation();
        }
        // No checkpoint inside a run of bad steps: the last one written stays the last good one.
        if (_options.CheckpointEvery > 0 && Step % _options.CheckpointEvery == 0 && _badSteps == 0)
        {
            SaveCheckpoint();
        }
        // The last step is logged even off the interval, after any checkpoint of this step, so that a run resumed
        // from that checkpoint logs exactly what an uninterrupted run logs.
        if (Step == _options.MaxSteps && Step % _options.LogEvery != 0)
        {
            LogInterval();
        }
    }

    // First step of a fresh run: train mode, then the hooks' calibration. A resumed run was calibrated before its checkpoint.
    private void Start()
    {
        if (_started)
        {
            return;
        }
        _started = true;
        _model.Model.train();
        foreach (var h in _hooks)
        {
            using var scope = torch.NewDisposeScope();
            h.Calibrate(_data.InStorageOrder(), _loss);
            ZeroGrad();
        }
    }

    private void ZeroGrad()
    {
        Optimizer.ZeroGrad();
        foreach (var p in _trainable)
        {
            p.Parameter.grad = null;
        }
    }

    private void ApplyChanges(IReadOnlyList<ParameterChange> changes)
    {
        foreach (var c in changes)
        {
            // A Parameter made from a tensor created inside the step's dispose scope is owned by that scope in
            // TorchSharp 0.107 and would be disposed at the end of the step; the model owns it now.
            c.Replacement.DetachFromDisposeScope();
            Optimizer.RebuildState(c.Old, c.Replacement, c.Map);
        }
    }

    private double ElapsedSeconds => _elapsedBefore + _clock.Elapsed.TotalSeconds;

    private List<NamedParameter> TrainableParameters() =>
        [.. _model.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter))];

    private TrainingOptimizer BuildOptimizer()
    {
        var parts = new List<TrainingOptimizer>();
        var remaining = _trainable;
        foreach (var h in _hooks)
        {
            if (h.CustomOptimizer(remaining) is { } custom)
            {
                parts.Add(custom);
                remaining = [.. remaining.Where(p => !custom.Owns(p.Parameter))];
            }
        }
        if (remaining.Count > 0)
        {
            parts.Add(_options.Optimizer?.Invoke(remaining) ?? AdamWOptimizer.Create(remaining));
        }
        return parts.Count == 1 ? parts[0] : new CompositeOptimizer(parts);
    }

    private static List<ITrainingHooks> CollectHooks(PeftModel model, IReadOnlyList<ITrainingHooks> extra)
    {
        var hooks = new List<ITrainingHooks>();
        foreach (var (name, config) in model.Configs)
        {
            if (model.ActiveAdapters.Contains(name) && model.Registry.ForConfig(config) is ITrainingHooksProvider provider
                && provider.CreateHooks(model, name) is { } h)
            {
                hooks.Add(h);
            }
        }
        hooks.AddRange(model.AdapterLayers().Select(l => l.Layer).OfType<ITrainingHooks>());
        hooks.AddRange(extra);
        return hooks;
    }

    public void Dispose() => Optimizer.Dispose();

    /// <summary>Running sums of the current logging interval.</summary>
    private sealed record Interval(double LossSum, int GoodSteps, long Tokens, double StartSeconds);
}
