using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using PeftSharp.IO;
using PeftSharp.Training;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft compare --methods lora,dora,vera --seeds 1,2,3 --learning-rates 5e-4,1e-3,2e-3 [train flags]</c>: runs every
/// (method, learning rate, seed) on the same model, data and budget, each in its own <c>peft train</c> process so peak
/// memory is per run, then writes compare.md / compare.json: trainable parameters, peak memory, step time and the final
/// metric (mean ± std over seeds) at each method's best learning rate, plus the whole sweep.
/// </summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var methods = new Option<string>("--methods") { Description = "Comma-separated methods or presets (peft methods lists them).", Required = true };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated seeds.", DefaultValueFactory = _ => "1,2,3" };
        var lrs = new Option<string?>("--learning-rates") { Description = "Comma-separated learning rates swept per method (default: the run's --lr)." };
        var config = new Option<FileInfo?>("--config") { Description = "Base run options (JSON) shared by every run." };
        var selectOnFirstSeed = new Option<bool>("--select-on-first-seed") { Description = "Sweep the learning rates on the first seed only, then run the other seeds at each method's best rate there." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Folder for the runs and compare.md / compare.json.", Required = true };
        var flags = new TrainFlags();
        var cmd = new Command("compare", "Compare methods on the same model, data, budget and seeds (with a learning-rate sweep).") { methods, seeds, lrs, selectOnFirstSeed, config, output };
        flags.AddTo(cmd, except: ["--output", "--method", "--seed", "--learning-rate", "--resume"]);
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var baseOptions = parse.GetValue(config) is { } f ? TrainCommand.ReadConfig(f.FullName) : new FineTuneOptions();
            baseOptions = flags.Apply(parse, baseOptions) with { ShowExamples = 0 };
            var outDir = parse.GetValue(output)!.FullName;
            Directory.CreateDirectory(outDir);
            var methodList = Split(parse.GetValue(methods)!);
            var seedList = Split(parse.GetValue(seeds)!).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList();
            var lrList = parse.GetValue(lrs) is { } l ? Split(l).Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToList() : [baseOptions.LearningRate];
            foreach (var m in methodList)
            {
                _ = Core.MethodRegistry.Default.DefaultConfig(m);
            }
            var runs = new List<CompareRun>();
            var selectFirst = parse.GetValue(selectOnFirstSeed) && seedList.Count > 1 && lrList.Count > 1;
            var planned = methodList.Count * (selectFirst ? lrList.Count + seedList.Count - 1 : lrList.Count * seedList.Count);
            CompareRun Run(string method, double lr, int seed)
            {
                var name = string.Create(CultureInfo.InvariantCulture, $"{method}-lr{lr:G3}-s{seed}");
                var runDir = Path.Combine(outDir, name);
                var options = baseOptions with { Method = method, LearningRate = lr, Seed = seed, Output = runDir };
                Console.WriteLine($"[{runs.Count + 1}/{planned}] {name}");
                var run = RunOne(options, runDir);
                runs.Add(run);
                return run;
            }
            foreach (var method in methodList)
            {
                if (selectFirst)
                {
                    // Sweep the rates on the first seed, then run the other seeds at the rate that did best there.
                    var sweep = lrList.Select(lr => Run(method, lr, seedList[0])).Where(r => r.Summary?.After is not null).ToList();
                    if (sweep.Count == 0)
                    {
                        continue;
                    }
                    var best = CompareReport.Better(sweep[0].Summary!.Metric) ? sweep.MaxBy(r => r.Summary!.After!.Value)! : sweep.MinBy(r => r.Summary!.After!.Value)!;
                    foreach (var seed in seedList.Skip(1))
                    {
                        Run(method, best.LearningRate, seed);
                    }
                    continue;
                }
                foreach (var lr in lrList)
                {
                    foreach (var seed in seedList)
                    {
                        Run(method, lr, seed);
                    }
                }
            }
            var report = CompareReport.Build(runs);
            AtomicFile.WriteAllText(Path.Combine(outDir, "compare.md"), report.Markdown);
            AtomicFile.WriteAllText(Path.Combine(outDir, "compare.json"), JsonSerializer.Serialize(runs, CliJson.Options) + "\n");
            Console.WriteLine(report.Markdown);
            return 0;
        }));
        return cmd;
    }

    private static List<string> Split(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    // Each run is its own process: peak memory (VmHWM) is then the run's own, and a crash cannot take the sweep down.
    private static CompareRun RunOne(FineTuneOptions options, string runDir)
    {
        Directory.CreateDirectory(runDir);
        var configPath = Path.Combine(runDir, "compare_run.json");
        var optionsJson = JsonSerializer.Serialize(options);
        var summaryPath = Path.Combine(runDir, "summary.json");
        // A finished run with the same options is reused, so a stopped sweep restarts where it was.
        if (File.Exists(summaryPath) && File.Exists(configPath) && File.ReadAllText(configPath) == optionsJson)
        {
            var done = TrainingSummary.Load(summaryPath);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  reused: {done.Metric}: {done.Before:F4} -> {done.After:F4}"));
            return new CompareRun(options.Method, options.LearningRate, options.Seed, done, null);
        }
        if (File.Exists(summaryPath))
        {
            File.Delete(summaryPath);
        }
        AtomicFile.WriteAllText(configPath, optionsJson);
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
        {
            psi.ArgumentList.Add(typeof(CompareCommand).Assembly.Location);
        }
        foreach (var a in new[] { "train", "--config", configPath })
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        File.WriteAllText(Path.Combine(runDir, "train.log"), stdout.Result + stderr);
        if (p.ExitCode != 0 || !File.Exists(summaryPath))
        {
            Console.WriteLine($"  failed: {stderr.Trim()}");
            return new CompareRun(options.Method, options.LearningRate, options.Seed, null, stderr.Trim());
        }
        var summary = TrainingSummary.Load(summaryPath);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {summary.Metric}: {summary.Before:F4} -> {summary.After:F4}"));
        return new CompareRun(options.Method, options.LearningRate, options.Seed, summary, null);
    }
}

/// <summary>One run of a comparison.</summary>
internal sealed record CompareRun(
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("learning_rate")] double LearningRate,
    [property: JsonPropertyName("seed")] int Seed,
    [property: JsonPropertyName("summary")] TrainingSummary? Summary,
    [property: JsonPropertyName("error")] string? Error);

internal sealed record CompareReport(string Markdown)
{
    public static CompareReport Build(IReadOnlyList<CompareRun> runs)
    {
        var inv = CultureInfo.InvariantCulture;
        var ok = runs.Where(r => r.Summary?.After is not null).ToList();
        var metric = ok.FirstOrDefault()?.Summary!.Metric ?? "metric";
        var higherIsBetter = Better(metric);
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"| method | best lr | trainable params | peak memory (MiB) | s / step | {metric} before | {metric} after (mean ± std) | seeds |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var method in runs.Select(r => r.Method).Distinct())
        {
            var byLr = ok.Where(r => r.Method == method).GroupBy(r => r.LearningRate).ToList();
            if (byLr.Count == 0)
            {
                sb.AppendLine(inv, $"| {method} | – | – | – | – | – | failed: {runs.First(r => r.Method == method).Error} | 0 |");
                continue;
            }
            // Only rates run with every seed compete (with --select-on-first-seed, that is the rate chosen on the first seed).
            var most = byLr.Max(g => g.Count());
            byLr = byLr.Where(g => g.Count() == most).ToList();
            var best = higherIsBetter ? byLr.MaxBy(g => g.Average(r => r.Summary!.After!.Value))! : byLr.MinBy(g => g.Average(r => r.Summary!.After!.Value))!;
            var after = best.Select(r => r.Summary!.After!.Value).ToList();
            var s0 = best.First().Summary!;
            sb.AppendLine(inv, $"| {method} | {best.Key:G3} | {s0.TrainableParameters:N0} | {best.Average(r => r.Summary!.PeakMemoryBytes) / 1048576.0:F0} | {StepSeconds(best):F3} | {best.Average(r => r.Summary!.Before ?? double.NaN):F4} | {after.Average():F4} ± {Std(after):F4} | {after.Count} |");
        }
        sb.AppendLine();
        sb.AppendLine(inv, $"Learning-rate sweep ({metric} after training, mean ± std over seeds):");
        sb.AppendLine();
        sb.AppendLine("| method | lr | mean ± std | runs |");
        sb.AppendLine("|---|---|---|---|");
        foreach (var g in ok.GroupBy(r => (r.Method, r.LearningRate)))
        {
            var v = g.Select(r => r.Summary!.After!.Value).ToList();
            sb.AppendLine(inv, $"| {g.Key.Method} | {g.Key.LearningRate:G3} | {v.Average():F4} ± {Std(v):F4} | {v.Count} |");
        }
        return new CompareReport(sb.ToString());
    }

    /// <summary>True when a larger value of <paramref name="metric"/> is better (everything but a loss).</summary>
    public static bool Better(string metric) => metric != "loss";

    private static double StepSeconds(IEnumerable<CompareRun> runs) =>
        runs.Average(r => r.Summary!.TrainSeconds / Math.Max(1, StepsOf(r)));

    private static long StepsOf(CompareRun r) => r.Summary!.Steps;

    private static double Std(IReadOnlyList<double> v)
    {
        if (v.Count < 2)
        {
            return 0;
        }
        var mean = v.Average();
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1));
    }
}
