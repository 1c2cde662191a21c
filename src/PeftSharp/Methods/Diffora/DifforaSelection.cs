namespace PeftSharp.Methods.Diffora;

/// <summary>One candidate module at discretisation: its qualified name, γ = sigmoid(ω) and the LoRA parameters it would keep.</summary>
public sealed record DifforaCandidate(string Name, double Gate, long LoraParameters);

/// <summary>The discretised differential adaptation matrix: the kept modules (model order) and every candidate's γ.</summary>
public sealed record DifforaSelection(IReadOnlyList<string> Selected, IReadOnlyList<DifforaCandidate> Candidates)
{
    /// <summary>
    /// Discretisation: rank the candidates by γ (descending; ties keep model order) and keep the top K. With
    /// <paramref name="budgetUnit"/> <c>modules</c>, K = max(1, round(ρ·N)) (halves round away from zero); with
    /// <c>parameters</c>, K is the longest prefix of the ranking whose LoRA parameters sum to at most ρ × the total
    /// (at least 1). The kept names are returned in model order.
    /// </summary>
    public static DifforaSelection TopK(IReadOnlyList<DifforaCandidate> candidates, double ratio, string budgetUnit)
    {
        if (candidates.Count == 0)
        {
            throw new PeftException("DiffoRA: no candidate modules to select from");
        }
        var ranked = candidates.Select((c, i) => (c, i)).OrderByDescending(x => x.c.Gate).ThenBy(x => x.i).ToList();
        int k;
        if (budgetUnit == "parameters")
        {
            var budget = ratio * candidates.Sum(c => (double)c.LoraParameters);
            double used = 0;
            k = 0;
            while (k < ranked.Count && used + ranked[k].c.LoraParameters <= budget)
            {
                used += ranked[k].c.LoraParameters;
                k++;
            }
        }
        else
        {
            k = (int)Math.Round(ratio * candidates.Count, MidpointRounding.AwayFromZero);
        }
        k = Math.Clamp(k, 1, candidates.Count);
        var kept = ranked.Take(k).Select(x => x.i).Order().Select(i => candidates[i].Name).ToList();
        return new DifforaSelection(kept, candidates);
    }
}
