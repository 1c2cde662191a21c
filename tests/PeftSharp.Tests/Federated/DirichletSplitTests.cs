using PeftSharp.Core;
using PeftSharp.Federated;

namespace PeftSharp.Tests.Federated;

public class DirichletSplitTests
{
    private static int[] Labels(int perClass, int classes) => Enumerable.Range(0, perClass * classes).Select(i => i % classes).ToArray();

    [Fact]
    public void Every_example_goes_to_exactly_one_client()
    {
        var labels = Labels(250, 4);
        var shards = DirichletSplit.Split(labels, 4, 5, 0.5, seed: 7);
        var all = shards.SelectMany(s => s.Indices).Order().ToList();
        Assert.Equal(Enumerable.Range(0, labels.Length), all);
        for (var c = 0; c < 4; c++)
        {
            Assert.Equal(250, shards.Sum(s => s.LabelCounts[c]));
        }
        Assert.All(shards, s => Assert.Equal(s.Indices.Count, s.LabelCounts.Sum()));
        Assert.All(shards, s => Assert.All(s.Indices, i => Assert.True(s.LabelCounts[labels[i]] > 0)));
    }

    [Fact]
    public void The_same_seed_gives_the_same_split_and_another_seed_a_different_one()
    {
        var labels = Labels(200, 2);
        var a = DirichletSplit.Split(labels, 2, 4, 0.5, seed: 1);
        var b = DirichletSplit.Split(labels, 2, 4, 0.5, seed: 1);
        var c = DirichletSplit.Split(labels, 2, 4, 0.5, seed: 2);
        Assert.Equal(a.Select(s => s.Indices), b.Select(s => s.Indices));
        Assert.NotEqual(a.Select(s => s.Indices.Count), c.Select(s => s.Indices.Count));
    }

    // Share of a client's examples in its most common class, averaged over clients.
    private static double MeanDominantShare(IReadOnlyList<ClientShard> shards) =>
        shards.Average(s => s.LabelCounts.Max() / (double)s.Indices.Count);

    [Fact]
    public void Small_alpha_concentrates_each_client_on_few_classes_and_large_alpha_is_near_uniform()
    {
        var labels = Labels(500, 4);
        // At α = 0.1 some seeds leave a client empty (an error by design); average over the seeds that do not.
        var shares = new List<double>();
        for (var seed = 0; seed < 10; seed++)
        {
            try
            {
                shares.Add(MeanDominantShare(DirichletSplit.Split(labels, 4, 4, 0.1, seed)));
            }
            catch (PeftException)
            {
            }
        }
        Assert.True(shares.Count >= 3);
        var skewed = shares.Average();
        var even = Enumerable.Range(0, 5).Average(s => MeanDominantShare(DirichletSplit.Split(labels, 4, 4, 1000, s)));
        Assert.True(skewed > 0.7, $"α=0.1 dominant share {skewed}");
        Assert.InRange(even, 0.25, 0.30);
    }

    [Fact]
    public void A_client_left_empty_is_an_error_naming_the_client_and_the_remedy()
    {
        // Two examples for eight clients: at least six are empty whatever the draw.
        var e = Assert.Throws<PeftException>(() => DirichletSplit.Split([0, 1], 2, 8, 0.5, seed: 3));
        Assert.Contains("received no examples", e.Message);
        Assert.Contains("raise α", e.Message);
    }

    [Fact]
    public void Split_specs_parse_and_bad_ones_are_rejected()
    {
        Assert.Equal(0.5, DirichletSplit.ParseSpec("dirichlet:0.5"));
        Assert.Null(DirichletSplit.ParseSpec("iid"));
        Assert.Throws<PeftException>(() => DirichletSplit.ParseSpec("dirichlet:-1"));
        Assert.Throws<PeftException>(() => DirichletSplit.ParseSpec("label-skew"));
    }

    [Fact]
    public void Iid_split_deals_sizes_that_differ_by_at_most_one()
    {
        var shards = DirichletSplit.Iid(Labels(25, 2), 2, 4, seed: 5);
        Assert.Equal(50, shards.Sum(s => s.Indices.Count));
        Assert.True(shards.Max(s => s.Indices.Count) - shards.Min(s => s.Indices.Count) <= 1);
    }
}
