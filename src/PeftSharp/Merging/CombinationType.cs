namespace PeftSharp.Merging;

/// <summary>
/// How <see cref="AdapterMerging"/> combines LoRA adapters: PEFT's <c>combination_type</c> of
/// <c>LoraModel.add_weighted_adapter</c>. The plain kinds act on A and B separately (the weight split as
/// √|w·s| on each, the sign on A); the <c>…Svd</c> kinds act on the full ΔW of each adapter and factor the result by
/// a truncated SVD.
/// </summary>
public enum CombinationType
{
    /// <summary><c>svd</c> (PEFT's default): Σ w·s·ΔW, truncated SVD to <c>svd_rank</c>.</summary>
    Svd,

    /// <summary><c>linear</c>: A' = Σ ±√|w·s|·A, B' = Σ √|w·s|·B (equal ranks; the product has cross terms).</summary>
    Linear,

    /// <summary><c>cat</c>: A' = [w·s·A₁; w·s·A₂; …], B' = [B₁ B₂ …]; rank Σr, exactly Σ w·s·B·A.</summary>
    Cat,

    /// <summary><c>ties</c>: TIES (trim to density, elect sign, disjoint mean) on A and on B.</summary>
    Ties,

    /// <summary><c>ties_svd</c>: TIES on the ΔWs, then SVD.</summary>
    TiesSvd,

    /// <summary><c>dare_linear</c>: DARE (random drop, rescale 1/density) then weighted sum, on A and on B.</summary>
    DareLinear,

    /// <summary><c>dare_linear_svd</c>: DARE on the ΔWs, weighted sum, SVD.</summary>
    DareLinearSvd,

    /// <summary><c>dare_ties</c>: DARE drop, then TIES sign election and disjoint mean, on A and on B.</summary>
    DareTies,

    /// <summary><c>dare_ties_svd</c>: DARE + TIES on the ΔWs, then SVD.</summary>
    DareTiesSvd,

    /// <summary><c>magnitude_prune</c>: keep the top-density entries by |value|, weighted sum, on A and on B.</summary>
    MagnitudePrune,

    /// <summary><c>magnitude_prune_svd</c>: magnitude pruning on the ΔWs, weighted sum, SVD.</summary>
    MagnitudePruneSvd,
}

/// <summary>PEFT's spellings of <see cref="CombinationType"/> and what each kind needs.</summary>
public static class CombinationTypes
{
    private static readonly (CombinationType Type, string Name)[] s_names =
    [
        (CombinationType.Svd, "svd"),
        (CombinationType.Linear, "linear"),
        (CombinationType.Cat, "cat"),
        (CombinationType.Ties, "ties"),
        (CombinationType.TiesSvd, "ties_svd"),
        (CombinationType.DareLinear, "dare_linear"),
        (CombinationType.DareLinearSvd, "dare_linear_svd"),
        (CombinationType.DareTies, "dare_ties"),
        (CombinationType.DareTiesSvd, "dare_ties_svd"),
        (CombinationType.MagnitudePrune, "magnitude_prune"),
        (CombinationType.MagnitudePruneSvd, "magnitude_prune_svd"),
    ];

    /// <summary>Every PEFT spelling, in PEFT's documentation order.</summary>
    public static IReadOnlyList<string> PeftNames { get; } = s_names.Select(n => n.Name).ToArray();

    /// <summary>PEFT's name of a kind (<c>dare_ties_svd</c>).</summary>
    public static string PeftName(this CombinationType type) => s_names.First(n => n.Type == type).Name;

    /// <summary>Reads PEFT's spelling; an unknown name is a <see cref="PeftException"/> listing the valid ones.</summary>
    public static CombinationType Parse(string name)
    {
        foreach (var (type, peftName) in s_names)
        {
            if (string.Equals(peftName, name, StringComparison.Ordinal))
            {
                return type;
            }
        }
        throw new PeftException($"Invalid combination_type: '{name}'; expected one of {string.Join(", ", PeftNames)}");
    }

    /// <summary>True for the kinds that factor the combined ΔW by SVD (their names end in <c>svd</c>).</summary>
    public static bool IsSvd(this CombinationType type) => type is CombinationType.Svd or CombinationType.TiesSvd
        or CombinationType.DareLinearSvd or CombinationType.DareTiesSvd or CombinationType.MagnitudePruneSvd;

    /// <summary>True for the kinds that act on A and B separately and so need equal ranks.</summary>
    public static bool IsFactorWise(this CombinationType type) => type is CombinationType.Linear or CombinationType.Ties
        or CombinationType.DareLinear or CombinationType.DareTies or CombinationType.MagnitudePrune;

    /// <summary>True for the kinds that use <c>density</c> (all but svd, linear and cat).</summary>
    public static bool UsesDensity(this CombinationType type) => type is not (CombinationType.Svd or CombinationType.Linear or CombinationType.Cat);

    /// <summary>True for the DARE kinds, which draw random masks.</summary>
    public static bool IsRandom(this CombinationType type) => type is CombinationType.DareLinear or CombinationType.DareLinearSvd
        or CombinationType.DareTies or CombinationType.DareTiesSvd;

    /// <summary>The task-vector operation each kind applies (to A and B, or to the ΔWs).</summary>
    internal static TaskVectorOperation Operation(this CombinationType type) => type switch
    {
        CombinationType.Svd or CombinationType.Linear => TaskVectorOperation.TaskArithmetic,
        CombinationType.Ties or CombinationType.TiesSvd => TaskVectorOperation.Ties,
        CombinationType.DareLinear or CombinationType.DareLinearSvd => TaskVectorOperation.DareLinear,
        CombinationType.DareTies or CombinationType.DareTiesSvd => TaskVectorOperation.DareTies,
        CombinationType.MagnitudePrune or CombinationType.MagnitudePruneSvd => TaskVectorOperation.MagnitudePrune,
        _ => throw new PeftException($"combination_type '{type.PeftName()}' is not a task-vector operation"),
    };
}
