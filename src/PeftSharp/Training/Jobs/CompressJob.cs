using PeftSharp.Compression;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using TorchSharp;

namespace PeftSharp.Training.Jobs;

/// <summary>What <see cref="CompressJob"/> does: which adapter, to what size, where, and whether to fine-tune afterwards.</summary>
public sealed record CompressJobOptions
{
    /// <summary>The trained adapter folder (PEFT format, any method with a closed-form ΔW).</summary>
    public required string Adapter { get; init; }

    /// <summary>Where the compressed PEFT LoRA adapter is written; with fine-tuning, to <c>Output/compressed</c>, and the fine-tuned adapter with the run's logs to <c>Output</c>.</summary>
    public required string Output { get; init; }

    public required CompressionOptions Compression { get; init; }

    /// <summary>Cont-Squeeze: optimizer steps of fine-tuning at the new rank (0: none). CLI: <c>--finetune-steps</c>.</summary>
    public long FineTuneSteps { get; init; }

    /// <summary>
    /// The base model (<see cref="FineTuneOptions.Model"/>; default the adapter's <c>base_model_name_or_path</c>), the
    /// device, and with fine-tuning the data and training knobs. The job sets the initial adapter, steps, epochs and
    /// output folder; method, rank, alpha, dropout and target modules come from the compressed adapter.
    /// </summary>
    public FineTuneOptions Training { get; init; } = new();
}

/// <summary>What a compression job produced: the compressed adapter's folder, config and report, and the fine-tuning run if any.</summary>
public sealed record CompressJobResult(
    string CompressedDirectory,
    LoraConfig Config,
    IReadOnlyList<ModuleCompression> Modules,
    long Parameters,
    long SourceParameters,
    FineTuneResult? FineTune);

/// <summary>
/// <c>peft compress</c> as a library call: post-hoc LoRA-Squeeze of an adapter (loading its base model when the method
/// needs it, <see cref="LoraCompression.NeedsBaseModel"/>), the compressed PEFT LoRA written to disk, then optionally a
/// few steps of fine-tuning at the new rank through <see cref="FineTuneJob"/>, which starts from the written adapter.
/// </summary>
public static class CompressJob
{
    /// <summary>The subfolder of the output that keeps the compressed adapter when it is fine-tuned afterwards.</summary>
    public const string CompressedFolder = "compressed";

    /// <summary>Runs the job; <paramref name="onCompressed"/> sees the compression before any fine-tuning starts, <paramref name="log"/> the fine-tuning's notes.</summary>
    public static CompressJobResult Run(CompressJobOptions options, Action<CompressJobResult>? onCompressed = null, Action<string>? log = null)
    {
        options.Compression.Validate();
        if (options.FineTuneSteps < 0)
        {
            throw new ConfigException($"--finetune-steps must be >= 0, got {options.FineTuneSteps}");
        }
        var adapter = Path.GetFullPath(options.Adapter);
        var config = PeftAdapterFiles.ReadConfig(adapter);
        var modelDir = options.Training.Model;
        string BaseModel() => modelDir ??= PeftAdapterFiles.ResolveBaseModel(adapter, "--model");

        var target = options.FineTuneSteps > 0 ? Path.Combine(options.Output, CompressedFolder) : options.Output;
        CompressJobResult result;
        using (var compressed = Compress(adapter, config, options, BaseModel))
        {
            compressed.Save(target);
            result = new CompressJobResult(target, compressed.Config, compressed.Modules, compressed.Parameters, compressed.SourceParameters, null);
        }
        onCompressed?.Invoke(result);
        if (options.FineTuneSteps == 0)
        {
            return result;
        }
        var run = options.Training with { Model = BaseModel(), InitAdapter = target, MaxSteps = options.FineTuneSteps, Epochs = 1, Output = options.Output };
        return result with { FineTune = FineTuneJob.Run(run, log: log) };
    }

    private static CompressedAdapter Compress(string adapter, Core.AdapterConfig config, CompressJobOptions options, Func<string> baseModel)
    {
        if (!LoraCompression.NeedsBaseModel(config))
        {
            return LoraCompression.CompressFolder(adapter, options.Compression);
        }
        var modelDir = baseModel();
        using var model = AutoModel.FromPretrained(modelDir, AutoModel.OptionsForAdapter(modelDir, adapter, torch.device(options.Training.Device)));
        return LoraCompression.CompressFolder(adapter, options.Compression, model);
    }
}
