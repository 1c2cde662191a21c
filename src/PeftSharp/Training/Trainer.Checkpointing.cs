using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Training;

public sealed partial class Trainer
{
    private const string RngKey = "torch_cpu";

    private static readonly JsonSerializerOptions s_stateJson = new()
    {
        WriteIndented = true,
        // A skipped step's loss is NaN; JSON has no literal for it.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// Writes <c>checkpoint-&lt;step&gt;</c> under <see cref="TrainerOptions.OutputDirectory"/> atomically: the active adapters as
    /// PEFT files (<c>adapter/</c>), every trainable tensor by name, the optimizer state, torch's CPU generator state, and
    /// trainer_state.json (step, seed, data position, history, metrics lines, hook states). Then prunes old checkpoints,
    /// keeping the newest <see cref="TrainerOptions.KeepCheckpoints"/> and the best by eval loss.
    /// </summary>
    public string SaveCheckpoint()
    {
        var output = _options.OutputDirectory ?? throw new PeftException("SaveCheckpoint needs TrainerOptions.OutputDirectory");
        var evalLoss = _lastEvalStep == Step ? _lastEval?.Loss : null;
        if (evalLoss is { } l && double.IsFinite(l) && (_best is null || l < _best.Value.Loss))
        {
            _best = (Step, l);
        }
        var dir = Checkpoints.Write(output, Step, temp =>
        {
            using var scope = torch.NewDisposeScope();
            var active = _model.ActiveAdapters.ToArray();
            if (active.Length > 0)
            {
                PeftAdapterFiles.Save(_model, Path.Combine(temp, Checkpoints.AdapterFolder), active);
            }
            SafetensorsWriter.Save(Path.Combine(temp, Checkpoints.TrainableFile),
                _trainable.Select(p => new KeyValuePair<string, Tensor>(p.Name, p.Parameter)));
            Optimizer.Save(Path.Combine(temp, Checkpoints.OptimizerFile));
            SafetensorsWriter.Save(Path.Combine(temp, Checkpoints.RngFile),
                [new KeyValuePair<string, Tensor>(RngKey, torch.get_rng_state())]);
            AtomicFile.WriteAllText(Path.Combine(temp, Checkpoints.StateFile), JsonSerializer.Serialize(CaptureState(), s_stateJson));
        });
        Checkpoints.Prune(output, _options.KeepCheckpoints, _best?.Step);
        _options.Progress?.Report(new CheckpointSaved(Step, dir));
        return dir;
    }

    /// <summary>
    /// Continues from a checkpoint written by <see cref="SaveCheckpoint"/>, before any step has run: restores hook states,
    /// the trainable tensors, the optimizer state, torch's generator, the data position, the step and the history, and
    /// rewrites metrics.jsonl to the checkpoint's lines. The following steps then reproduce an uninterrupted run exactly.
    /// Names and shapes of the trainable tensors are checked before any is copied; a mismatch (here or in the optimizer
    /// state) throws <see cref="ModelMismatchException"/>, after which this trainer (and any structure its hooks
    /// restored) should be discarded.
    /// </summary>
    public void Resume(string checkpointDirectory)
    {
        if (_started || Step != 0)
        {
            throw new PeftException("Resume must be called on a fresh trainer, before any step");
        }
        var statePath = Path.Combine(checkpointDirectory, Checkpoints.StateFile);
        if (!File.Exists(statePath))
        {
            throw new PeftException($"{checkpointDirectory}: not a checkpoint (no {Checkpoints.StateFile})");
        }
        var state = JsonFiles.ReadObject(statePath).Deserialize<CheckpointState>(s_stateJson)
            ?? throw new ConfigException($"{statePath}: empty trainer state");
        if (state.Seed != _options.Seed)
        {
            throw new ConfigException($"{statePath}: the checkpoint was trained with seed {state.Seed}, but TrainerOptions.Seed is {_options.Seed}; resume with the same seed");
        }

        foreach (var h in _hooks.OfType<ICheckpointedHooks>())
        {
            if (state.Hooks.TryGetValue(h.StateName, out var hookState) && hookState is not null)
            {
                ApplyChanges(h.RestoreState(hookState));
            }
        }
        _trainable = TrainableParameters();

        using var scope = torch.NewDisposeScope();
        LoadTrainable(Path.Combine(checkpointDirectory, Checkpoints.TrainableFile));
        Optimizer.Load(Path.Combine(checkpointDirectory, Checkpoints.OptimizerFile));
        using (var rng = SafetensorsFile.Open(Path.Combine(checkpointDirectory, Checkpoints.RngFile)))
        {
            torch.set_rng_state(rng.Read(RngKey));
        }
        _data.Seek(new DataPosition(state.DataEpoch, state.DataIndex));

        Step = state.Step;
        _history.Clear();
        _history.AddRange(state.History);
        _log.Clear();
        _log.AddRange(state.Log.Select(l => (JsonObject)l.DeepClone()));
        _metrics?.Rewrite(_log);
        _elapsedBefore = state.ElapsedSeconds;
        _tokens = state.Tokens;
        _badSteps = state.ConsecutiveBadSteps;
        _interval = new Interval(state.IntervalLossSum, state.IntervalGoodSteps, state.IntervalTokens, state.IntervalStartSeconds);
        _best = state.BestStep is { } bs && state.BestLoss is { } bl ? (bs, bl) : null;
        _before = state.Before is { } b ? new EvaluationResult(b.Loss, b.Metrics) : null;
        _started = true;
        _model.Model.train();
        _options.Progress?.Report(new TrainingResumed(Step, checkpointDirectory));
    }

    private void LoadTrainable(string path)
    {
        using var file = SafetensorsFile.Open(path);
        var expected = _trainable.ToDictionary(p => p.Name, p => p.Parameter, StringComparer.Ordinal);
        var names = file.Entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        if (expected.Keys.FirstOrDefault(k => !names.Contains(k)) is { } missing)
        {
            throw new ModelMismatchException($"{path}: no tensor for trainable parameter '{missing}' (the checkpoint was made with another adapter setup)");
        }
        if (names.FirstOrDefault(n => !expected.ContainsKey(n)) is { } extra)
        {
            throw new ModelMismatchException($"{path}: tensor '{extra}' is not a trainable parameter of this model");
        }
        foreach (var (name, p) in expected)
        {
            if (!file[name].Shape.SequenceEqual(p.shape))
            {
                throw new ModelMismatchException($"{path}: '{name}' is [{string.Join(", ", file[name].Shape)}] but the parameter is [{string.Join(", ", p.shape)}]");
            }
        }
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in expected)
        {
            using var t = file.Read(name, p.dtype, p.device);
            p.copy_(t);
        }
    }

    private CheckpointState CaptureState() => new()
    {
        Step = Step,
        Seed = _options.Seed,
        DataEpoch = _data.Position.Epoch,
        DataIndex = _data.Position.Index,
        ElapsedSeconds = ElapsedSeconds,
        Tokens = _tokens,
        ConsecutiveBadSteps = _badSteps,
        IntervalLossSum = _interval.LossSum,
        IntervalGoodSteps = _interval.GoodSteps,
        IntervalTokens = _interval.Tokens,
        IntervalStartSeconds = _interval.StartSeconds,
        BestStep = _best?.Step,
        BestLoss = _best?.Loss,
        Before = _before is null ? null : new SavedEvaluation(_before.Loss, new Dictionary<string, double>(_before.Metrics)),
        History = [.. _history],
        Log = [.. _log.Select(l => (JsonObject)l.DeepClone())],
        Hooks = _hooks.OfType<ICheckpointedHooks>().ToDictionary(h => h.StateName, h => (JsonNode?)h.SaveState()),
    };

    /// <summary>trainer_state.json. Doubles are written round-trippable, so losses survive bit for bit.</summary>
    private sealed record CheckpointState
    {
        [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = 1;
        [JsonPropertyName("step")] public long Step { get; init; }
        [JsonPropertyName("seed")] public int Seed { get; init; }
        [JsonPropertyName("data_epoch")] public int DataEpoch { get; init; }
        [JsonPropertyName("data_index")] public long DataIndex { get; init; }
        [JsonPropertyName("elapsed_seconds")] public double ElapsedSeconds { get; init; }
        [JsonPropertyName("tokens")] public long Tokens { get; init; }
        [JsonPropertyName("consecutive_bad_steps")] public int ConsecutiveBadSteps { get; init; }
        [JsonPropertyName("interval_loss_sum")] public double IntervalLossSum { get; init; }
        [JsonPropertyName("interval_good_steps")] public int IntervalGoodSteps { get; init; }
        [JsonPropertyName("interval_tokens")] public long IntervalTokens { get; init; }
        [JsonPropertyName("interval_start_seconds")] public double IntervalStartSeconds { get; init; }
        [JsonPropertyName("best_step")] public long? BestStep { get; init; }
        [JsonPropertyName("best_eval_loss")] public double? BestLoss { get; init; }
        [JsonPropertyName("before")] public SavedEvaluation? Before { get; init; }
        [JsonPropertyName("history")] public List<StepRecord> History { get; init; } = [];
        [JsonPropertyName("log")] public List<JsonObject> Log { get; init; } = [];
        [JsonPropertyName("hooks")] public Dictionary<string, JsonNode?> Hooks { get; init; } = [];
    }

    private sealed record SavedEvaluation(
        [property: JsonPropertyName("loss")] double? Loss,
        [property: JsonPropertyName("metrics")] Dictionary<string, double> Metrics);
}
