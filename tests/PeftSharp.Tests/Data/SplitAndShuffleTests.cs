using PeftSharp.Data;

namespace PeftSharp.Tests.Data;

/// <summary>Seeded shuffles and splits: reproducible, the documented Fisher–Yates, disjoint and complete.</summary>
public sealed class SplitAndShuffleTests
{
    [Fact]
    public void Permutation_is_Durstenfeld_Fisher_Yates_over_System_Random()
    {
        // Written out from the definition: walk i down from n-1, swap with Next(i + 1).
        var random = new Random(1234);
        var expected = Enumerable.Range(0, 50).ToArray();
        for (int i = expected.Length - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (expected[i], expected[j]) = (expected[j], expected[i]);
        }
        Assert.Equal(expected, SeededShuffle.Permutation(50, 1234));
    }

    [Fact]
    public void Same_seed_same_order_other_seed_other_order()
    {
        var items = Enumerable.Range(0, 100).Select(i => $"row{i}").ToList();
        var a = SeededShuffle.Shuffle(items, 7);
        var b = SeededShuffle.Shuffle(items, 7);
        var c = SeededShuffle.Shuffle(items, 8);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(items, a);
        Assert.Equal(items.Order(), a.Order());
        Assert.Equal("row0", items[0]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Tiny_permutations_are_identity(int n) => Assert.Equal(Enumerable.Range(0, n), SeededShuffle.Permutation(n, 3));

    [Fact]
    public void Split_is_seeded_disjoint_complete_and_keeps_file_order()
    {
        var data = DataReader.Read(DataTestFiles.Shared("sentiment_sentences", "train.jsonl"));
        var split = DataSplits.Split(data, 0.1, seed: 5);
        Assert.Equal(240, split.Validation!.Count);
        Assert.Equal(2160, split.Train.Count);
        var trainLines = split.Train.Examples.Select(e => e.Line).ToList();
        var validationLines = split.Validation.Examples.Select(e => e.Line).ToList();
        Assert.Empty(trainLines.Intersect(validationLines));
        Assert.Equal(Enumerable.Range(1, 2400), trainLines.Concat(validationLines).Order());
        Assert.Equal(trainLines.Order(), trainLines);
        Assert.Equal(validationLines.Order(), validationLines);
        // Validation = the first 240 of the seed-5 permutation (1-based lines).
        Assert.Equal(SeededShuffle.Permutation(2400, 5).Take(240).Select(i => i + 1).Order(), validationLines);
        Assert.Equal(validationLines, DataSplits.Split(data, 0.1, seed: 5).Validation!.Examples.Select(e => e.Line));
        Assert.NotEqual(validationLines, DataSplits.Split(data, 0.1, seed: 6).Validation!.Examples.Select(e => e.Line));
        Assert.Equal(data.Labels, split.Validation.Labels);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void Split_fraction_must_be_strictly_between_0_and_1(double fraction)
    {
        var data = new Dataset("x", DataFormat.Text, [new TextExample("a"), new TextExample("b")], null, 0, []);
        Assert.Throws<ArgumentOutOfRangeException>(() => DataSplits.Split(data, fraction, 1));
    }

    [Fact]
    public void Split_leaves_at_least_one_example_on_each_side()
    {
        var data = new Dataset("x", DataFormat.Text, [new TextExample("a"), new TextExample("b"), new TextExample("c")], null, 0, []);
        Assert.Equal((2, 1), (DataSplits.Split(data, 0.01, 1).Train.Count, DataSplits.Split(data, 0.01, 1).Validation!.Count));
        Assert.Equal((1, 2), (DataSplits.Split(data, 0.99, 1).Train.Count, DataSplits.Split(data, 0.99, 1).Validation!.Count));
    }
}
