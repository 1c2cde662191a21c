namespace PeftSharp.Federated;

/// <summary>How the server combines the clients' LoRA factors.</summary>
public enum AggregationKind
{
    /// <summary>
    /// FLoRA stacking (arXiv 2409.05976): A = [p₁s₁A₁; p₂s₂A₂; …], B = [B₁ B₂ …], so B·A = Σ p_k s_k B_k A_k exactly, with
    /// rank Σr_k; heterogeneous ranks need nothing special.
    /// </summary>
    Stack,

    /// <summary>
    /// FedIT / FedAvg: A = Σ p_k A_k, B = Σ p_k B_k, so B·A = Σ p_k² B_kA_k + Σ_{k≠l} p_k p_l B_kA_l (FLoRA's "aggregation
    /// noise"). All clients must have the same rank.
    /// </summary>
    Average,

    /// <summary>Heterogeneous-rank FedAvg: every A_k (rows) and B_k (columns) zero-padded to the largest rank, then averaged.</summary>
    ZeroPad,
}

/// <summary>The CLI/JSON names of <see cref="AggregationKind"/>: <c>stack</c>, <c>avg</c>, <c>zeropad</c>.</summary>
public static class AggregationKinds
{
    public static IReadOnlyList<AggregationKind> All { get; } = [AggregationKind.Stack, AggregationKind.Average, AggregationKind.ZeroPad];

    public static string Name(this AggregationKind kind) => kind switch
    {
        AggregationKind.Stack => "stack",
        AggregationKind.Average => "avg",
        _ => "zeropad",
    };

    /// <summary>Parses <c>stack</c>, <c>avg</c>, <c>zeropad</c> or <c>all</c> (every kind), comma-separated.</summary>
    public static IReadOnlyList<AggregationKind> Parse(string text)
    {
        var result = new List<AggregationKind>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "all")
            {
                result.AddRange(All);
                continue;
            }
            var kind = All.Where(k => k.Name() == part).Select(k => (AggregationKind?)k).FirstOrDefault()
                ?? throw new PeftException($"aggregation '{part}' is not one of stack, avg, zeropad, all");
            result.Add(kind);
        }
        if (result.Count == 0)
        {
            throw new PeftException("no aggregation given; use stack, avg, zeropad or all");
        }
        return result.Distinct().ToList();
    }
}
