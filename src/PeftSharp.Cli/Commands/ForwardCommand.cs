using System.CommandLine;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft forward --model DIR [--adapter DIR]... [--merge] --input-ids FILE.json --output FILE.safetensors</c>: runs the
/// model on given token ids and writes the logits (F32, key <c>logits</c>). The parity interface with Python: keep it stable.
/// </summary>
internal static class ForwardCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face model folder (config.json + model.safetensors).", Required = true };
        var adapters = new Option<DirectoryInfo[]>("--adapter") { Description = "PEFT adapter folder; repeat to stack several (all active).", AllowMultipleArgumentsPerToken = false };
        var merge = new Option<bool>("--merge") { Description = "Merge the adapters into the weights (merge_and_unload) before the forward." };
        var input = new Option<FileInfo>("--input-ids") { Description = "JSON {\"input_ids\": [[...]], \"attention_mask\": [[...]], \"token_type_ids\": [[...]]}; mask and types optional.", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write the logits (safetensors, F32, key 'logits').", Required = true };
        var device = CommonOptions.Device();
        var cmd = new Command("forward", "Run a model (optionally with adapters) on token ids and save its logits, for parity checks with transformers + PEFT.")
        {
            model, adapters, merge, input, output, device,
        };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var dev = CommonOptions.ParseDevice(parse.GetValue(device));
            var (ids, mask, types) = ReadInputs(parse.GetValue(input)!.FullName, dev);
            var (run, _) = ModelLoading.Load(parse.GetValue(model)!.FullName, parse.GetValue(adapters) ?? [], parse.GetValue(merge), dev);
            using var net = run;
            using var _ = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            var logits = run.Forward(ids, mask, types).Logits.to(ScalarType.Float32).cpu().contiguous();
            SafetensorsWriter.Save(parse.GetValue(output)!.FullName, [KeyValuePair.Create("logits", logits)], new Dictionary<string, string> { ["format"] = "pt" });
            return 0;
        }));
        return cmd;
    }

    /// <summary>Reads the parity input file; keys other than input_ids / attention_mask / token_type_ids are ignored.</summary>
    internal static (Tensor Ids, Tensor? Mask, Tensor? Types) ReadInputs(string path, Device device)
    {
        var json = JsonFiles.ReadObject(path);
        var ids = Matrix(json, "input_ids", path, required: true)!;
        var mask = Matrix(json, "attention_mask", path, required: false);
        var types = Matrix(json, "token_type_ids", path, required: false);
        foreach (var (name, t) in new[] { ("attention_mask", mask), ("token_type_ids", types) })
        {
            if (t is not null && !t.shape.SequenceEqual(ids.shape))
            {
                throw new ConfigException($"{path}: {name} is [{string.Join(", ", t.shape)}] but input_ids is [{string.Join(", ", ids.shape)}]");
            }
        }
        return (ids.to(device), mask?.to(device), types?.to(device));
    }

    private static Tensor? Matrix(JsonObject json, string key, string path, bool required)
    {
        if (json[key] is not JsonArray rows || rows.Count == 0)
        {
            return required || json[key] is not null and not JsonArray ? throw new ConfigException($"{path}: \"{key}\" must be a non-empty list of lists of integers") : null;
        }
        var data = new List<long[]>();
        foreach (var row in rows)
        {
            if (row is not JsonArray r || r.Count == 0)
            {
                throw new ConfigException($"{path}: \"{key}\" must be a list of non-empty lists of integers");
            }
            try
            {
                data.Add(r.Select(v => v!.GetValue<long>()).ToArray());
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new ConfigException($"{path}: \"{key}\" row {data.Count} holds a value that is not an integer");
            }
            if (data[^1].Length != data[0].Length)
            {
                throw new ConfigException($"{path}: \"{key}\" rows have different lengths ({data[0].Length} and {data[^1].Length})");
            }
        }
        return torch.tensor(data.SelectMany(r => r).ToArray(), [data.Count, data[0].Length], ScalarType.Int64);
    }
}
