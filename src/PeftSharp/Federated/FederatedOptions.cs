using PeftSharp.Core;

namespace PeftSharp.Federated;

/// <summary>
/// A one-machine federated fine-tuning simulation (<c>peft federated simulate</c>): K clients, each holding its own
/// shard of a labelled dataset, train LoRA adapters locally for a few steps per round; the server aggregates with each
/// of <see cref="Aggregations"/> and the global model is evaluated on the held-out set after every round. Defaults: the
/// bundled all-MiniLM-L6-v2 with a classification head on the bundled sentiment sentences.
/// </summary>
public sealed record FederatedOptions
{
    /// <summary>Base model folder; null = the bundled all-MiniLM-L6-v2.</summary>
    public string? Model { get; init; }

    /// <summary>Training file (classification JSONL/CSV) that is split among the clients; null = bundled sentiment_sentences/train.jsonl.</summary>
    public string? Data { get; init; }

    /// <summary>Held-out file for the global evaluation; null = bundled sentiment test set (default data) or 10% of <see cref="Data"/>.</summary>
    public string? Validation { get; init; }

    public int Clients { get; init; } = 4;

    public int Rounds { get; init; } = 3;

    /// <summary>LoRA rank per client (one value for all, or one per client); FLoRA's heterogeneous setting gives each client its own.</summary>
    public IReadOnlyList<int> Ranks { get; init; } = [8];

    /// <summary>Each client's lora_alpha is <c>LoraScale · r_k</c>, so every client has scale s = alpha/r = LoraScale (FLoRA's code: α_k = 2 r_k).</summary>
    public double LoraScale { get; init; } = 2;

    public double Dropout { get; init; } = 0.05;

    /// <summary>Modules to adapt; null = PEFT's defaults for the model type (BERT query/value, Llama q/v).</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }

    /// <summary><c>dirichlet:α</c> (non-IID label split, α &gt; 0) or <c>iid</c>.</summary>
    public string Split { get; init; } = "dirichlet:0.5";

    public IReadOnlyList<AggregationKind> Aggregations { get; init; } = AggregationKinds.All;

    /// <summary>Optimizer steps each client takes per round (FLoRA: one local epoch; here a fixed budget).</summary>
    public int StepsPerClient { get; init; } = 20;

    public int BatchSize { get; init; } = 16;

    public double LearningRate { get; init; } = 1e-3;

    public int MaxLength { get; init; } = 64;

    /// <summary>Evaluate on at most this many held-out examples (the first ones); 0 = all.</summary>
    public int MaxEvalExamples { get; init; }

    /// <summary>One full simulation per seed: the seed drives the split, the head's init, client inits and data order.</summary>
    public IReadOnlyList<int> Seeds { get; init; } = [42];

    public string Device { get; init; } = "cpu";

    /// <summary>Output folder for metrics.jsonl, results.md and split.json; required.</summary>
    public string? Output { get; init; }

    /// <summary>
    /// Folder for the final global adapter in PEFT's LoRA format, for the original base model (null: not saved). With
    /// several seeds or aggregations each goes to a <c>&lt;aggregation&gt;-seed&lt;seed&gt;</c> subfolder. CLI: <c>--save-global</c>.
    /// </summary>
    public string? SaveGlobal { get; init; }

    /// <summary>
    /// Compress the saved global adapter to this rank (best rank-k approximation per module, post-hoc LoRA-Squeeze);
    /// null keeps the exact rank <see cref="GlobalAdapterRank"/>. Needs <see cref="SaveGlobal"/>. CLI: <c>--global-rank</c>.
    /// </summary>
    public int? GlobalRank { get; init; }

    /// <summary>Rank of client k (<see cref="Ranks"/> has one entry, or one per client).</summary>
    public int RankOf(int client) => Ranks.Count == 1 ? Ranks[0] : Ranks[client];

    /// <summary>
    /// Rank of the saved (uncompressed) global adapter: Σr_k·rounds for stacking and r_max·rounds for zero-padding (every
    /// round's merged update, concatenated), the clients' common r for FedIT averaging (its last global adapter).
    /// </summary>
    public int GlobalAdapterRank(AggregationKind kind)
    {
        var ranks = Enumerable.Range(0, Clients).Select(RankOf).ToList();
        return kind switch
        {
            AggregationKind.Stack => ranks.Sum() * Rounds,
            AggregationKind.ZeroPad => ranks.Max() * Rounds,
            _ => ranks[0],
        };
    }

    /// <summary>Rejects impossible settings, naming the option.</summary>
    public void Validate()
    {
        if (Clients < 1 || Rounds < 1 || StepsPerClient < 1 || BatchSize < 1 || MaxLength < 2 || !(LearningRate > 0) || !(LoraScale > 0))
        {
            throw new ConfigException($"clients, rounds, steps, batch size, max length, learning rate and LoRA scale must be positive (got clients={Clients}, rounds={Rounds}, steps={StepsPerClient}, batch={BatchSize}, max_length={MaxLength}, lr={LearningRate}, scale={LoraScale})");
        }
        if (Ranks.Count != 1 && Ranks.Count != Clients)
        {
            throw new ConfigException($"--ranks has {Ranks.Count} values for {Clients} clients; give one rank, or one per client");
        }
        if (Ranks.Any(r => r < 1))
        {
            throw new ConfigException($"ranks must be ≥ 1, got {string.Join(",", Ranks)}");
        }
        if (Dropout is < 0 or >= 1)
        {
            throw new ConfigException($"dropout must be in [0, 1), got {Dropout}");
        }
        if (Seeds.Count == 0 || Aggregations.Count == 0)
        {
            throw new ConfigException("at least one seed and one aggregation are needed");
        }
        if (GlobalRank is not null && SaveGlobal is null)
        {
            throw new ConfigException("--global-rank compresses the saved global adapter; give --save-global DIR too");
        }
        if (GlobalRank is < 1)
        {
            throw new ConfigException($"--global-rank must be >= 1, got {GlobalRank}");
        }
        if (Output is null)
        {
            throw new ConfigException("an output folder is required");
        }
        DirichletSplit.ParseSpec(Split);
    }
}
