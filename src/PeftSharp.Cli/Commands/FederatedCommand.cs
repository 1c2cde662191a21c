using System.CommandLine;
using System.Globalization;
using PeftSharp.Federated;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft federated simulate --clients K --rounds R --ranks 4,8,8,16 --split dirichlet:0.5 --aggregation all --output DIR
/// [--save-global DIR [--global-rank K]]</c>: federated LoRA fine-tuning simulated on one machine (FLoRA stacking vs FedIT
/// averaging vs zero-padding), optionally saving the final global adapter in PEFT's format.
/// </summary>
internal static class FederatedCommand
{
    public static Command Create()
    {
        var cmd = new Command("federated", "Federated LoRA fine-tuning (FLoRA stacking and its baselines).");
        cmd.Subcommands.Add(Simulate());
        return cmd;
    }

    private static Command Simulate()
    {
        var clients = new Option<int>("--clients") { Description = "Number of clients.", DefaultValueFactory = _ => 4 };
        var rounds = new Option<int>("--rounds") { Description = "Communication rounds.", DefaultValueFactory = _ => 3 };
        var ranks = new Option<string>("--ranks") { Description = "LoRA rank per client, comma-separated (one value: the same for all).", DefaultValueFactory = _ => "8" };
        var scale = new Option<double>("--lora-scale") { Description = "Every client's alpha/r (lora_alpha = scale·r_k; FLoRA's code uses 2).", DefaultValueFactory = _ => 2 };
        var data = new Option<FileInfo?>("--data") { Description = "Labelled training data (JSONL/CSV) split among the clients (default: bundled sentiment_sentences)." };
        var validation = new Option<FileInfo?>("--validation") { Description = "Held-out data for the global model (default: the bundled test set, or 10% of --data)." };
        var split = new Option<string>("--split") { Description = "dirichlet:α (non-IID label split) or iid.", DefaultValueFactory = _ => "dirichlet:0.5" };
        var aggregation = new Option<string>("--aggregation") { Description = "stack, avg, zeropad or all (comma-separated).", DefaultValueFactory = _ => "all" };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Base model folder (default: bundled all-MiniLM-L6-v2)." };
        var targets = new Option<string?>("--target-modules") { Description = "Comma-separated module names (default: PEFT's for the model type)." };
        var steps = new Option<int>("--steps") { Description = "Local optimizer steps per client and round.", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--batch-size") { Description = "Examples per batch.", DefaultValueFactory = _ => 16 };
        var lr = new Option<double>("--lr") { Description = "Local learning rate (AdamW, constant).", DefaultValueFactory = _ => 1e-3 };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example.", DefaultValueFactory = _ => 64 };
        var evalLimit = new Option<int>("--eval-limit") { Description = "Evaluate on the first N held-out examples (0: all)." };
        var seed = new Option<string>("--seed") { Description = "Seed, or comma-separated seeds (one full simulation each).", DefaultValueFactory = _ => "42" };
        var output = new Option<DirectoryInfo>("--output") { Description = "Folder for metrics.jsonl, results.md and split.json.", Required = true };
        var saveGlobal = new Option<DirectoryInfo?>("--save-global")
        {
            Description = "Write the final global model as a PEFT LoRA adapter for the original base (stack/zeropad: every round's update summed; avg: the last global adapter); several seeds or aggregations go to <aggregation>-seed<seed> subfolders.",
        };
        var globalRank = new Option<int?>("--global-rank") { Description = "Compress the saved global adapter to this rank (truncated SVD per module; the error is reported)." };
        var device = CommonOptions.Device();
        var cmd = new Command("simulate", "Simulate federated LoRA on one machine: per-client data shards, local training, server aggregation, per-round evaluation.")
        {
            clients, rounds, ranks, scale, data, validation, split, aggregation, model, targets, steps, batch, lr, maxLength, evalLimit, seed, output, saveGlobal, globalRank, device,
        };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var options = new FederatedOptions
            {
                Clients = parse.GetValue(clients),
                Rounds = parse.GetValue(rounds),
                Ranks = Integers(parse.GetValue(ranks)!, "--ranks"),
                LoraScale = parse.GetValue(scale),
                Data = parse.GetValue(data)?.FullName,
                Validation = parse.GetValue(validation)?.FullName,
                Split = parse.GetValue(split)!,
                Aggregations = AggregationKinds.Parse(parse.GetValue(aggregation)!),
                Model = parse.GetValue(model)?.FullName,
                TargetModules = parse.GetValue(targets)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                StepsPerClient = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                MaxLength = parse.GetValue(maxLength),
                MaxEvalExamples = parse.GetValue(evalLimit),
                Seeds = Integers(parse.GetValue(seed)!, "--seed"),
                Device = CommonOptions.ParseDevice(parse.GetValue(device)).ToString(),
                Output = parse.GetValue(output)!.FullName,
                SaveGlobal = parse.GetValue(saveGlobal)?.FullName,
                GlobalRank = parse.GetValue(globalRank),
            };
            var result = FederatedSimulation.Run(options, Console.WriteLine);
            Console.WriteLine();
            Console.Write(File.ReadAllText(Path.Combine(result.OutputDirectory, FederatedReport.MarkdownFile)));
            Console.WriteLine($"wrote {Path.Combine(result.OutputDirectory, FederatedReport.MetricsFile)}, {FederatedReport.MarkdownFile}, {FederatedReport.SplitFile}");
            foreach (var g in result.GlobalAdapters)
            {
                Console.WriteLine($"wrote the {g.Aggregation} global adapter (seed {g.Seed}, rank {g.Rank}) to {g.Directory}");
            }
            return 0;
        }));
        return cmd;
    }

    private static int[] Integers(string text, string flag)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var result = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out result[i]))
            {
                throw new PeftException($"{flag}: '{parts[i]}' is not an integer (give e.g. 4,8,8,16)");
            }
        }
        return parts.Length > 0 ? result : throw new PeftException($"{flag} is empty");
    }
}
