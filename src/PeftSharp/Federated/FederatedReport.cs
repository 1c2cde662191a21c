using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftSharp.IO;

namespace PeftSharp.Federated;

/// <summary>The files a simulation writes: metrics.jsonl (one row per seed × aggregation × round), results.md, split.json.</summary>
public static class FederatedReport
{
    public const string MetricsFile = "metrics.jsonl";
    public const string MarkdownFile = "results.md";
    public const string SplitFile = "split.json";

    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    /// <summary>Rewrites the metrics file with every row so far (atomic, so a reader never sees half a line).</summary>
    public static void WriteJsonl(string path, IReadOnlyList<RoundMetrics> rows)
    {
        var sb = new StringBuilder();
        foreach (var r in rows)
        {
            var o = new JsonObject
            {
                ["seed"] = r.Seed,
                ["aggregation"] = r.Aggregation,
                ["round"] = r.Round,
                ["accuracy"] = r.Accuracy,
                ["macro_f1"] = r.MacroF1,
                ["eval_loss"] = r.EvalLoss,
                ["mean_client_loss"] = r.MeanClientLoss,
                ["aggregation_error"] = r.AggregationError,
                ["global_rank"] = r.GlobalRank,
                ["uploaded_params"] = r.UploadedParameters,
                ["downloaded_params"] = r.DownloadedParameters,
            };
            sb.Append(o.ToJsonString()).Append('\n');
        }
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Writes metrics.jsonl, the markdown tables and the client split of every seed.</summary>
    public static void WriteAll(FederatedOptions o, FederatedResult result)
    {
        WriteJsonl(Path.Combine(result.OutputDirectory, MetricsFile), result.Rounds);
        AtomicFile.WriteAllText(Path.Combine(result.OutputDirectory, MarkdownFile), Markdown(o, result));
        var split = new JsonObject
        {
            ["classes"] = new JsonArray([.. result.ClassNames.Select(n => (JsonNode?)n)]),
            ["split"] = o.Split,
            ["seeds"] = new JsonObject(result.Shards.Select(kv => KeyValuePair.Create(kv.Key.ToString(s_inv), (JsonNode?)new JsonArray(
                [.. kv.Value.Select(s => (JsonNode?)new JsonObject
                {
                    ["client"] = s.Client,
                    ["rank"] = o.RankOf(s.Client),
                    ["examples"] = s.Indices.Count,
                    ["label_counts"] = new JsonArray([.. s.LabelCounts.Select(c => (JsonNode?)c)]),
                })])))),
        };
        AtomicFile.WriteAllText(Path.Combine(result.OutputDirectory, SplitFile), split.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// Markdown: held-out accuracy and loss per round for each aggregation (mean ± sample std over seeds), the
    /// communication per round, and each seed's client sizes and label counts.
    /// </summary>
    public static string Markdown(FederatedOptions o, FederatedResult result)
    {
        var rows = result.Rounds;
        var kinds = rows.Select(r => r.Aggregation).Distinct().ToList();
        var seeds = rows.Select(r => r.Seed).Distinct().ToList();
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Federated LoRA: {o.Clients} clients, ranks {string.Join(",", Enumerable.Range(0, o.Clients).Select(o.RankOf))} (scale {Fmt(o.LoraScale)}), split {o.Split}, {o.Rounds} rounds × {o.StepsPerClient} local steps (batch {o.BatchSize}, lr {Fmt(o.LearningRate)}, max length {o.MaxLength}), seeds {string.Join(",", seeds)}.\n\n");
        foreach (var note in result.Notes)
        {
            sb.Append(CultureInfo.InvariantCulture, $"Note: {note}.\n\n");
        }
        Table(sb, "Held-out accuracy", rows, kinds, r => r.Accuracy, "F4");
        Table(sb, "Held-out macro-F1", rows, kinds, r => r.MacroF1, "F4");
        Table(sb, "Held-out loss", rows, kinds, r => r.EvalLoss, "F4");
        Table(sb, "Aggregation error ‖ΔW_global − Σ p_k ΔW_k‖ / ‖Σ p_k ΔW_k‖", rows.Where(r => r.AggregationError is not null).ToList(), kinds, r => r.AggregationError!.Value, "G3");
        sb.Append("Communication per round (LoRA factor entries, head excluded)\n\n| aggregation | global rank | uploaded (all clients) | downloaded (per client) |\n| --- | --- | --- | --- |\n");
        foreach (var k in kinds)
        {
            var r = rows.First(x => x.Aggregation == k && x.Round == 1);
            sb.Append(CultureInfo.InvariantCulture, $"| {k} | {r.GlobalRank} | {r.UploadedParameters:N0} | {r.DownloadedParameters:N0} |\n");
        }
        if (result.GlobalAdapters.Count > 0)
        {
            sb.Append("\nGlobal adapters (PEFT LoRA for the original base; error: ‖ΔW − ΔW_k‖_F left by --global-rank)\n\n| seed | aggregation | rank | error | folder |\n| --- | --- | --- | --- | --- |\n");
            foreach (var g in result.GlobalAdapters)
            {
                var rank = g.Rank == g.SourceRank ? $"{g.Rank}" : $"{g.Rank} (of {g.SourceRank})";
                sb.Append(CultureInfo.InvariantCulture, $"| {g.Seed} | {g.Aggregation} | {rank} | {g.CompressionError:G3} | {g.Directory} |\n");
            }
        }
        sb.Append("\nClient shards (examples; per-class counts in the order ").Append(string.Join(", ", result.ClassNames)).Append(")\n\n| seed | ")
            .Append(string.Join(" | ", Enumerable.Range(0, o.Clients).Select(k => $"client {k} (r={o.RankOf(k)})"))).Append(" |\n|")
            .Append(string.Concat(Enumerable.Repeat(" --- |", o.Clients + 1))).Append('\n');
        foreach (var (seed, shards) in result.Shards)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {seed} | ").Append(string.Join(" | ", shards.Select(s => $"{s.Indices.Count} ({string.Join("/", s.LabelCounts)})"))).Append(" |\n");
        }
        return sb.ToString();
    }

    private static void Table(StringBuilder sb, string title, IReadOnlyList<RoundMetrics> rows, List<string> kinds, Func<RoundMetrics, double> value, string format)
    {
        sb.Append(title).Append(" (mean ± std over seeds)\n\n| round | ").Append(string.Join(" | ", kinds)).Append(" |\n|")
            .Append(string.Concat(Enumerable.Repeat(" --- |", kinds.Count + 1))).Append('\n');
        foreach (var round in rows.Select(r => r.Round).Distinct().Order())
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {round} |");
            foreach (var k in kinds)
            {
                var xs = rows.Where(r => r.Aggregation == k && r.Round == round).Select(value).ToList();
                sb.Append(' ').Append(MeanStd(xs, format)).Append(" |");
            }
            sb.Append('\n');
        }
        sb.Append('\n');
    }

    private static string MeanStd(List<double> xs, string format)
    {
        if (xs.Count == 0)
        {
            return "–";
        }
        var mean = xs.Average();
        if (xs.Count == 1)
        {
            return mean.ToString(format, s_inv);
        }
        var sd = Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1));
        return mean.ToString(format, s_inv) + " ± " + sd.ToString(format, s_inv);
    }

    private static string Fmt(double x) => x.ToString("G4", s_inv);
}
