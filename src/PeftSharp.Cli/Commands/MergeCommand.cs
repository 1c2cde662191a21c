using System.CommandLine;
using PeftSharp.IO;
using TorchSharp;

namespace PeftSharp.Cli.Commands;

/// <summary><c>peft merge --model DIR --adapter DIR --out DIR</c>: fold adapters into the weights and write a plain HF model folder.</summary>
internal static class MergeCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Base Hugging Face model folder.", Required = true };
        var adapters = new Option<DirectoryInfo[]>("--adapter") { Description = "PEFT adapter folder(s) to merge.", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for the merged model (config.json + model.safetensors + tokenizer files).", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "float32, float16 or bfloat16.", DefaultValueFactory = _ => "float32" };
        var cmd = new Command("merge", "Merge adapters into the base weights and save a Hugging Face model folder that loads here and in transformers.") { model, adapters, output, dtype };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!.FullName;
            var type = parse.GetValue(dtype) switch
            {
                "float32" or "f32" => torch.ScalarType.Float32,
                "float16" or "f16" => torch.ScalarType.Float16,
                "bfloat16" or "bf16" => torch.ScalarType.BFloat16,
                var other => throw new PeftException($"--dtype must be float32, float16 or bfloat16, got '{other}'"),
            };
            var (merged, _) = ModelLoading.Load(dir, parse.GetValue(adapters)!, merge: true, torch.CPU);
            using var _ = merged;
            var outDir = parse.GetValue(output)!.FullName;
            HfModelWriter.Save(merged, outDir, dir, type);
            Console.WriteLine($"merged model written to {outDir}");
            return 0;
        }));
        return cmd;
    }
}
