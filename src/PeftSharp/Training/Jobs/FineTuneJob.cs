using System.Globalization;
using System.Text.Json;
using PeftSharp.Core;
using PeftSharp.Data;
using PeftSharp.IO;
using PeftSharp.Methods.GaLore;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tokenization;
using PeftSharp.Training.Optim;
using TorchSharp;

namespace PeftSharp.Training.Jobs;

/// <summary>Sent once the data is read: how many optimizer steps the run will take.</summary>
public sealed record TrainingPlanned(long TotalSteps, int TrainExamples, int ValidationExamples) : TrainingEvent(0);

/// <summary>A validation example with the model's prediction before and after training.</summary>
public sealed record ExamplePrediction(string Text, string Expected, string Before, string After);

/// <summary>What a fine-tuning run produced.</summary>
public sealed record FineTuneResult(string OutputDirectory, FineTuneOptions Resolved, TrainingResult Training, IReadOnlyList<ExamplePrediction> Examples, string Task, string Method);

/// <summary>
/// The end-to-end fine-tuning run behind <c>peft train</c>: read and split the data, load the model (with a new
/// classification head when the data has labels), inject the adapter, train with evaluation before and after, and
/// write the adapter, the resolved options, metrics.jsonl and summary.json into the run folder. The CLI only parses
/// flags and renders; C# users call <see cref="Run"/> directly.
/// </summary>
public static class FineTuneJob
{
    public const string ResolvedConfigFile = "run_config.json";

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    /// <summary>Fills unset paths with the bundled default and the output folder with <c>runs/&lt;timestamp&gt;</c>.</summary>
    public static FineTuneOptions Resolve(FineTuneOptions o)
    {
        var usesDefaultModel = o.Model is null;
        var model = o.Model ?? BundledAssets.Model(BundledAssets.MiniLmL6V2);
        var data = o.Data ?? Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "train.jsonl");
        var validation = o.Validation ?? (o.Data is null ? Path.Combine(BundledAssets.Data(BundledAssets.SentimentSentences), "test.jsonl") : null);
        var output = o.Output ?? Path.Combine("runs", DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        return o with
        {
            Model = Path.GetFullPath(model),
            Data = Path.GetFullPath(data),
            Validation = validation is null ? null : Path.GetFullPath(validation),
            Output = Path.GetFullPath(output),
            InitAdapter = o.InitAdapter is null ? null : Path.GetFullPath(o.InitAdapter),
            Task = usesDefaultModel && o.Task == FineTuneTask.Auto ? FineTuneTask.Classification : o.Task,
        };
    }

    /// <summary>Runs the whole job; progress events go to <paramref name="progress"/>, one-line notes to <paramref name="log"/>.</summary>
    public static FineTuneResult Run(FineTuneOptions options, IProgress<TrainingEvent>? progress = null, Action<string>? log = null)
    {
        log ??= _ => { };
        var o = Resolve(options);
        Validate(o);
        var device = torch.device(o.Device);
        Directory.CreateDirectory(o.Output!);

        var splits = o.Validation is not null
            ? DataSplits.FromFiles(o.Data!, o.Validation, new DataReadOptions { SkipBadRows = o.SkipBadRows })
            : o.ValidationSplit == 0
                ? new TrainValidation(DataReader.Read(o.Data!, new DataReadOptions { SkipBadRows = o.SkipBadRows }), null) // no held-out set: train on every row
                : DataSplits.Split(DataReader.Read(o.Data!, new DataReadOptions { SkipBadRows = o.SkipBadRows }), o.ValidationSplit, o.Seed);
        var skipped = splits.Train.SkippedRows + (splits.Validation?.SkippedRows ?? 0);
        if (skipped > 0)
        {
            log($"skipped {skipped} bad row(s): {string.Join("; ", splits.Train.SkippedReasons.Take(3))}");
        }
        var task = o.Task != FineTuneTask.Auto ? o.Task : TaskOf(splits.Train);
        var tokenizer = HfTokenizer.FromFolder(o.Model!);

        // Seed before loading so a newly initialised head is the same in every run with this seed.
        torch.manual_seed(o.Seed);
        using var model = LoadModel(o.Model!, task, splits.Labels, device);
        model.GradientCheckpointing = o.GradientCheckpointing;
        var (train, eval) = Encode(task, splits, tokenizer, o);
        log($"task {task}: {train.Count} training and {eval?.Count ?? 0} validation examples; model {model.Architecture}");

        var collator = Collator.For(tokenizer);
        var trainLoader = new DataLoader(train.Examples, collator, device, new DataLoaderOptions { BatchSize = o.BatchSize, Shuffle = true, Seed = o.Seed });
        var evalLoader = eval is null ? null : new DataLoader(eval.Examples, collator, device, new DataLoaderOptions { BatchSize = o.BatchSize, Shuffle = false });
        var steps = o.MaxSteps ?? (long)Math.Ceiling(o.Epochs * trainLoader.Count / o.GradientAccumulation);
        var warmupSteps = (long)Math.Round(o.WarmupRatio * steps);
        // LoRA-SB approximates the first full update: the official code takes the first warm-up step's lr.
        var peft = BuildTrainable(model, o, task, calibrationLearningRate: o.LearningRate / Math.Max(1, warmupSteps));
        var examplesBefore = ShowPredictions(model, tokenizer, splits, task, o);
        var stepsPerEpoch = Math.Max(1, trainLoader.Count / o.GradientAccumulation);
        progress?.Report(new TrainingPlanned(steps, train.Count, eval?.Count ?? 0));

        var trainerOptions = new TrainerOptions
        {
            MaxSteps = steps,
            GradientAccumulationSteps = o.GradientAccumulation,
            MaxGradNorm = o.MaxGradNorm,
            Schedule = new LearningRateSchedule
            {
                Kind = o.Scheduler switch
                {
                    "constant" => ScheduleKind.Constant,
                    "cosine" => ScheduleKind.Cosine,
                    _ => ScheduleKind.Linear,
                },
                PeakLearningRate = o.LearningRate,
                WarmupSteps = warmupSteps,
                TotalSteps = steps,
            },
            Optimizer = o.Optimizer switch
            {
                "sgd" => p => SgdOptimizer.Create(p, new SgdOptions { WeightDecay = o.WeightDecay }),
                "galore" => p => GaLoreOnLinearWeights(model, p, o),
                _ => p => AdamWOptimizer.Create(p, new AdamWOptions { WeightDecay = o.WeightDecay }),
            },
            Seed = o.Seed,
            LogEvery = o.LogEvery,
            // Without an explicit interval, evaluate once per epoch (and before and after).
            EvalEvery = o.EvalEvery > 0 ? o.EvalEvery : steps > stepsPerEpoch ? stepsPerEpoch : 0,
            CheckpointEvery = o.CheckpointEvery,
            KeepCheckpoints = o.KeepCheckpoints,
            OutputDirectory = o.Output,
            EvalData = evalLoader,
            Evaluate = evalLoader is not null && task == FineTuneTask.Classification ? _ => Evaluation.Evaluator.Classification(model, evalLoader) : null,
            Progress = progress,
            Task = TaskName(task, o),
            Metric = task == FineTuneTask.Classification ? "accuracy" : "loss",
        };
        File.WriteAllText(Path.Combine(o.Output!, ResolvedConfigFile), JsonSerializer.Serialize(o, s_json) + "\n");
        using var trainer = new Trainer(peft, Objectives.For(model), TrainingData.FromDataset(trainLoader, shuffle: true), trainerOptions);
        if (o.Resume is not null)
        {
            trainer.Resume(o.Resume);
        }
        var injected = peft.Configs.ToDictionary(c => c.Key, c => c.Value);
        var result = trainer.Train();
        ReportStructuralChanges(peft, injected, log);
        if (!o.FullFineTune && !o.HeadOnly)
        {
            PeftAdapterFiles.Save(peft, o.Output!);
        }
        var examplesAfter = ShowPredictions(model, tokenizer, splits, task, o);
        var examples = examplesBefore.Zip(examplesAfter, (b, a) => b with { After = a.Before }).ToList();
        return new FineTuneResult(o.Output!, o, result, examples, task.ToString().ToLowerInvariant(), o.FullFineTune ? "full" : o.HeadOnly ? "head-only" : o.Method);
    }

    // A method whose hooks rebuilt its adapter during training (DiffoRA's discretisation) ends with another config: say
    // which modules the saved adapter adapts.
    private static void ReportStructuralChanges(PeftModel peft, IReadOnlyDictionary<string, AdapterConfig> injected, Action<string> log)
    {
        foreach (var (name, config) in peft.Configs)
        {
            if (injected.TryGetValue(name, out var before) && !ReferenceEquals(before, config))
            {
                var modules = peft.AdapterLayers().Where(l => l.Layer.AdapterNames.Contains(name)).Select(l => l.Name).ToList();
                log($"adapter '{name}' after training: {before.PeftType} became {config.PeftType} on {modules.Count} module(s): {string.Join(", ", modules)}");
            }
        }
    }

    private static void Validate(FineTuneOptions o)
    {
        if (o.Rank <= 0 || o.BatchSize <= 0 || o.GradientAccumulation <= 0 || o.MaxLength <= 1 || !(o.LearningRate > 0) || o.Epochs <= 0)
        {
            throw new ConfigException($"r, batch_size, gradient_accumulation_steps, max_length, learning_rate and epochs must be positive (got r={o.Rank}, batch_size={o.BatchSize}, gradient_accumulation_steps={o.GradientAccumulation}, max_length={o.MaxLength}, learning_rate={o.LearningRate}, epochs={o.Epochs})");
        }
        if (o.Scheduler is not ("constant" or "linear" or "cosine"))
        {
            throw new ConfigException($"lr_scheduler must be constant, linear or cosine, got '{o.Scheduler}'");
        }
        if (o.Optimizer is not ("adamw" or "sgd" or "galore"))
        {
            throw new ConfigException($"optimizer must be adamw, sgd or galore, got '{o.Optimizer}'");
        }
        if (o.FullFineTune && o.HeadOnly)
        {
            throw new ConfigException("full_finetune and head_only exclude each other");
        }
        if (o.InitAdapter is not null && (o.FullFineTune || o.HeadOnly))
        {
            throw new ConfigException("init_adapter continues training an adapter; it excludes full_finetune and head_only");
        }
        if (o.ValidationSplit is < 0 or >= 1)
        {
            throw new ConfigException($"validation_split must be in [0, 1), got {o.ValidationSplit}");
        }
    }

    // GaLore as the optimizer (full fine-tuning): rank r, default gap and scale; the weights of Linear layers are
    // projected, as the official recipe projects the attention and MLP weights; embeddings, norms and biases take the
    // same AdamW step unprojected.
    private static GaLoreAdamW GaLoreOnLinearWeights(PretrainedModel model, IReadOnlyList<NamedParameter> parameters, FineTuneOptions o)
    {
        var modules = model.named_modules().ToList();
        // Adapter factors (lora_A, …) are Linear modules too, but already low-rank: only the model's own layers are projected.
        var adapters = modules.Where(m => m.module is AdapterLayer).Select(m => m.name + ".").ToList();
        var linear = modules.Where(m => m.module is TorchSharp.Modules.Linear && !adapters.Any(a => m.name.StartsWith(a, StringComparison.Ordinal)))
            .Select(m => PeftModel.NamePrefix + m.name + ".weight").ToHashSet(StringComparer.Ordinal);
        return GaLoreAdamW.Create(parameters, new GaLoreOptions { Rank = o.Rank, WeightDecay = o.WeightDecay }, p => linear.Contains(p.Name));
    }

    internal static FineTuneTask TaskOf(Dataset data) => data.Examples.FirstOrDefault() switch
    {
        ClassificationExample => FineTuneTask.Classification,
        InstructionExample or ChatExample => FineTuneTask.Sft,
        TextExample => FineTuneTask.Lm,
        null => throw new PeftException($"{data.Source}: no examples"),
        var e => throw new PeftException($"{data.Source}: cannot train on {e.GetType().Name}"),
    };

    private static string TaskName(FineTuneTask task, FineTuneOptions o) =>
        $"{task.ToString().ToLowerInvariant()}:{Path.GetFileName(Path.GetDirectoryName(o.Data)) ?? "data"}";

    internal static PretrainedModel LoadModel(string folder, FineTuneTask task, ClassLabels? labels, torch.Device device)
    {
        if (task != FineTuneTask.Classification)
        {
            return AutoModel.FromPretrained(folder, new ModelLoadOptions { Device = device });
        }
        var numLabels = labels?.Count ?? throw new PeftException("classification needs labelled data (a 'label' column)");
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var architecture = config.ModelType switch
        {
            "bert" => "BertForSequenceClassification",
            "gpt2" => "GPT2ForSequenceClassification",
            "qwen2" => "Qwen2ForSequenceClassification",
            _ => "LlamaForSequenceClassification",
        };
        return AutoModel.FromPretrained(folder, new ModelLoadOptions { Device = device, Architecture = architecture, NumLabels = numLabels, AllowNewHead = true });
    }

    private static (EncodedDataset Train, EncodedDataset? Eval) Encode(FineTuneTask task, TrainValidation splits, HfTokenizer tokenizer, FineTuneOptions o)
    {
        EncodedDataset Enc(Dataset d) => task switch
        {
            FineTuneTask.Classification => ClassificationEncoder.Encode(d.Examples, tokenizer, o.MaxLength),
            FineTuneTask.Sft => SftEncoder.Encode(d.Examples, tokenizer, new SftOptions { MaxLength = o.MaxLength }),
            _ => TextLmEncoder.Encode(d.Examples, tokenizer, new TextLmOptions { MaxLength = o.MaxLength, Packing = o.Packing }),
        };
        return (Enc(splits.Train), splits.Validation is null || splits.Validation.Count == 0 ? null : Enc(splits.Validation));
    }

    /// <summary>PEFT's default target modules per model type (<c>TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING</c>).</summary>
    public static IReadOnlyList<string> DefaultTargets(string modelType) => modelType switch
    {
        "gpt2" => ["c_attn"],
        "bert" => ["query", "value"],
        _ => ["q_proj", "v_proj"],
    };

    private static PeftModel BuildTrainable(PretrainedModel model, FineTuneOptions o, FineTuneTask task, double calibrationLearningRate)
    {
        var heads = task == FineTuneTask.Classification ? model.OutputHeadNames : [];
        if (o.FullFineTune || o.HeadOnly)
        {
            var wrapped = PeftModel.Wrap(model);
            foreach (var (name, p) in model.named_parameters())
            {
                p.requires_grad = o.FullFineTune || heads.Any(h => name.StartsWith(h + ".", StringComparison.Ordinal));
            }
            return wrapped;
        }
        if (o.InitAdapter is { } init)
        {
            var loaded = PeftModel.Wrap(model);
            PeftAdapterFiles.Load(loaded, init, isTrainable: true);
            return loaded;
        }
        var config = MethodRegistry.Default.DefaultConfig(o.Method);
        var targets = TargetModules.Of([.. o.TargetModules
            ?? MethodRegistry.Default.Find(o.Method)?.DefaultTargetModules(model.Config.ModelType)
            ?? DefaultTargets(model.Config.ModelType)]);
        config = config with { TargetModules = targets, ModulesToSave = heads.Count > 0 ? heads : null, TaskType = task == FineTuneTask.Classification ? "SEQ_CLS" : "CAUSAL_LM", BaseModelNameOrPath = o.Model };
        if (config is LoraConfig lora)
        {
            config = lora with { Rank = o.Rank, Alpha = o.Alpha, Dropout = o.Dropout };
        }
        else
        {
            config = MethodConfigs.WithRank(config, o.Rank, o.Alpha, o.Dropout, calibrationLearningRate);
        }
        if (o.MethodOptions is { Count: > 0 } extra)
        {
            config = MethodConfigs.WithOptions(config, extra);
        }
        return PeftModel.Create(model, config);
    }

    // A greedy continuation of the first validation prompt (the first words of a text, or an instruction's prompt).
    private static ExamplePrediction SampleGeneration(PretrainedModel model, HfTokenizer tokenizer, TrainValidation splits, FineTuneTask task)
    {
        var example = (splits.Validation ?? splits.Train).Examples.FirstOrDefault();
        var prompt = example switch
        {
            TextExample t => string.Join(' ', t.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(6)),
            InstructionExample or ChatExample => string.Concat(PromptFormats.For(tokenizer).Render(example).Segments.TakeWhile(s => !s.Train).Select(s => s.Text)),
            _ => "Once upon a time",
        };
        var wasTraining = model.training;
        model.eval();
        var text = new Generation.TextGeneration(model, tokenizer).Generate(prompt, new Generation.GenerationOptions { MaxNewTokens = 40 }).Text;
        model.train(wasTraining);
        return new ExamplePrediction(prompt, "", text.ReplaceLineEndings(" "), "");
    }

    private static IReadOnlyList<ExamplePrediction> ShowPredictions(PretrainedModel model, HfTokenizer tokenizer, TrainValidation splits, FineTuneTask task, FineTuneOptions o)
    {
        if (o.ShowExamples <= 0)
        {
            return [];
        }
        if (task != FineTuneTask.Classification)
        {
            return model.Task == ModelTask.CausalLM ? [SampleGeneration(model, tokenizer, splits, task)] : [];
        }
        if (splits.Validation is null)
        {
            return [];
        }
        var labels = splits.Labels!;
        var picked = splits.Validation.Examples.OfType<ClassificationExample>().Take(o.ShowExamples).ToList();
        var encoded = ClassificationEncoder.Encode(picked, tokenizer, o.MaxLength);
        var loader = new DataLoader(encoded.Examples, Collator.For(tokenizer), torch.device(o.Device), new DataLoaderOptions { BatchSize = picked.Count, Shuffle = false });
        var wasTraining = model.training;
        model.eval();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var batch = loader.Get(0);
        var predicted = model.Forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).Logits.argmax(-1).cpu().data<long>().ToArray();
        model.train(wasTraining);
        return picked.Select((e, i) => new ExamplePrediction(e.Text, labels.Names[e.Label], labels.Names[(int)predicted[i]], "")).ToList();
    }
}
