using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PeftSharp.Cli.Rendering;
using PeftSharp.IO;
using PeftSharp.Training.Jobs;
using Spectre.Console;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft train</c>: fine-tune an adapter. With no arguments it trains LoRA on the bundled all-MiniLM-L6-v2 with a
/// classification head on the bundled sentiment sentences and shows validation accuracy before and after.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo?>("--config") { Description = "A JSON file of run options (keys as in run_config.json); flags override it." };
        var o = new TrainFlags();
        var cmd = new Command("train", "Fine-tune an adapter on your data (default: LoRA on the bundled MiniLM + sentiment sentences).") { config };
        o.AddTo(cmd);
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var options = parse.GetValue(config) is { } file ? ReadConfig(file.FullName) : new FineTuneOptions();
            options = o.Apply(parse, options);
            var resolved = FineTuneJob.Resolve(options);
            var progress = new TrainingProgress(resolved.MaxSteps ?? 0);
            Console.WriteLine($"run folder: {resolved.Output}");
            var result = progress.Run(() => FineTuneJob.Run(resolved, progress, line => Console.WriteLine(line)));
            var plots = LossPlots.Write(result.OutputDirectory);
            RunReport.Render(result, plots);
            return 0;
        }));
        return cmd;
    }

    internal static FineTuneOptions ReadConfig(string path)
    {
        try
        {
            return JsonFiles.ReadObject(path).Deserialize<FineTuneOptions>(new JsonSerializerOptions { UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow })
                ?? throw new ConfigException($"{path}: empty run config");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: {e.Message.Split(" Path:")[0]} (at {e.Path})", e);
        }
    }
}

/// <summary>The final report: parameters, time, throughput, memory, metric before → after, example predictions.</summary>
internal static class RunReport
{
    public static void Render(FineTuneResult result, IReadOnlyList<string> plots)
    {
        var s = result.Training.Summary;
        var inv = CultureInfo.InvariantCulture;
        var table = new Table().Border(TableBorder.Rounded).AddColumns("", "").HideHeaders();
        table.AddRow("method", Markup.Escape(result.Method));
        table.AddRow("task", Markup.Escape(s.Task));
        table.AddRow("trainable parameters", string.Create(inv, $"{s.TrainableParameters:N0} of {s.TotalParameters:N0} ({100.0 * s.TrainableParameters / Math.Max(1, s.TotalParameters):F3}%)"));
        table.AddRow("steps", result.Training.Steps.Count.ToString(inv));
        table.AddRow("train time", string.Create(inv, $"{s.TrainSeconds:F1} s"));
        table.AddRow("tokens/s", string.Create(inv, $"{s.TokensPerSecond:F0}"));
        table.AddRow("peak memory", string.Create(inv, $"{s.PeakMemoryBytes / (1024.0 * 1024):F0} MiB"));
        table.AddRow(Markup.Escape($"{s.Metric} before → after"), string.Create(inv, $"{Fmt(s.Before)} → {Fmt(s.After)}"));
        if (result.Training.After is { } after)
        {
            table.AddRow("final evaluation", Markup.Escape(string.Join("  ", TrainingProgress.Describe(after))));
        }
        table.AddRow("output", Markup.Escape(result.OutputDirectory));
        foreach (var p in plots)
        {
            table.AddRow("plot", Markup.Escape(p));
        }
        AnsiConsole.Write(table);
        if (result.Examples.Count > 0 && result.Task != "classification")
        {
            var gen = new Table().Border(TableBorder.Simple).AddColumns("prompt", "greedy continuation before", "after");
            foreach (var e in result.Examples)
            {
                gen.AddRow(Markup.Escape(e.Text), Markup.Escape(e.Before), Markup.Escape(e.After));
            }
            AnsiConsole.Write(gen);
        }
        else if (result.Examples.Count > 0)
        {
            var ex = new Table().Border(TableBorder.Simple).AddColumns("validation sentence", "label", "before", "after");
            foreach (var e in result.Examples)
            {
                ex.AddRow(Markup.Escape(e.Text.Length > 70 ? e.Text[..67] + "..." : e.Text), Markup.Escape(e.Expected), Markup.Escape(e.Before), Markup.Escape(e.After));
            }
            AnsiConsole.Write(ex);
        }
    }

    private static string Fmt(double? v) => v is double d ? d.ToString("F4", CultureInfo.InvariantCulture) : "n/a";
}
