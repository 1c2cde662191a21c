using System.CommandLine;
using PeftSharp.Cli.Commands;

namespace PeftSharp.Cli;

/// <summary>The <c>peft</c> command line: parse, call the library, print. Errors become one line (stack with --verbose).</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("PeftSharp: parameter-efficient fine-tuning (LoRA and its variants) for .NET, with Hugging Face PEFT files.");
        root.Options.Add(CliErrors.Verbose);
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(MethodsCommand.Create());
        root.Subcommands.Add(ForwardCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(CompareCommand.Create());
        root.Subcommands.Add(MergeAdaptersCommand.Create());
        root.Subcommands.Add(FederatedCommand.Create());
        root.Subcommands.Add(CompressCommand.Create());
        root.Subcommands.Add(SoraPruneCommand.Create());
        return root.Parse(args).Invoke();
    }
}
