using PeftSharp.Core;
using PeftSharp.Data;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tokenization;
using PeftSharp.Training;
using PeftSharp.Training.Evaluation;
using PeftSharp.Training.Jobs;
using PeftSharp.Training.Optim;
using TorchSharp;

namespace PeftSharp.Federated;

/// <summary>The global model's held-out metrics after one round (round 0 = before any training) of one aggregation and seed.</summary>
/// <param name="Seed">The simulation's seed (split, head init, client inits, data order).</param>
/// <param name="Aggregation">stack, avg or zeropad.</param>
/// <param name="Round">1-based communication round; 0 is the model before training.</param>
/// <param name="Accuracy">Held-out accuracy of the global model.</param>
/// <param name="MacroF1">Held-out macro-F1.</param>
/// <param name="EvalLoss">Held-out mean cross-entropy.</param>
/// <param name="MeanClientLoss">Mean over clients of each one's last local training loss (null for round 0).</param>
/// <param name="AggregationError">‖ΔW_global − Σ p_k ΔW_k‖ / ‖Σ p_k ΔW_k‖ over all modules this round (<see cref="FederatedAggregation.AggregationError"/>; null for round 0).</param>
/// <param name="GlobalRank">Rank of the global adapter per module (Σr_k for stacking, the common or largest rank otherwise).</param>
/// <param name="UploadedParameters">LoRA factor entries all clients sent this round (dense heads not counted).</param>
/// <param name="DownloadedParameters">LoRA factor entries the server sends each client (the global factors).</param>
public sealed record RoundMetrics(int Seed, string Aggregation, int Round, double Accuracy, double MacroF1, double EvalLoss,
    double? MeanClientLoss, double? AggregationError, long GlobalRank, long UploadedParameters, long DownloadedParameters);

/// <summary>
/// What a simulation produced: every round's metrics, each seed's client shards, notes (skipped aggregations) and the
/// global adapters written with <see cref="FederatedOptions.SaveGlobal"/>.
/// </summary>
public sealed record FederatedResult(string OutputDirectory, IReadOnlyList<RoundMetrics> Rounds, IReadOnlyDictionary<int, IReadOnlyList<ClientShard>> Shards,
    IReadOnlyList<string> Notes, IReadOnlyList<string> ClassNames, IReadOnlyList<SavedGlobalAdapter> GlobalAdapters);

/// <summary>
/// The global model after the last round of one seed × aggregation, handed to <see cref="FederatedSimulation.Run"/>'s
/// observer in eval mode without gradients; both live only during the call (the simulation disposes them after).
/// <paramref name="Model"/> holds every merged update and the averaged head. Under <c>avg</c> FedIT's global adapter is
/// not merged: the global model is <paramref name="Model"/> plus <paramref name="UnmergedAdapter"/>'s ΔW. <paramref name="Saved"/>
/// is the adapter written for it, if any.
/// </summary>
public sealed record FinalGlobalModel(int Seed, AggregationKind Aggregation, PretrainedModel Model, GlobalUpdate? UnmergedAdapter, SavedGlobalAdapter? Saved);

/// <summary>
/// Runs federated LoRA fine-tuning on one machine, each client's data kept apart, with the round protocol of FLoRA's
/// code (ATP-1010/FederatedLLM <c>main.py</c>): every round each client injects a fresh LoRA of its own rank into the
/// current global model and trains it on its shard; the server aggregates and merges the result into the base weights
/// (<c>merge_and_unload</c>), and the next round starts from the merged model. Stacking and zero-padding follow this
/// protocol. FedIT averaging follows FedIT's: A and B are averaged into a global adapter that is not merged, and every
/// client starts the next round from it (round 1: one shared init). Dense weights (the classification head in
/// modules_to_save) are averaged with p_k under every aggregation. With <see cref="FederatedOptions.SaveGlobal"/> the
/// final global model is written as one PEFT LoRA adapter for the original base (<see cref="GlobalAdapter"/>): the sum of
/// every round's merged update (stack, zeropad) or FedIT's last global adapter (avg), with the averaged head.
/// </summary>
public static class FederatedSimulation
{
    private const string ClientAdapter = "client";

    /// <summary>Fills unset paths with the bundled defaults.</summary>
    public static FederatedOptions Resolve(FederatedOptions o)
    {
        var defaultData = o.Data is null;
        return o with
        {
            Model = Path.GetFullPath(o.Model ?? BundledAssets.Model(BundledAssets.MiniLmL6V2)),
            Data = Path.GetFullPath(o.Data ?? Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "train.jsonl")),
            Validation = o.Validation is not null ? Path.GetFullPath(o.Validation)
                : defaultData ? Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "test.jsonl") : null,
            Output = o.Output is null ? null : Path.GetFullPath(o.Output),
            SaveGlobal = o.SaveGlobal is null ? null : Path.GetFullPath(o.SaveGlobal),
        };
    }

    /// <summary>
    /// Runs every seed × aggregation and writes metrics.jsonl, results.md and split.json to the output folder (and the
    /// global adapters with <see cref="FederatedOptions.SaveGlobal"/>). <paramref name="onFinalModel"/> sees each final
    /// global model while it is alive.
    /// </summary>
    public static FederatedResult Run(FederatedOptions options, Action<string>? log = null, Action<FinalGlobalModel>? onFinalModel = null)
    {
        log ??= _ => { };
        var o = Resolve(options);
        o.Validate();
        var alpha = DirichletSplit.ParseSpec(o.Split);
        var device = torch.device(o.Device);
        var kinds = o.Aggregations.ToList();
        var notes = new List<string>();
        var heterogeneous = Enumerable.Range(0, o.Clients).Select(o.RankOf).Distinct().Count() > 1;
        if (heterogeneous && kinds.Contains(AggregationKind.Average))
        {
            if (kinds.Count == 1)
            {
                throw new ConfigException($"avg (FedIT) needs one rank for all clients, got ranks {string.Join(",", o.Ranks)}; use stack or zeropad for heterogeneous ranks");
            }
            kinds.Remove(AggregationKind.Average);
            notes.Add($"avg (FedIT) skipped: client ranks {string.Join(",", o.Ranks)} differ (FedIT needs one rank; zeropad is its heterogeneous form)");
            log(notes[^1]);
        }
        if (kinds.Where(k => o.GlobalRank > o.GlobalAdapterRank(k)).Select(k => (AggregationKind?)k).FirstOrDefault() is { } small)
        {
            throw new ConfigException($"--global-rank {o.GlobalRank} exceeds the rank {o.GlobalAdapterRank(small)} of the {small.Name()} global adapter; compression only lowers the rank");
        }

        var splits = o.Validation is not null
            ? DataSplits.FromFiles(o.Data!, o.Validation)
            : DataSplits.Split(DataReader.Read(o.Data!), 0.1, o.Seeds[0]);
        var labels = splits.Labels ?? throw new PeftException($"{o.Data}: federated simulation needs classification data (a 'label' column)");
        var tokenizer = HfTokenizer.FromFolder(o.Model!);
        var collator = Collator.For(tokenizer);
        var evalExamples = splits.Validation!.Examples.Take(o.MaxEvalExamples > 0 ? o.MaxEvalExamples : int.MaxValue).ToList();
        var evalLoader = new DataLoader(ClassificationEncoder.Encode(evalExamples, tokenizer, o.MaxLength).Examples, collator, device,
            new DataLoaderOptions { BatchSize = 64, Shuffle = false });
        Directory.CreateDirectory(o.Output!);

        var rows = new List<RoundMetrics>();
        var saved = new List<SavedGlobalAdapter>();
        var shardsBySeed = new Dictionary<int, IReadOnlyList<ClientShard>>();
        foreach (var seed in o.Seeds)
        {
            var clientData = DirichletSplit.Split(splits.Train, o.Clients, alpha, seed, out var shards);
            shardsBySeed[seed] = shards;
            log($"seed {seed}: client sizes {string.Join(", ", shards.Select(s => s.Indices.Count))}; labels per client {string.Join(" | ", shards.Select(s => string.Join("/", s.LabelCounts)))}");
            var loaders = clientData.Select((d, k) => new DataLoader(ClassificationEncoder.Encode(d.Examples, tokenizer, o.MaxLength).Examples, collator, device,
                new DataLoaderOptions { BatchSize = o.BatchSize, Shuffle = true, Seed = Mix(seed, 0, k) })).ToList();
            var sizes = shards.Select(s => (long)s.Indices.Count).ToList();
            foreach (var kind in kinds)
            {
                // One seed × aggregation writes into --save-global itself, several into <kind>-seed<seed> subfolders.
                var saveDir = o.SaveGlobal is null ? null : kinds.Count * o.Seeds.Count == 1 ? o.SaveGlobal : Path.Combine(o.SaveGlobal, $"{kind.Name()}-seed{seed}");
                var run = new Protocol(o, kind, seed, labels, loaders, sizes, evalLoader, device, log)
                {
                    SaveDirectory = saveDir,
                    OnSaved = saved.Add,
                    OnFinalModel = onFinalModel,
                };
                foreach (var row in run.Execute())
                {
                    rows.Add(row);
                    FederatedReport.WriteJsonl(Path.Combine(o.Output!, FederatedReport.MetricsFile), rows);
                }
            }
        }
        var result = new FederatedResult(o.Output!, rows, shardsBySeed, notes, labels.Names, saved);
        FederatedReport.WriteAll(o, result);
        return result;
    }

    // Deterministic per (seed, round, client) stream seeds; HashCode is randomised per process, so plain arithmetic.
    internal static int Mix(int seed, int round, int client) => unchecked((seed * 7919) + (round * 131) + client + 1);

    /// <summary>One seed × aggregation: loads the model fresh, then runs the rounds.</summary>
    private sealed class Protocol(FederatedOptions o, AggregationKind kind, int seed, ClassLabels labels, IReadOnlyList<DataLoader> loaders,
        IReadOnlyList<long> sizes, DataLoader evalLoader, torch.Device device, Action<string> log)
    {
        /// <summary>Where the final global adapter goes (null: not saved).</summary>
        public string? SaveDirectory { get; init; }

        public Action<SavedGlobalAdapter>? OnSaved { get; init; }

        public Action<FinalGlobalModel>? OnFinalModel { get; init; }

        public IEnumerable<RoundMetrics> Execute()
        {
            // The same seed gives every aggregation the same new classification head.
            torch.manual_seed(seed);
            using var model = FineTuneJob.LoadModel(o.Model!, FineTuneTask.Classification, labels, device);
            var targets = TargetModules.Of([.. o.TargetModules ?? FineTuneJob.DefaultTargets(model.Config.ModelType)]);
            var initial = Evaluate(model, null);
            yield return Row(0, initial, null, null, 0, 0, 0);
            GlobalUpdate? fedIt = null;
            // Every round's update merged into the base, kept while their sum is to be saved.
            var merged = new List<GlobalUpdate>();
            try
            {
                for (var round = 1; round <= o.Rounds; round++)
                {
                    var updates = new List<ClientUpdate>();
                    var losses = new List<double>();
                    try
                    {
                        for (var k = 0; k < loaders.Count; k++)
                        {
                            var (update, loss) = TrainClient(model, targets, round, k, fedIt);
                            updates.Add(update);
                            losses.Add(loss);
                        }
                        var global = FederatedAggregation.Aggregate(updates, kind);
                        var upload = updates.Sum(u => u.Modules.Values.Sum(f => f.A.numel() + f.B.numel()));
                        var download = global.Modules.Values.Sum(f => f.A.numel() + f.B.numel());
                        var rank = global.Modules.Values.Max(f => f.Rank);
                        var noise = FederatedAggregation.AggregationError(global, updates);
                        EvaluationResult eval;
                        if (kind == AggregationKind.Average)
                        {
                            global.MergeDenseInto(model);
                            fedIt?.Dispose();
                            fedIt = global;
                            eval = Evaluate(model, fedIt);
                        }
                        else
                        {
                            merged.Add(global);
                            global.MergeInto(model);
                            if (SaveDirectory is null)
                            {
                                merged.Remove(global);
                                global.Dispose();
                            }
                            eval = Evaluate(model, null);
                        }
                        var row = Row(round, eval, losses.Average(), noise, rank, upload, download);
                        log($"seed {seed} {kind.Name()} round {round}: accuracy {row.Accuracy:F4}, macro-F1 {row.MacroF1:F4}, eval loss {row.EvalLoss:F4}, client loss {row.MeanClientLoss:F4}, ΔW error {noise:E2}");
                        yield return row;
                    }
                    finally
                    {
                        foreach (var u in updates)
                        {
                            u.Dispose();
                        }
                    }
                }
                Finish(model, targets, fedIt, merged);
            }
            finally
            {
                fedIt?.Dispose();
                foreach (var g in merged)
                {
                    g.Dispose();
                }
            }
        }

        // Saves the final global adapter and shows the final global model to the observer.
        private void Finish(PretrainedModel model, TargetModules targets, GlobalUpdate? fedIt, List<GlobalUpdate> merged)
        {
            SavedGlobalAdapter? saved = null;
            if (SaveDirectory is not null)
            {
                using var total = kind == AggregationKind.Average ? null : GlobalAdapter.Concatenate(merged);
                var (rank, sourceRank, error) = GlobalAdapter.Save(model, total ?? fedIt!, ClientConfig(model, targets, 1), SaveDirectory, o.GlobalRank);
                saved = new SavedGlobalAdapter(seed, kind.Name(), SaveDirectory, rank, sourceRank, error);
                OnSaved?.Invoke(saved);
                log($"seed {seed} {kind.Name()}: global adapter (rank {rank}" + (rank != sourceRank ? $", compressed from {sourceRank}; ‖ΔW − ΔW_k‖_F = {error:E3}" : "") + $") saved to {SaveDirectory}");
            }
            if (OnFinalModel is { } observer)
            {
                WithGlobalModel(model, null, () =>
                {
                    observer(new FinalGlobalModel(seed, kind, model, fedIt, saved));
                    return 0;
                });
            }
        }

        private RoundMetrics Row(int round, EvaluationResult eval, double? clientLoss, double? noise, long rank, long upload, long download) =>
            new(seed, kind.Name(), round, eval.Metrics["accuracy"], eval.Metrics["macro_f1"], eval.Loss ?? double.NaN, clientLoss, noise, rank, upload, download);

        private (ClientUpdate Update, double Loss) TrainClient(PretrainedModel model, TargetModules targets, int round, int k, GlobalUpdate? fedIt)
        {
            var r = fedIt?.Modules.Values.First().Rank is { } g ? (int)g : o.RankOf(k);
            var config = ClientConfig(model, targets, r);
            // FedIT: all clients start from one adapter (round 1: one shared init); FLoRA and zero-padding: a fresh, own init per client.
            torch.manual_seed(kind == AggregationKind.Average ? Mix(seed, round, -1) : Mix(seed, round, k));
            var peft = PeftModel.Create(model, config, ClientAdapter);
            try
            {
                if (fedIt is not null)
                {
                    GlobalAdapter.CopyFactors(peft, ClientAdapter, fedIt);
                }
                var trainerOptions = new TrainerOptions
                {
                    MaxSteps = o.StepsPerClient,
                    Schedule = LearningRateSchedule.Constant(o.LearningRate),
                    Optimizer = p => AdamWOptimizer.Create(p, new AdamWOptions { WeightDecay = 0 }),
                    Seed = Mix(seed, round, k),
                    LogEvery = Math.Max(1, o.StepsPerClient),
                    EvaluateBeforeTraining = false,
                };
                using var trainer = new Trainer(peft, Objectives.For(model), TrainingData.FromDataset(loaders[k], shuffle: true), trainerOptions);
                var result = trainer.Train();
                var update = ClientUpdate.FromAdapter(peft, ClientAdapter, $"client{k}", sizes[k], o.Model!);
                return (update, result.Steps[^1].Loss);
            }
            finally
            {
                // Unload restores the base layers and the original head; the model itself lives on as the global model.
                peft.Unload();
            }
        }

        private LoraConfig ClientConfig(PretrainedModel model, TargetModules targets, int r) => new()
        {
            Rank = r,
            Alpha = o.LoraScale * r,
            Dropout = o.Dropout,
            TargetModules = targets,
            ModulesToSave = model.OutputHeadNames.Count > 0 ? model.OutputHeadNames : null,
            TaskType = "SEQ_CLS",
            BaseModelNameOrPath = o.Model,
        };

        private EvaluationResult Evaluate(PretrainedModel model, GlobalUpdate? adapter) =>
            WithGlobalModel(model, adapter, () => Evaluator.Classification(model, evalLoader));
    }

    // Runs body on the global model in eval mode without gradients: the model itself, plus FedIT's unmerged global
    // adapter when given (injected for the call, then unloaded).
    private static T WithGlobalModel<T>(PretrainedModel model, GlobalUpdate? adapter, Func<T> body)
    {
        var peft = adapter is null ? null : GlobalAdapter.Inject(model, adapter, new LoraConfig());
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            return body();
        }
        finally
        {
            model.train(wasTraining);
            peft?.Unload();
        }
    }
}
