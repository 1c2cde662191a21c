using System.CommandLine;
using PeftSharp.Methods.Sora;

namespace PeftSharp.Cli.Commands;

/// <summary><c>peft sora-prune --adapter DIR --out DIR</c>: a trained SoRA adapter → a standard PEFT LoRA of the surviving rank.</summary>
internal static class SoraPruneCommand
{
    public static Command Create()
    {
        var adapter = new Option<DirectoryInfo>("--adapter") { Description = "SoRA adapter folder (peft_type SORA).", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for the pruned LoRA adapter.", Required = true };
        var cmd = new Command("sora-prune", "Drop the zero gates of a SoRA adapter and write a plain PEFT LoRA adapter with the same outputs.") { adapter, output };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var outDir = parse.GetValue(output)!.FullName;
            using var pruned = SoraPruning.PruneFolder(parse.GetValue(adapter)!.FullName, outDir);
            var ranks = pruned.Ranks.Values.ToList();
            Console.WriteLine($"LoRA adapter written to {outDir}: {pruned.ZeroShare:P1} of gates were zero; ranks per module {ranks.Min()}..{ranks.Max()} (r = {pruned.Config.Rank})");
            return 0;
        }));
        return cmd;
    }
}
