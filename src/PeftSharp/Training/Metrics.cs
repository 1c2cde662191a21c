using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using PeftSharp.IO;

namespace PeftSharp.Training;

/// <summary>
/// The run summary written to <c>summary.json</c> (the keys the CLI, benchmarks and docs/results.md read):
/// the task, the metric's name and its value before and after training, parameter counts, wall time, throughput and
/// peak memory.
/// </summary>
public sealed record TrainingSummary
{
    /// <summary>What was trained, e.g. <c>causal-lm</c>, <c>sst2</c>, <c>gsm8k</c>.</summary>
    [JsonPropertyName("task")]
    public string Task { get; init; } = "";

    /// <summary>Name of the metric in <see cref="Before"/>/<see cref="After"/> (e.g. <c>loss</c>, <c>accuracy</c>).</summary>
    [JsonPropertyName("metric")]
    public string Metric { get; init; } = "loss";

    /// <summary>The metric before the first step (null when no evaluation ran then).</summary>
    [JsonPropertyName("before")]
    public double? Before { get; init; }

    /// <summary>The metric after the last step (null when no evaluation ran).</summary>
    [JsonPropertyName("after")]
    public double? After { get; init; }

    [JsonPropertyName("trainable_parameters")]
    public long TrainableParameters { get; init; }

    [JsonPropertyName("total_parameters")]
    public long TotalParameters { get; init; }

    /// <summary>Optimizer steps completed.</summary>
    [JsonPropertyName("steps")]
    public long Steps { get; init; }

    /// <summary>Wall-clock seconds spent inside training steps (evaluation and checkpoint writing excluded), summed over resumes.</summary>
    [JsonPropertyName("train_seconds")]
    public double TrainSeconds { get; init; }

    /// <summary>Tokens read by the forward (attention-mask sum) per second of <see cref="TrainSeconds"/>.</summary>
    [JsonPropertyName("tokens_per_second")]
    public double TokensPerSecond { get; init; }

    /// <summary>
    /// Peak resident memory of the whole process, from <see cref="Process.PeakWorkingSet64"/> (on Linux the kernel's
    /// <c>VmHWM</c>): an approximation that includes libtorch's native allocations, the .NET runtime and anything the
    /// process did before training.
    /// </summary>
    [JsonPropertyName("peak_memory_bytes")]
    public long PeakMemoryBytes { get; init; }

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    /// <summary>Writes the summary atomically as indented JSON.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, s_json) + "\n");

    /// <summary>Reads a summary.json.</summary>
    public static TrainingSummary Load(string path) =>
        JsonFiles.ReadObject(path).Deserialize<TrainingSummary>() ?? throw new ConfigException($"{path}: empty summary");

    /// <summary>The process's peak working set in bytes (see <see cref="PeakMemoryBytes"/>).</summary>
    public static long MeasurePeakMemory()
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.PeakWorkingSet64;
    }
}

/// <summary>
/// Appends one JSON object per line to <c>metrics.jsonl</c>: training lines
/// <c>{"step","loss","lr","grad_norm","tokens_per_second","elapsed"}</c> and evaluation lines
/// <c>{"step","eval_loss","eval_&lt;metric&gt;"…}</c>. Numbers are written round-trippable (invariant culture).
/// </summary>
public sealed class MetricsLog
{
    public const string FileName = "metrics.jsonl";

    public MetricsLog(string path)
    {
        Path = path;
    }

    public string Path { get; }

    /// <summary>The training line of a logging interval.</summary>
    public static JsonObject Line(MetricsLogged m) => new()
    {
        ["step"] = m.Step,
        ["loss"] = Number(m.Loss),
        ["lr"] = Number(m.LearningRate),
        ["grad_norm"] = Number(m.GradNorm),
        ["tokens_per_second"] = Number(m.TokensPerSecond),
        ["elapsed"] = Number(m.ElapsedSeconds),
    };

    /// <summary>The line of an evaluation.</summary>
    public static JsonObject Line(long step, EvaluationResult result)
    {
        var line = new JsonObject { ["step"] = step };
        if (result.Loss is { } loss)
        {
            line["eval_loss"] = Number(loss);
        }
        foreach (var (name, value) in result.Metrics)
        {
            line["eval_" + name] = Number(value);
        }
        return line;
    }

    public void Append(JsonObject line)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        File.AppendAllText(Path, line.ToJsonString() + "\n");
    }

    /// <summary>Replaces the file with <paramref name="lines"/> (on resume: the history up to the checkpoint, nothing after it).</summary>
    public void Rewrite(IEnumerable<JsonObject> lines) =>
        AtomicFile.WriteAllText(Path, string.Concat(lines.Select(l => l.ToJsonString() + "\n")));

    /// <summary>Reads every line back.</summary>
    public static IReadOnlyList<JsonObject> Read(string path) =>
        [.. File.ReadLines(path).Where(l => l.Length > 0).Select((l, i) => JsonNode.Parse(l) as JsonObject
            ?? throw new PeftException($"{path}: line {i + 1} is not a JSON object"))];

    // JSON has no NaN/Infinity: such values are written as strings ("NaN"), as Python's json would not parse them either.
    private static JsonNode Number(double v) =>
        double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture))!;
}
