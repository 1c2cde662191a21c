using PeftSharp.Training;
using static TorchSharp.torch;

namespace PeftSharp.Data;

/// <summary>How a <see cref="DataLoader"/> groups examples into batches.</summary>
public sealed record DataLoaderOptions
{
    /// <summary>Examples per batch (default 8).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>
    /// Shuffle the examples before cutting them into batches (default true), with
    /// <see cref="SeededShuffle.Permutation"/> and <see cref="Seed"/>; the trainer then shuffles the batch order each epoch.
    /// </summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Seed of the example shuffle (default 42).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>
    /// Put examples of similar length together to waste less padding (off by default): the (shuffled) order is cut
    /// into groups of 50 batches, each sorted by length, longest first (transformers' <c>group_by_length</c>).
    /// </summary>
    public bool GroupByLength { get; init; }

    /// <summary>Leave out the last batch when it is smaller than <see cref="BatchSize"/> (default false).</summary>
    public bool DropLast { get; init; }
}

/// <summary>
/// Encoded examples as an indexable set of batches (<see cref="IBatchDataset"/> for the trainer and the evaluator).
/// Which examples form each batch is fixed at construction (seeded); a batch is padded to its longest row and made
/// into tensors only when asked for, in the caller's dispose scope:
/// <code>
/// for (int i = 0; i &lt; loader.Count; i++)
/// {
///     using var step = torch.NewDisposeScope();
///     var batch = loader.Get(i);
///     …
/// }
/// </code>
/// </summary>
public sealed class DataLoader : IBatchDataset
{
    private const int GroupBatches = 50;

    private readonly IReadOnlyList<EncodedExample> _examples;
    private readonly Collator _collator;
    private readonly Device _device;
    private readonly DataLoaderOptions _options;
    private readonly int[][] _batches;

    /// <summary>Batches of <paramref name="examples"/> (not copied: do not change the list) made on <paramref name="device"/>.</summary>
    public DataLoader(IReadOnlyList<EncodedExample> examples, Collator collator, Device device, DataLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(device);
        _options = options ?? new DataLoaderOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.BatchSize, nameof(options));
        _examples = examples;
        _collator = collator;
        _device = device;
        _batches = Group(examples, _options);
    }

    /// <summary>Number of batches.</summary>
    public int Count => _batches.Length;

    /// <summary>The example indices of batch <paramref name="index"/>.</summary>
    public IReadOnlyList<int> BatchIndices(int index) => _batches[index];

    /// <summary>Batch <paramref name="index"/> padded on the host.</summary>
    public PaddedBatch Collate(int index) => _collator.Collate(_batches[index].Select(i => _examples[i]).ToArray());

    /// <summary>Batch <paramref name="index"/> as int64 tensors, created in the caller's current dispose scope.</summary>
    public Batch Get(int index) => Collate(index).ToTensors(_device);

    /// <summary>
    /// The host-side batches in the order of one epoch, collated lazily: a seeded permutation of the batches
    /// (seed <see cref="DataLoaderOptions.Seed"/> + <paramref name="epoch"/>) when shuffling, else storage order. For
    /// loops outside the trainer, which orders batches itself.
    /// </summary>
    public IEnumerable<PaddedBatch> Epoch(int epoch)
    {
        var order = _options.Shuffle ? SeededShuffle.Permutation(Count, unchecked(_options.Seed + epoch)) : Enumerable.Range(0, Count).ToArray();
        foreach (int b in order)
        {
            yield return Collate(b);
        }
    }

    private static int[][] Group(IReadOnlyList<EncodedExample> examples, DataLoaderOptions options)
    {
        int n = examples.Count;
        int[] order = options.Shuffle ? SeededShuffle.Permutation(n, options.Seed) : Enumerable.Range(0, n).ToArray();
        if (options.GroupByLength)
        {
            order = order.Chunk(options.BatchSize * GroupBatches).SelectMany(g => g.OrderByDescending(i => examples[i].Length)).ToArray();
        }
        var batches = order.Chunk(options.BatchSize).ToList();
        if (options.DropLast && batches.Count > 0 && batches[^1].Length < options.BatchSize)
        {
            batches.RemoveAt(batches.Count - 1);
        }
        return batches.ToArray();
    }
}
