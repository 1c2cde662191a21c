using PeftSharp.Data;
using PeftSharp.Tests.Tokenization;
using PeftSharp.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Data;

/// <summary>Dynamic padding, batch tensors, epoch order and length grouping, and leak-free loading.</summary>
public sealed class LoaderTests
{
    private const int Ignore = Batch.IgnoreIndex;

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
        Assert.Equal(ScalarType.Int64, batch.InputIds.dtype);
        Assert.Equal([2L, 5L], batch.InputIds.shape);
        Assert.Equal([101L, 7, 102, 8, 102, 101, 9, 102, 0, 0], batch.InputIds.data<long>().ToArray());
        Assert.Equal([0L, 0, 0, 1, 1, 0, 0, 0, 0, 0], batch.TokenTypeIds!.data<long>().ToArray());
        Assert.Equal([1L, 1, 1, 1, 1, 1, 1, 1, 0, 0], batch.AttentionMask.data<long>().ToArray());
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
    public void Epoch_order_is_seeded_and_covers_every_example_once()
    {
        var examples = Enumerable.Range(0, 23).Select(i => Lm(Enumerable.Repeat(i, 1 + i % 5).ToArray())).ToList();
        var loader = new DataLoader(examples, new Collator(0), new DataLoaderOptions { BatchSize = 4, Seed = 11 });
        Assert.Equal(6, loader.BatchCount);
        var epoch0 = loader.BatchIndices(0);
        Assert.Equal(SeededShuffle.Permutation(23, 11), epoch0.SelectMany(b => b));
        Assert.Equal([4, 4, 4, 4, 4, 3], epoch0.Select(b => b.Length));
        Assert.Equal(SeededShuffle.Permutation(23, 12), loader.BatchIndices(1).SelectMany(b => b));
        Assert.Equal(epoch0, new DataLoader(examples, new Collator(0), new DataLoaderOptions { BatchSize = 4, Seed = 11 }).BatchIndices(0));
        // The batch holds the examples it names: the first id of each row is the example index.
        var first = loader.Epoch(0).First();
        Assert.Equal(epoch0[0].Select(i => (long)i), Enumerable.Range(0, 4).Select(r => first.InputIds[r * first.SequenceLength]));
    }

    [Fact]
    public void Drop_last_and_no_shuffle()
    {
        var examples = Enumerable.Range(0, 10).Select(i => Lm(i)).ToList();
        var loader = new DataLoader(examples, new Collator(0), new DataLoaderOptions { BatchSize = 4, Shuffle = false, DropLast = true });
        Assert.Equal(2, loader.BatchCount);
        Assert.Equal([[0, 1, 2, 3], [4, 5, 6, 7]], loader.BatchIndices(0));
        Assert.Equal(2, loader.Epoch(3).Count());
    }

    [Fact]
    public void Length_grouping_sorts_each_group_of_50_batches_longest_first()
    {
        // 250 examples of lengths 1..10, batch 2: one group of 100 (50 batches), then one of 100, then 50.
        var examples = Enumerable.Range(0, 250).Select(i => Lm(Enumerable.Repeat(1, 1 + (i * 7) % 10).ToArray())).ToList();
        var options = new DataLoaderOptions { BatchSize = 2, Seed = 3, GroupByLength = true };
        var order = new DataLoader(examples, new Collator(0), options).BatchIndices(0).SelectMany(b => b).ToArray();
        var permutation = SeededShuffle.Permutation(250, 3);
        foreach (var (start, size) in new[] { (0, 100), (100, 100), (200, 50) })
        {
            var group = order[start..(start + size)];
            Assert.Equal(permutation[start..(start + size)].Order(), group.Order());
            Assert.Equal(group.Select(i => examples[i].Length).OrderDescending(), group.Select(i => examples[i].Length));
        }
        var plain = new DataLoader(examples, new Collator(0), options with { GroupByLength = false });
        Assert.Equal(permutation, plain.BatchIndices(0).SelectMany(b => b));
    }

    [Fact]
    public void Hundred_batches_leak_no_tensors()
    {
        var examples = Enumerable.Range(0, 400).Select(i => new EncodedExample([1, 2, 3, i % 7 + 4], [Ignore, 2, 3, 4], [0, 0, 1, 1], null)).ToList();
        var loader = new DataLoader(examples, new Collator(0), new DataLoaderOptions { BatchSize = 4 });
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var live = new List<long>();
        foreach (var padded in loader.Epoch(0))
        {
            using var scope = torch.NewDisposeScope();
            var batch = padded.ToTensors(torch.CPU);
            var work = (batch.InputIds * batch.AttentionMask).sum() + batch.Labels!.max() + batch.TokenTypeIds!.sum();
            Assert.True(work.ToInt64() > 0);
            live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.Equal(100, live.Count);
        Assert.Equal(live[1], live[^1]);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Batches_of_tensors_are_freed_by_the_enclosing_scope_or_by_dispose()
    {
        var examples = Enumerable.Range(0, 40).Select(i => Lm(1, 2, i + 3)).ToList();
        var loader = new DataLoader(examples, new Collator(0), new DataLoaderOptions { BatchSize = 4 });
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        foreach (var batch in loader.Batches(torch.CPU))
        {
            using (batch)
            {
                Assert.Equal(3, batch.SequenceLength);
            }
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        using (torch.NewDisposeScope())
        {
            Assert.Equal(10, loader.Batches(torch.CPU, epoch: 1).Count());
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
