using System.CommandLine;
using System.Globalization;
using PeftSharp.Compression;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft compress ADAPTER --rank K [--budget N] [--finetune-steps S --model M --data D] --out DIR</c>: post-hoc
/// LoRA-Squeeze. Writes a PEFT LoRA adapter at the lower rank(s); with fine-tuning steps, the compressed adapter is kept in
/// <c>DIR/compressed</c> and the fine-tuned one (plus the run's logs) in <c>DIR</c>.
/// </summary>
internal static class CompressCommand
{
    private static readonly string[] s_notForFineTuning =
        ["--method", "--rank", "--alpha", "--dropout", "--target-modules", "--max-steps", "--epochs", "--output", "--resume", "--full-finetune", "--head-only", "--method-option"];

    public static Command Create()
    {
        var adapter = new Argument<DirectoryInfo>("adapter") { Description = "The trained LoRA adapter folder (PEFT format)." };
        var rank = new Option<int?>("--rank", "-r") { Description = "Target rank of every module (with --budget: each module's largest rank)." };
        var budget = new Option<long?>("--budget") { Description = "Total LoRA parameters Σ k·(d_in + d_out), split over modules by singular-value energy." };
        var finetune = new Option<long>("--finetune-steps") { Description = "Optimizer steps of fine-tuning at the new rank (Cont-Squeeze; default 0: none)." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the compressed adapter to.", Required = true };
        var cmd = new Command("compress", "Compress a trained LoRA adapter to a lower rank (LoRA-Squeeze: truncated SVD of each ΔW from its factors), optionally fine-tuning it briefly.")
        {
            adapter, rank, budget, finetune, output,
        };
        var flags = new TrainFlags();
        flags.AddTo(cmd, except: s_notForFineTuning);
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var options = new CompressionOptions { Rank = parse.GetValue(rank), Budget = parse.GetValue(budget) };
            options.Validate();
            var steps = parse.GetValue(finetune);
            if (steps < 0)
            {
                throw new PeftException($"--finetune-steps must be >= 0, got {steps}");
            }
            var source = parse.GetValue(adapter)!.FullName;
            var outDir = parse.GetValue(output)!.FullName;
            using var compressed = LoraCompression.CompressFolder(source, options);
            foreach (var m in compressed.Modules)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{m.Module}: r {m.SourceRank} -> {m.TargetRank}, energy kept {m.RetainedEnergy:P2}, ||dW - dW'||_F {m.Error:G4}"));
            }
            var sourceParams = compressed.Modules.Sum(m => (long)m.SourceRank * (m.OutFeatures + m.InFeatures));
            var target = steps > 0 ? Path.Combine(outDir, "compressed") : outDir;
            compressed.Save(target);
            Console.WriteLine($"wrote {target}: LORA r={compressed.Config.Rank}" +
                (compressed.Config.RankPattern.Count > 0 ? $" (rank_pattern for {compressed.Config.RankPattern.Count} modules)" : "") +
                $", {compressed.Parameters} LoRA parameters (was {sourceParams})");
            if (steps == 0)
            {
                return 0;
            }
            var run = flags.Apply(parse, new FineTuneOptions()) with { InitAdapter = target, MaxSteps = steps, Output = outDir, Epochs = 1 };
            if (run.Model is null)
            {
                run = run with { Model = MergeAdaptersCommand.ResolveBaseModel(source) };
            }
            var result = FineTuneJob.Run(run, log: Console.WriteLine);
            Console.WriteLine($"fine-tuned {steps} steps at the new rank: eval {Describe(result.Training.Before)} -> {Describe(result.Training.After)}; wrote {outDir}");
            return 0;
        }));
        return cmd;
    }

    private static string Describe(PeftSharp.Training.EvaluationResult? r) =>
        r is null ? "n/a" : string.Join(" ", new[] { r.Loss is double l ? string.Create(CultureInfo.InvariantCulture, $"loss {l:F4}") : null }
            .Concat(r.Metrics.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}"))).Where(s => s is not null));
}
