using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using PeftSharp.Cli.Rendering;
using PeftSharp.Tokenization;
using PeftSharp.Training.Jobs;

namespace PeftSharp.Cli.Commands;

/// <summary><c>peft eval --model DIR [--adapter DIR] --data FILE</c>: loss/perplexity, accuracy/macro-F1 or exact match.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face model folder.", Required = true };
        var adapters = new Option<DirectoryInfo[]>("--adapter") { Description = "PEFT adapter folder(s) to apply." };
        var merge = new Option<bool>("--merge") { Description = "Merge the adapters first." };
        var data = new Option<FileInfo>("--data") { Description = "Evaluation data (JSONL/CSV, as for train).", Required = true };
        var task = new Option<FineTuneTask?>("--task") { Description = "auto, classification, sft or lm." };
        var batch = new Option<int>("--batch-size") { Description = "Examples per batch.", DefaultValueFactory = _ => 16 };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example.", DefaultValueFactory = _ => 512 };
        var limit = new Option<int>("--limit") { Description = "Evaluate only the first N examples (0: all)." };
        var exact = new Option<bool>("--exact-match") { Description = "Generate greedy answers and score the final number (GSM8K)." };
        var rank = new Option<int?>("--rank") { Description = "Evaluate rank-nested adapters (DyLoRA) at rank b (1..r) instead of their full rank." };
        var json = new Option<bool>("--json") { Description = "Print the metrics as one JSON object." };
        var device = CommonOptions.Device();
        var cmd = new Command("eval", "Evaluate a model (with adapters) on a data file.") { model, adapters, merge, data, task, batch, maxLength, limit, exact, rank, json, device };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!.FullName;
            if (parse.GetValue(rank) is not null && parse.GetValue(merge))
            {
                throw new PeftException("--rank applies to unmerged adapters; drop --merge (merging fixes the rank)");
            }
            var (net, _) = ModelLoading.Load(dir, parse.GetValue(adapters) ?? [], parse.GetValue(merge), CommonOptions.ParseDevice(parse.GetValue(device)));
            using var __ = net;
            var result = EvalJob.Run(net, HfTokenizer.FromFolder(dir), parse.GetValue(data)!.FullName, new EvalOptions
            {
                Task = parse.GetValue(task) ?? FineTuneTask.Auto,
                BatchSize = parse.GetValue(batch),
                MaxLength = parse.GetValue(maxLength),
                Limit = parse.GetValue(limit),
                ExactMatch = parse.GetValue(exact),
                Rank = parse.GetValue(rank),
            });
            if (parse.GetValue(json))
            {
                var o = new JsonObject();
                if (result.Loss is double l)
                {
                    o["loss"] = l;
                }
                foreach (var (k, v) in result.Metrics)
                {
                    o[k] = v;
                }
                Console.WriteLine(o.ToJsonString(CliJson.Options));
            }
            else
            {
                Console.WriteLine(string.Join("  ", TrainingProgress.Describe(result)));
            }
            return 0;
        }));
        return cmd;
    }
}
