using PeftSharp.Compression;

namespace PeftSharp.Tests.Compression;

public class RankAllocationTests
{
    // Hand example: module a is 4×4 (8 parameters per rank), σ = 3, 2, 1 (energies 9, 4, 1);
    // module b is 2×2 (4 per rank), σ = 2, 1.5 (energies 4, 2.25). Rank 1 each costs 12.
    private static readonly RankCandidate[] s_modules =
    [
        new("a", [3, 2, 1], 8, 3),
        new("b", [2, 1.5], 4, 2),
    ];

    [Theory]
    // 12 left: a's second unit (energy 4, 8 params) beats b's (2.25); 4 left buys b's second.
    [InlineData(24, 2, 2)]
    // 8 left: a's second unit (4) first, nothing left.
    [InlineData(20, 2, 1)]
    // 4 left: a's unit does not fit, b's does.
    [InlineData(16, 1, 2)]
    // Only the minimum.
    [InlineData(12, 1, 1)]
    // Everything fits: both at their maximum, budget unspent.
    [InlineData(1000, 3, 2)]
    public void Budget_goes_to_the_largest_remaining_energy_that_fits(long budget, int rankA, int rankB)
    {
        var ranks = RankAllocation.Allocate(s_modules, budget);
        Assert.Equal([rankA, rankB], ranks);
        Assert.True(ranks[0] * 8 + ranks[1] * 4 <= budget);
    }

    [Fact]
    public void Max_rank_caps_a_module()
    {
        var capped = new[] { s_modules[0] with { MaxRank = 1 }, s_modules[1] };
        Assert.Equal([1, 2], RankAllocation.Allocate(capped, 1000));
    }

    [Fact]
    public void Zero_singular_values_are_never_bought()
    {
        var modules = new[] { new RankCandidate("z", [1, 0, 0], 2, 3) };
        Assert.Equal([1], RankAllocation.Allocate(modules, 100));
    }

    [Fact]
    public void Budget_below_rank_one_everywhere_is_an_error_naming_the_minimum()
    {
        var e = Assert.Throws<PeftException>(() => RankAllocation.Allocate(s_modules, 11));
        Assert.Contains("11", e.Message);
        Assert.Contains("12", e.Message);
    }
}
