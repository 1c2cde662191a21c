namespace PeftSharp.Compression;

/// <summary>One module as the budget allocation sees it: its ΔW singular values (descending), the parameters one rank unit costs, and its largest allowed rank.</summary>
public sealed record RankCandidate(string Module, IReadOnlyList<double> SingularValues, long CostPerRank, int MaxRank);

/// <summary>
/// Splits a global parameter budget over modules by singular-value energy (LoRA-Squeeze's "global budget" mode, our
/// rule): every module first gets rank 1; then, repeatedly, the next rank unit goes to the module whose next singular
/// value σ carries the most energy σ² among the modules whose unit (d_in + d_out parameters) still fits the budget and
/// whose rank is below its maximum (a unit with σ = 0 is never bought). Ties go to the earlier module. Each unit removes exactly σ² from the module's
/// ‖ΔW − ΔW'‖²_F (Eckart–Young), so this is the greedy choice for the total squared error.
/// </summary>
public static class RankAllocation
{
    /// <summary>The rank of each candidate (same order), Σ rank·cost ≤ <paramref name="budget"/>.</summary>
    public static int[] Allocate(IReadOnlyList<RankCandidate> candidates, long budget)
    {
        if (candidates.Count == 0)
        {
            throw new PeftException("rank allocation: the adapter has no modules to compress");
        }
        foreach (var c in candidates)
        {
            if (c.CostPerRank <= 0 || c.MaxRank < 1)
            {
                throw new PeftException($"rank allocation: module '{c.Module}' has cost {c.CostPerRank} per rank and maximum rank {c.MaxRank}; both must be positive");
            }
        }
        var minimum = candidates.Sum(c => c.CostPerRank);
        if (budget < minimum)
        {
            throw new PeftException(
                $"--budget {budget} is below the smallest LoRA this adapter can become: rank 1 in each of its {candidates.Count} modules costs {minimum} parameters");
        }
        var ranks = candidates.Select(_ => 1).ToArray();
        var remaining = budget - minimum;
        while (true)
        {
            var best = -1;
            var bestEnergy = double.NegativeInfinity;
            for (var i = 0; i < candidates.Count; i++)
            {
                var c = candidates[i];
                if (ranks[i] >= c.MaxRank || ranks[i] >= c.SingularValues.Count || c.CostPerRank > remaining)
                {
                    continue;
                }
                var sigma = c.SingularValues[ranks[i]];
                var energy = sigma * sigma;
                // A zero singular value buys nothing; its parameters are better left unspent.
                if (energy > 0 && energy > bestEnergy)
                {
                    best = i;
                    bestEnergy = energy;
                }
            }
            if (best < 0)
            {
                return ranks;
            }
            ranks[best]++;
            remaining -= candidates[best].CostPerRank;
        }
    }
}
