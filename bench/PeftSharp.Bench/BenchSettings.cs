using TorchSharp;

namespace PeftSharp.Bench;

/// <summary>
/// The budget of one run, identical for every model so that ratios compare like with like: batch, sequence length,
/// warm-up and measured repetitions (medians are reported), torch threads, and which models take part.
/// </summary>
internal sealed record BenchSettings
{
    public const string Usage =
        "options (defaults in brackets):\n" +
        "  --batch N            sequences per step, every model [1]\n" +
        "  --seq N              tokens per sequence, every model [512]\n" +
        "  --warmup N           untimed steps/calls before measuring [1]\n" +
        "  --repeats N          timed steps/calls; medians are reported [5]\n" +
        "  --threads N          torch intra-op threads, 0 = torch's default [0]\n" +
        "  --models a,b         subset of minilm,stories260k,llama100m [all]\n" +
        "  --gen-tokens N       new tokens per generation call [64]\n" +
        "  --load-size S        synthetic checkpoint of load-memory: 500m, or 50m for a quick check [500m]";

    public int Batch { get; init; } = 1;

    public int SequenceLength { get; init; } = 512;

    public int Warmup { get; init; } = 1;

    public int Repeats { get; init; } = 5;

    public int Threads { get; init; }

    public IReadOnlyList<string> Models { get; init; } = BenchModels.Keys;

    public int GenerationTokens { get; init; } = 64;

    public string LoadSize { get; init; } = "500m";

    public static BenchSettings From(BenchArgs args)
    {
        var s = new BenchSettings
        {
            Batch = args.Int("batch", 1),
            SequenceLength = args.Int("seq", 512),
            Warmup = args.Int("warmup", 1),
            Repeats = args.Int("repeats", 5),
            Threads = args.Int("threads", 0),
            GenerationTokens = args.Int("gen-tokens", 64),
            LoadSize = args.Get("load-size") ?? "500m",
        };
        if (args.Get("models") is string models)
        {
            var keys = models.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var k in keys)
            {
                BenchModels.Get(k);
            }
            s = s with { Models = keys };
        }
        if (s.Batch < 1 || s.SequenceLength < 2 || s.Warmup < 0 || s.Repeats < 1 || s.Threads < 0 || s.GenerationTokens < 1)
        {
            throw new BenchException($"invalid settings: {s}");
        }
        return s;
    }

    /// <summary>The options a child process needs to run under the same settings.</summary>
    public IEnumerable<string> ToArgv() =>
    [
        "--batch", Batch.ToString(), "--seq", SequenceLength.ToString(), "--warmup", Warmup.ToString(),
        "--repeats", Repeats.ToString(), "--threads", Threads.ToString(), "--gen-tokens", GenerationTokens.ToString(),
        "--load-size", LoadSize,
    ];

    public void ApplyThreads()
    {
        if (Threads > 0)
        {
            torch.set_num_threads(Threads);
        }
    }

    public override string ToString() =>
        $"batch {Batch}, sequence length {SequenceLength}, warm-up {Warmup}, repeats {Repeats} (medians), torch threads {torch.get_num_threads()}";
}
