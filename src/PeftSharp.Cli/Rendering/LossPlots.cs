using System.Globalization;
using System.Text.Json.Nodes;
using PeftSharp.Training;

namespace PeftSharp.Cli.Rendering;

/// <summary>PNG plots of a run's <c>metrics.jsonl</c> (ScottPlot): train/eval loss and the learning rate.</summary>
internal static class LossPlots
{
    public const string LossFile = "loss.png";
    public const string LearningRateFile = "lr.png";

    /// <summary>Writes loss.png and lr.png next to metrics.jsonl; returns the files written.</summary>
    public static IReadOnlyList<string> Write(string runDirectory)
    {
        var metrics = Path.Combine(runDirectory, MetricsLog.FileName);
        if (!File.Exists(metrics))
        {
            return [];
        }
        var train = new List<(double Step, double Loss)>();
        var eval = new List<(double Step, double Loss)>();
        var lr = new List<(double Step, double Lr)>();
        foreach (var line in File.ReadLines(metrics))
        {
            if (string.IsNullOrWhiteSpace(line) || JsonNode.Parse(line) is not JsonObject o || o["step"] is null)
            {
                continue;
            }
            var step = o["step"]!.GetValue<double>();
            if (o["loss"] is JsonValue loss && o["lr"] is JsonValue rate)
            {
                train.Add((step, loss.GetValue<double>()));
                lr.Add((step, rate.GetValue<double>()));
            }
            if (o["eval_loss"] is JsonValue el)
            {
                eval.Add((step, el.GetValue<double>()));
            }
        }
        var written = new List<string>();
        if (train.Count > 0 || eval.Count > 0)
        {
            var plot = new ScottPlot.Plot();
            if (train.Count > 0)
            {
                var s = plot.Add.Scatter(train.Select(p => p.Step).ToArray(), train.Select(p => p.Loss).ToArray());
                s.LegendText = "train loss";
                s.MarkerSize = 0;
            }
            if (eval.Count > 0)
            {
                var s = plot.Add.Scatter(eval.Select(p => p.Step).ToArray(), eval.Select(p => p.Loss).ToArray());
                s.LegendText = "eval loss";
            }
            plot.Title("Loss");
            plot.XLabel("step");
            plot.YLabel("loss");
            plot.ShowLegend();
            var path = Path.Combine(runDirectory, LossFile);
            plot.SavePng(path, 800, 500);
            written.Add(path);
        }
        if (lr.Count > 0)
        {
            var plot = new ScottPlot.Plot();
            var s = plot.Add.Scatter(lr.Select(p => p.Step).ToArray(), lr.Select(p => p.Lr).ToArray());
            s.MarkerSize = 0;
            plot.Title("Learning rate");
            plot.XLabel("step");
            plot.YLabel("lr");
            var path = Path.Combine(runDirectory, LearningRateFile);
            plot.SavePng(path, 800, 400);
            written.Add(path);
        }
        return written;
    }

    internal static string Format(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
