using static TorchSharp.torch;

namespace PeftSharp.Data;

/// <summary>How a <see cref="DataLoader"/> orders and groups examples.</summary>
public sealed record DataLoaderOptions
{
    /// <summary>Examples per batch (default 8).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Shuffle each epoch (default true): epoch e uses <see cref="SeededShuffle.Permutation"/> with seed Seed + e.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Base seed of the shuffles (default 42).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>
    /// Put examples of similar length together to waste less padding (off by default): the epoch order is cut into
    /// groups of 50 batches, each sorted by length, longest first (transformers' <c>group_by_length</c>).
    /// </summary>
    public bool GroupByLength { get; init; }

    /// <summary>Leave out the last batch when it is smaller than <see cref="BatchSize"/> (default false).</summary>
    public bool DropLast { get; init; }
}

/// <summary>
/// Yields the batches of an epoch lazily: each is collated when the enumeration reaches it. Use
/// <see cref="Epoch"/> and make tensors in the step's scope:
/// <code>
/// foreach (var padded in loader.Epoch(epoch))
/// {
///     using var step = torch.NewDisposeScope();
///     var batch = padded.ToTensors(device);
///     …
/// }
/// </code>
/// </summary>
public sealed class DataLoader
{
    private const int GroupBatches = 50;

    private readonly IReadOnlyList<EncodedExample> _examples;
    private readonly Collator _collator;
    private readonly DataLoaderOptions _options;

    /// <summary>A loader over <paramref name="examples"/> (not copied: do not change the list while loading).</summary>
    public DataLoader(IReadOnlyList<EncodedExample> examples, Collator collator, DataLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(collator);
        _options = options ?? new DataLoaderOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.BatchSize, nameof(options));
        _examples = examples;
        _collator = collator;
    }

    /// <summary>Batches in one epoch.</summary>
    public int BatchCount => _options.DropLast ? _examples.Count / _options.BatchSize : (_examples.Count + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>The example indices of each batch of <paramref name="epoch"/>.</summary>
    public IReadOnlyList<int[]> BatchIndices(int epoch)
    {
        int n = _examples.Count;
        int[] order = _options.Shuffle ? SeededShuffle.Permutation(n, unchecked(_options.Seed + epoch)) : Enumerable.Range(0, n).ToArray();
        if (_options.GroupByLength)
        {
            int group = _options.BatchSize * GroupBatches;
            order = order.Chunk(group).SelectMany(g => g.OrderByDescending(i => _examples[i].Length)).ToArray();
        }
        var batches = order.Chunk(_options.BatchSize).ToList();
        if (_options.DropLast && batches.Count > 0 && batches[^1].Length < _options.BatchSize)
        {
            batches.RemoveAt(batches.Count - 1);
        }
        return batches;
    }

    /// <summary>The host-side batches of <paramref name="epoch"/> (0-based), collated one at a time.</summary>
    public IEnumerable<PaddedBatch> Epoch(int epoch = 0)
    {
        foreach (var indices in BatchIndices(epoch))
        {
            yield return _collator.Collate(indices.Select(i => _examples[i]).ToArray());
        }
    }

    /// <summary>
    /// The batches of <paramref name="epoch"/> as tensors on <paramref name="device"/>. Each batch's tensors are made
    /// when the enumeration reaches it, in the dispose scope current at that moment; dispose each batch (or let an
    /// enclosing scope do it), since a scope opened inside the loop body is opened after the batch was made.
    /// </summary>
    public IEnumerable<Batch> Batches(Device device, int epoch = 0)
    {
        ArgumentNullException.ThrowIfNull(device);
        foreach (var padded in Epoch(epoch))
        {
            yield return padded.ToTensors(device);
        }
    }
}
