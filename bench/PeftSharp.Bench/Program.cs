using PeftSharp.Bench;

// Each benchmark is a subcommand; results go to docs/benchmarks.md with the exact command line.
return args.FirstOrDefault() switch
{
    GradientCheckpointingBench.Command => GradientCheckpointingBench.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: PeftSharp.Bench <benchmark> [options]");
    Console.Error.WriteLine($"  {GradientCheckpointingBench.Command}   peak RSS of one LoRA training step with and without per-layer checkpointing");
    return 2;
}
