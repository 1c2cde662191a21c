using System.CommandLine;
using System.Globalization;
using PeftSharp.Compression;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft compress ADAPTER --rank K [--budget N] [--svd exact|randomized] [--model M] [--finetune-steps S --data D] --out DIR</c>: post-hoc
/// LoRA-Squeeze (<see cref="CompressJob"/>). Writes a PEFT LoRA adapter at the lower rank(s), whatever the source method;
/// with fine-tuning steps, the compressed adapter is kept in <c>DIR/compressed</c> and the fine-tuned one (plus the run's
/// logs) in <c>DIR</c>.
/// </summary>
internal static class CompressCommand
{
    private static readonly string[] s_notForFineTuning =
        ["--method", "--rank", "--alpha", "--dropout", "--target-modules", "--max-steps", "--epochs", "--output", "--resume", "--full-finetune", "--head-only", "--method-option"];

    public static Command Create()
    {
        var adapter = new Argument<DirectoryInfo>("adapter") { Description = "The trained adapter folder (PEFT format; LoRA, or any method with a closed-form ΔW, then read on its base model: --model or base_model_name_or_path)." };
        var rank = new Option<int?>("--rank", "-r") { Description = "Target rank of every module (with --budget: each module's largest rank)." };
        var budget = new Option<long?>("--budget") { Description = "Total LoRA parameters Σ k·(d_in + d_out), split over modules by singular-value energy." };
        var svd = new Option<string>("--svd")
        {
            Description = "SVD of the dense route (non-LoRA, DoRA, PiSSA, OLoRA sources): exact (default) or randomized (Halko et al.; needs --rank without --budget; seeded by --seed).",
            DefaultValueFactory = _ => "exact",
        };
        svd.AcceptOnlyFromAmong("exact", "randomized");
        var finetune = new Option<long>("--finetune-steps") { Description = "Optimizer steps of fine-tuning at the new rank (Cont-Squeeze; default 0: none)." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the compressed adapter to.", Required = true };
        var cmd = new Command("compress", "Compress a trained adapter into a PEFT LoRA of lower rank (LoRA-Squeeze: truncated SVD of each module's ΔW), optionally fine-tuning it briefly.")
        {
            adapter, rank, budget, svd, finetune, output,
        };
        var flags = new TrainFlags();
        flags.AddTo(cmd, except: s_notForFineTuning);
        cmd.Options.First(o => o.Name == "--model").Description =
            "Base model folder, read for a non-LoRA (or DoRA, PiSSA, OLoRA) source and for fine-tuning (default: the adapter's base_model_name_or_path).";
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var training = flags.Apply(parse, new FineTuneOptions());
            var options = new CompressJobOptions
            {
                Adapter = parse.GetValue(adapter)!.FullName,
                Output = parse.GetValue(output)!.FullName,
                Compression = new CompressionOptions
                {
                    Rank = parse.GetValue(rank),
                    Budget = parse.GetValue(budget),
                    Svd = parse.GetValue(svd) == "randomized" ? SvdAlgorithm.Randomized : SvdAlgorithm.Exact,
                    Seed = training.Seed,
                },
                FineTuneSteps = parse.GetValue(finetune),
                Training = training,
            };
            var result = CompressJob.Run(options, onCompressed: Report, log: Console.WriteLine);
            if (result.FineTune is { } run)
            {
                Console.WriteLine($"fine-tuned {options.FineTuneSteps} steps at the new rank: eval {Describe(run.Training.Before)} -> {Describe(run.Training.After)}; wrote {run.OutputDirectory}");
            }
            return 0;
        }));
        return cmd;
    }

    private static void Report(CompressJobResult r)
    {
        foreach (var m in r.Modules)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{m.Module}: r {m.SourceRank} -> {m.TargetRank}, energy kept {m.RetainedEnergy:P2}, ||dW - dW'||_F {m.Error:G4}"));
        }
        Console.WriteLine($"wrote {r.CompressedDirectory}: LORA r={r.Config.Rank}" +
            (r.Config.RankPattern.Count > 0 ? $" (rank_pattern for {r.Config.RankPattern.Count} modules)" : "") +
            $", {r.Parameters} LoRA parameters (the source adapter had {r.SourceParameters} trainable parameters on these modules)");
    }

    private static string Describe(PeftSharp.Training.EvaluationResult? r) =>
        r is null ? "n/a" : string.Join(" ", new[] { r.Loss is double l ? string.Create(CultureInfo.InvariantCulture, $"loss {l:F4}") : null }
            .Concat(r.Metrics.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}"))).Where(s => s is not null));
}
