using System.CommandLine;
using System.Text.Json.Nodes;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Cli.Commands;

/// <summary>The flags of <c>peft train</c>; each overrides the matching key of <c>--config</c> only when given.</summary>
internal sealed class TrainFlags
{
    private readonly Option<string?> _model = new("--model") { Description = "Hugging Face model folder (default: the bundled all-MiniLM-L6-v2)." };
    private readonly Option<string?> _data = new("--data") { Description = "Training data: JSONL (Alpaca, chat messages, text, text+label, premise/hypothesis+label) or CSV/TSV." };
    private readonly Option<string?> _validation = new("--validation") { Description = "Validation file; without it --validation-split of the data is held out." };
    private readonly Option<double?> _split = new("--validation-split") { Description = "Fraction held out for validation when no --validation file is given (default 0.1)." };
    private readonly Option<FineTuneTask?> _task = new("--task") { Description = "auto, classification, sft or lm (default auto: from the data)." };
    private readonly Option<string?> _method = new("--method") { Description = "Adapter method or preset (peft methods lists them; default lora)." };
    private readonly Option<int?> _rank = new("--rank", "-r") { Description = "Rank r (default 8)." };
    private readonly Option<double?> _alpha = new("--alpha") { Description = "Scale numerator alpha (default 16)." };
    private readonly Option<double?> _dropout = new("--dropout") { Description = "Adapter dropout (default 0.05)." };
    private readonly Option<string[]?> _targets = new("--target-modules") { Description = "Modules to adapt (suffixes); default PEFT's per model type.", AllowMultipleArgumentsPerToken = true };
    private readonly Option<double?> _lr = new("--learning-rate", "--lr") { Description = "Peak learning rate (default 1e-3)." };
    private readonly Option<string?> _scheduler = new("--lr-scheduler") { Description = "constant, linear or cosine, after warm-up (default linear)." };
    private readonly Option<double?> _warmup = new("--warmup-ratio") { Description = "Fraction of steps for linear warm-up (default 0.06)." };
    private readonly Option<double?> _epochs = new("--epochs") { Description = "Passes over the training data (default 3)." };
    private readonly Option<long?> _steps = new("--max-steps") { Description = "Optimizer steps; overrides --epochs." };
    private readonly Option<int?> _batch = new("--batch-size") { Description = "Examples per micro-batch (default 16)." };
    private readonly Option<int?> _accum = new("--gradient-accumulation") { Description = "Micro-batches per optimizer step (default 1)." };
    private readonly Option<int?> _maxLength = new("--max-length") { Description = "Tokens per example; longer ones are truncated (default 128)." };
    private readonly Option<string?> _optimizer = new("--optimizer") { Description = "adamw, sgd or galore (GaLore rank -r on the Linear weights, e.g. with --full-finetune; default adamw)." };
    private readonly Option<double?> _weightDecay = new("--weight-decay") { Description = "Decoupled weight decay (default 0.01; none on biases and norms)." };
    private readonly Option<double?> _clip = new("--max-grad-norm") { Description = "Global gradient-norm clip (default 1.0)." };
    private readonly Option<int?> _seed = new("--seed") { Description = "Seed for init, dropout and data order (default 42)." };
    private readonly Option<int?> _evalEvery = new("--eval-every") { Description = "Evaluate every N steps (default: before and after only)." };
    private readonly Option<int?> _logEvery = new("--log-every") { Description = "Steps per metrics line (default 10)." };
    private readonly Option<int?> _ckptEvery = new("--checkpoint-every") { Description = "Checkpoint every N steps (default: none)." };
    private readonly Option<int?> _keep = new("--keep-checkpoints") { Description = "Most recent checkpoints kept (the best is kept too; default 2)." };
    private readonly Option<string?> _output = new("--output", "-o") { Description = "Run folder (default runs/<timestamp>)." };
    private readonly Option<string?> _resume = new("--resume") { Description = "Continue from this checkpoint folder." };
    private readonly Option<string?> _device = new("--device") { Description = "cpu, cuda or cuda:N (default cpu)." };
    private readonly Option<bool?> _gc = new("--gradient-checkpointing") { Description = "Recompute decoder-layer activations in backward to save memory." };
    private readonly Option<bool?> _skipBad = new("--skip-bad-rows") { Description = "Skip and count malformed data rows instead of failing." };
    private readonly Option<bool?> _packing = new("--packing") { Description = "Pack plain-text LM examples into full blocks." };
    private readonly Option<bool?> _full = new("--full-finetune") { Description = "Train all weights (baseline; no adapter)." };
    private readonly Option<string[]?> _methodOptions = new("--method-option", "-O") { Description = "Method config key by its PEFT name, KEY=VALUE (VALUE as JSON when it parses); repeatable.", AllowMultipleArgumentsPerToken = false };
    private readonly Option<int?> _experts = new("--experts") { Description = "Experts per MLP for mixture methods (sets num_experts; same as --method-option num_experts=N)." };
    private readonly Option<bool?> _headOnly = new("--head-only") { Description = "Train only the classification head (baseline; no adapter)." };

    public void AddTo(Command cmd, IReadOnlyCollection<string>? except = null)
    {
        foreach (var option in new Option[] { _model, _data, _validation, _split, _task, _method, _rank, _alpha, _dropout, _targets, _lr, _scheduler, _warmup, _epochs, _steps, _batch, _accum, _maxLength, _optimizer, _weightDecay, _clip, _seed, _evalEvery, _logEvery, _ckptEvery, _keep, _output, _resume, _device, _gc, _skipBad, _packing, _full, _headOnly, _methodOptions, _experts })
        {
            if (except is null || !except.Contains(option.Name))
            {
                cmd.Options.Add(option);
            }
        }
    }

    public FineTuneOptions Apply(ParseResult p, FineTuneOptions o) => o with
    {
        Model = p.GetValue(_model) ?? o.Model,
        Data = p.GetValue(_data) ?? o.Data,
        Validation = p.GetValue(_validation) ?? o.Validation,
        ValidationSplit = p.GetValue(_split) ?? o.ValidationSplit,
        Task = p.GetValue(_task) ?? o.Task,
        Method = p.GetValue(_method) ?? o.Method,
        Rank = p.GetValue(_rank) ?? o.Rank,
        Alpha = p.GetValue(_alpha) ?? o.Alpha,
        Dropout = p.GetValue(_dropout) ?? o.Dropout,
        TargetModules = p.GetValue(_targets) is { Length: > 0 } targets ? targets : o.TargetModules,
        LearningRate = p.GetValue(_lr) ?? o.LearningRate,
        Scheduler = p.GetValue(_scheduler) ?? o.Scheduler,
        WarmupRatio = p.GetValue(_warmup) ?? o.WarmupRatio,
        Epochs = p.GetValue(_epochs) ?? o.Epochs,
        MaxSteps = p.GetValue(_steps) ?? o.MaxSteps,
        BatchSize = p.GetValue(_batch) ?? o.BatchSize,
        GradientAccumulation = p.GetValue(_accum) ?? o.GradientAccumulation,
        MaxLength = p.GetValue(_maxLength) ?? o.MaxLength,
        Optimizer = p.GetValue(_optimizer) ?? o.Optimizer,
        WeightDecay = p.GetValue(_weightDecay) ?? o.WeightDecay,
        MaxGradNorm = p.GetValue(_clip) ?? o.MaxGradNorm,
        Seed = p.GetValue(_seed) ?? o.Seed,
        EvalEvery = p.GetValue(_evalEvery) ?? o.EvalEvery,
        LogEvery = p.GetValue(_logEvery) ?? o.LogEvery,
        CheckpointEvery = p.GetValue(_ckptEvery) ?? o.CheckpointEvery,
        KeepCheckpoints = p.GetValue(_keep) ?? o.KeepCheckpoints,
        Output = p.GetValue(_output) ?? o.Output,
        Resume = p.GetValue(_resume) ?? o.Resume,
        Device = p.GetValue(_device) ?? o.Device,
        GradientCheckpointing = p.GetValue(_gc) ?? o.GradientCheckpointing,
        SkipBadRows = p.GetValue(_skipBad) ?? o.SkipBadRows,
        Packing = p.GetValue(_packing) ?? o.Packing,
        FullFineTune = p.GetValue(_full) ?? o.FullFineTune,
        HeadOnly = p.GetValue(_headOnly) ?? o.HeadOnly,
        MethodOptions = MergeOptions(o.MethodOptions, p.GetValue(_methodOptions), p.GetValue(_experts)),
    };

    /// <summary>The method config key <c>--experts</c> sets.</summary>
    internal const string ExpertsKey = "num_experts";

    // Command-line options override the config file's method_options key by key; --experts N is num_experts=N.
    private static IReadOnlyDictionary<string, JsonNode?>? MergeOptions(IReadOnlyDictionary<string, JsonNode?>? fromFile, string[]? fromCli, int? experts)
    {
        if (fromCli is not { Length: > 0 } && experts is null)
        {
            return fromFile;
        }
        var merged = fromFile is null ? new Dictionary<string, JsonNode?>(StringComparer.Ordinal) : new Dictionary<string, JsonNode?>(fromFile, StringComparer.Ordinal);
        foreach (var text in fromCli ?? [])
        {
            var (key, value) = MethodConfigs.ParseOption(text);
            merged[key] = value;
        }
        if (experts is int k)
        {
            merged[ExpertsKey] = k;
        }
        return merged;
    }
}
