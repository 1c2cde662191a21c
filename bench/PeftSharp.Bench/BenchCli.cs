using System.Diagnostics;
using System.Text.Json;

namespace PeftSharp.Bench;

/// <summary>Parses the command line, runs a subcommand (or <c>all</c>), prints and optionally writes the report.</summary>
internal static class BenchCli
{
    public const string ChildVerb = "__child";

    public static int Run(string[] argv, IReadOnlyList<BenchCommand> commands)
    {
        if (argv.Length == 0 || argv[0] is "-h" or "--help" or "help")
        {
            PrintUsage(commands);
            return argv.Length == 0 ? 1 : 0;
        }
        try
        {
            if (argv[0] == ChildVerb)
            {
                return RunChild(argv, commands);
            }
            var named = commands.FirstOrDefault(c => c.Name == argv[0]);
            if (named?.Raw is not null)
            {
                return named.Raw(argv[1..]);
            }
            var args = BenchArgs.Parse(argv.Skip(1));
            var selected = argv[0] == "all"
                ? commands.Where(c => c.InAll && c.Run is not null).ToList()
                : [named ?? throw new BenchException($"unknown subcommand '{argv[0]}'; run with --help")];
            var context = new BenchContext(BenchSettings.From(args), args, "dotnet run -c Release --project bench/PeftSharp.Bench -- " + string.Join(' ', argv));
            context.Settings.ApplyThreads();
            var total = Stopwatch.StartNew();
            foreach (var command in selected)
            {
                var sw = Stopwatch.StartNew();
                Console.Error.WriteLine($"[bench] {command.Name} ...");
                command.Run!(context);
                Console.Error.WriteLine($"[bench] {command.Name} done in {sw.Elapsed.TotalSeconds:F0} s");
            }
            context.Report.WallClock = total.Elapsed;
            var markdown = context.Report.Render(context);
            Console.WriteLine(markdown);
            if (args.Get("out") is string outPath)
            {
                File.WriteAllText(outPath, markdown);
            }
            if (args.Get("doc") is string docPath)
            {
                Report.ReplaceGeneratedBlock(docPath, markdown);
                Console.Error.WriteLine($"[bench] updated the generated block of {docPath}");
            }
            return 0;
        }
        catch (Exception e) when (e is BenchException or PeftException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    private static int RunChild(string[] argv, IReadOnlyList<BenchCommand> commands)
    {
        if (argv.Length < 2)
        {
            throw new BenchException($"{ChildVerb} needs a command name");
        }
        var command = commands.FirstOrDefault(c => c.Name == argv[1] && c.Child is not null)
            ?? throw new BenchException($"{ChildVerb}: no child entry for '{argv[1]}'");
        var args = BenchArgs.Parse(argv.Skip(2));
        BenchSettings.From(args).ApplyThreads();
        var result = command.Child!(args);
        Console.WriteLine(ChildProcess.ResultMarker + JsonSerializer.Serialize(result, result.GetType(), ChildProcess.Json));
        return 0;
    }

    private static void PrintUsage(IReadOnlyList<BenchCommand> commands)
    {
        Console.WriteLine("usage: dotnet run -c Release --project bench/PeftSharp.Bench -- <command> [options]");
        Console.WriteLine();
        Console.WriteLine("  all                      every command below marked (all), one report");
        foreach (var c in commands)
        {
            Console.WriteLine($"  {c.Name,-24} {c.Description}{(c.InAll ? " (all)" : "")}");
        }
        Console.WriteLine();
        Console.WriteLine(BenchSettings.Usage);
        Console.WriteLine("  --out FILE           also write the report to FILE");
        Console.WriteLine("  --doc FILE           replace the generated block of FILE (docs/benchmarks.md) with the report");
    }
}

/// <summary>A usage or harness error: printed as one line, exit code 2.</summary>
internal sealed class BenchException(string message) : Exception(message);
