using PeftSharp.Data;
using PeftSharp.Tests.Tokenization;
using PeftSharp.Tokenization;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Data;

/// <summary>Dynamic padding, batch tensors, epoch order and length grouping, and leak-free loading.</summary>
public sealed class LoaderTests
{
    private const int Ignore = (int)Losses.IgnoreIndex;

    private static EncodedExample Lm(params int[] ids) => new(ids, ids.Select(i => i < 0 ? Ignore : i).ToArray(), null, null);

    [Fact]
    public void Right_padding_pads_ids_masks_and_ignores_labels()
    {
        var rows = new[]
        {
            new EncodedExample([5, 6, 7], [Ignore, 6, 7], null, null),
            new EncodedExample([8], [8], null, null),
        };
        var padded = new Collator(0).Collate(rows);
        Assert.Equal((2, 3), (padded.BatchSize, padded.SequenceLength));
        Assert.Equal([5, 6, 7, 8, 0, 0], padded.InputIds);
        Assert.Equal([1, 1, 1, 1, 0, 0], padded.AttentionMask);
        Assert.Equal([Ignore, 6, 7, 8, Ignore, Ignore], padded.Labels!);
        Assert.Null(padded.TokenTypeIds);
        Assert.Null(padded.ClassLabels);
    }

    [Fact]
    public void Left_padding_puts_the_pad_first()
    {
        var padded = new Collator(9, PaddingSide.Left).Collate([new EncodedExample([1, 2], [1, 2], null, null), new EncodedExample([3], [3], null, null)]);
        Assert.Equal([1, 2, 9, 3], padded.InputIds);
        Assert.Equal([1, 1, 0, 1], padded.AttentionMask);
        Assert.Equal([1, 2, Ignore, 3], padded.Labels!);
    }

    [Fact]
    public void Classification_batch_has_type_ids_padded_with_0_and_class_labels()
    {
        var rows = new[]
        {
            new EncodedExample([101, 7, 102, 8, 102], null, [0, 0, 0, 1, 1], 1),
            new EncodedExample([101, 9, 102], null, [0, 0, 0], 0),
        };
        using var scope = torch.NewDisposeScope();
        var batch = new Collator(0).Collate(rows).ToTensors(torch.CPU);
        Assert.Null(batch.Labels);
        Assert.Equal(2, batch.Rows);
        Assert.Equal(ScalarType.Int64, batch.InputIds.dtype);
        Assert.Equal([2L, 5L], batch.InputIds.shape);
        Assert.Equal([101L, 7, 102, 8, 102, 101, 9, 102, 0, 0], batch.InputIds.data<long>().ToArray());
        Assert.Equal([0L, 0, 0, 1, 1, 0, 0, 0, 0, 0], batch.TokenTypeIds!.data<long>().ToArray());
        Assert.Equal([1L, 1, 1, 1, 1, 1, 1, 1, 0, 0], batch.AttentionMask!.data<long>().ToArray());
        Assert.Equal([1L, 0], batch.ClassLabels!.data<long>().ToArray());
        Assert.Equal([2L], batch.ClassLabels.shape);
    }

    [Fact]
    public void Mixed_rows_cannot_be_collated()
    {
        var e = Assert.Throws<PeftException>(() => new Collator(0).Collate([Lm(1), new EncodedExample([1], null, null, 0)]));
        Assert.Contains("labels", e.Message);
        Assert.Throws<PeftException>(() => new Collator(0).Collate([]));
    }

    [Fact]
    public void Pad_id_comes_from_the_tokenizer_pad_token_else_eos()
    {
        Assert.Equal(0, Collator.For(TokenizerFixtures.Model("all-MiniLM-L6-v2")).PadTokenId); // [PAD]
        Assert.Equal(2, Collator.For(TokenizerFixtures.Model("stories260K")).PadTokenId);      // no pad token: </s>
    }

    [Fact]
    public void Batches_are_seeded_groups_covering_every_example_once()
    {
        var examples = Enumerable.Range(0, 23).Select(i => Lm(Enumerable.Repeat(i, 1 + i % 5).ToArray())).ToList();
        var options = new DataLoaderOptions { BatchSize = 4, Seed = 11 };
        var loader = new DataLoader(examples, new Collator(0), torch.CPU, options);
        Assert.Equal(6, loader.Count);
        var groups = Enumerable.Range(0, loader.Count).Select(loader.BatchIndices).ToList();
        Assert.Equal(SeededShuffle.Permutation(23, 11), groups.SelectMany(b => b));
        Assert.Equal([4, 4, 4, 4, 4, 3], groups.Select(b => b.Count));
        var again = new DataLoader(examples, new Collator(0), torch.CPU, options);
        Assert.Equal(groups, Enumerable.Range(0, again.Count).Select(again.BatchIndices));
        var other = new DataLoader(examples, new Collator(0), torch.CPU, options with { Seed = 12 });
        Assert.NotEqual(groups, Enumerable.Range(0, other.Count).Select(other.BatchIndices));
        // A batch holds the examples it names: the first id of each row is the example index.
        var first = loader.Collate(0);
        Assert.Equal(groups[0].Select(i => (long)i), Enumerable.Range(0, 4).Select(r => first.InputIds[r * first.SequenceLength]));
        // An epoch outside the trainer visits every batch once, in a seeded order.
        var epoch = loader.Epoch(1).Select(b => b.InputIds[0]).ToList();
        Assert.Equal(SeededShuffle.Permutation(6, 12).Select(b => (long)groups[b][0]), epoch);
    }

    [Fact]
    public void Drop_last_and_no_shuffle()
    {
        var examples = Enumerable.Range(0, 10).Select(i => Lm(i)).ToList();
        var loader = new DataLoader(examples, new Collator(0), torch.CPU, new DataLoaderOptions { BatchSize = 4, Shuffle = false, DropLast = true });
        Assert.Equal(2, loader.Count);
        Assert.Equal([0, 1, 2, 3], loader.BatchIndices(0));
        Assert.Equal([4, 5, 6, 7], loader.BatchIndices(1));
        Assert.Equal([0L, 4L], loader.Epoch(3).Select(b => b.InputIds[0]));
    }

    [Fact]
    public void Length_grouping_sorts_each_group_of_50_batches_longest_first()
    {
        // 250 examples of lengths 1..10, batch 2: one group of 100 (50 batches), then one of 100, then 50.
        var examples = Enumerable.Range(0, 250).Select(i => Lm(Enumerable.Repeat(1, 1 + (i * 7) % 10).ToArray())).ToList();
        var options = new DataLoaderOptions { BatchSize = 2, Seed = 3, GroupByLength = true };
        var loader = new DataLoader(examples, new Collator(0), torch.CPU, options);
        var order = Enumerable.Range(0, loader.Count).SelectMany(loader.BatchIndices).ToArray();
        var permutation = SeededShuffle.Permutation(250, 3);
        foreach (var (start, size) in new[] { (0, 100), (100, 100), (200, 50) })
        {
            var group = order[start..(start + size)];
            Assert.Equal(permutation[start..(start + size)].Order(), group.Order());
            Assert.Equal(group.Select(i => examples[i].Length).OrderDescending(), group.Select(i => examples[i].Length));
        }
        var plain = new DataLoader(examples, new Collator(0), torch.CPU, options with { GroupByLength = false });
        Assert.Equal(permutation, Enumerable.Range(0, plain.Count).SelectMany(plain.BatchIndices));
    }

    [Fact]
    public void Hundred_batches_leak_no_tensors()
    {
        var examples = Enumerable.Range(0, 400).Select(i => new EncodedExample([1, 2, 3, i % 7 + 4], [Ignore, 2, 3, 4], [0, 0, 1, 1], null)).ToList();
        IBatchDataset loader = new DataLoader(examples, new Collator(0), torch.CPU, new DataLoaderOptions { BatchSize = 4 });
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var live = new List<long>();
        for (int i = 0; i < loader.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var batch = loader.Get(i);
            var work = (batch.InputIds * batch.AttentionMask!).sum() + batch.Labels!.max() + batch.TokenTypeIds!.sum();
            Assert.True(work.ToInt64() > 0);
            live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.Equal(100, live.Count);
        Assert.Equal(live[1], live[^1]);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
