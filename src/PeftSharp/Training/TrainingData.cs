namespace PeftSharp.Training;

/// <summary>Where the trainer is in its data: the epoch and the number of batches already read in it.</summary>
public readonly record struct DataPosition(int Epoch, long Index);

/// <summary>
/// The trainer's source of micro-batches, read in a reproducible order: an indexable dataset shuffled per epoch with
/// System.Random seeded from (run seed, epoch), or a stream read in order. Either can be positioned exactly, so a
/// resumed run reads the batches an uninterrupted run would have read.
/// </summary>
public abstract class TrainingData
{
    /// <summary>Position of the next batch.</summary>
    public DataPosition Position { get; protected set; }

    /// <summary>Batches in <paramref name="dataset"/>, in a new seeded permutation every epoch (or in order when <paramref name="shuffle"/> is false).</summary>
    public static TrainingData FromDataset(IBatchDataset dataset, bool shuffle = true) => new DatasetData(dataset, shuffle);

    /// <summary>
    /// Batches of <paramref name="batches"/> in order; at the end it is enumerated again (next epoch). Resuming
    /// re-enumerates and skips, so the enumeration must yield the same sequence every time.
    /// </summary>
    public static TrainingData FromStream(IEnumerable<Batch> batches) => new StreamData(batches);

    /// <summary>Fixes the seed of the shuffling (called by the trainer with its seed).</summary>
    internal abstract void Start(int seed);

    /// <summary>The next batch; advances <see cref="Position"/>.</summary>
    internal abstract Batch Next();

    /// <summary>Moves to a saved position.</summary>
    internal abstract void Seek(DataPosition position);

    /// <summary>The data in storage order for <see cref="ITrainingHooks.Calibrate"/>, independent of the training position.</summary>
    internal abstract IEnumerable<Batch> InStorageOrder();

    private sealed class DatasetData(IBatchDataset dataset, bool shuffle) : TrainingData
    {
        private int _seed;
        private int[] _order = [];
        private int _orderEpoch = -1;

        internal override void Start(int seed)
        {
            if (dataset.Count == 0)
            {
                throw new PeftException("the training dataset has no batches");
            }
            _seed = seed;
            _orderEpoch = -1;
        }

        internal override Batch Next()
        {
            var (epoch, index) = Position;
            if (index >= dataset.Count)
            {
                (epoch, index) = (epoch + 1, 0);
            }
            if (_orderEpoch != epoch)
            {
                _order = Permutation(epoch);
                _orderEpoch = epoch;
            }
            var batch = dataset.Get(_order[index]);
            Position = new DataPosition(epoch, index + 1);
            return batch;
        }

        internal override void Seek(DataPosition position)
        {
            if (position.Index < 0 || position.Index > dataset.Count || position.Epoch < 0)
            {
                throw new PeftException($"data position (epoch {position.Epoch}, batch {position.Index}) is outside the dataset of {dataset.Count} batches");
            }
            Position = position;
        }

        internal override IEnumerable<Batch> InStorageOrder()
        {
            for (var i = 0; i < dataset.Count; i++)
            {
                yield return dataset.Get(i);
            }
        }

        // Fisher–Yates with System.Random(seed): its seeded sequence is fixed across .NET versions and platforms.
        private int[] Permutation(int epoch)
        {
            var order = Enumerable.Range(0, dataset.Count).ToArray();
            if (!shuffle)
            {
                return order;
            }
            var random = new Random(Seeds.Mix(_seed, epoch, 0x5EED));
            for (var i = order.Length - 1; i > 0; i--)
            {
                var j = random.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
            return order;
        }
    }

    private sealed class StreamData(IEnumerable<Batch> batches) : TrainingData
    {
        private IEnumerator<Batch>? _enumerator;

        internal override void Start(int seed)
        {
        }

        internal override Batch Next()
        {
            _enumerator ??= batches.GetEnumerator();
            if (_enumerator.MoveNext())
            {
                Position = Position with { Index = Position.Index + 1 };
                return _enumerator.Current;
            }
            _enumerator.Dispose();
            _enumerator = batches.GetEnumerator();
            if (!_enumerator.MoveNext())
            {
                throw new PeftException("the training data stream yielded no batches");
            }
            Position = new DataPosition(Position.Epoch + 1, 1);
            return _enumerator.Current;
        }

        internal override void Seek(DataPosition position)
        {
            _enumerator?.Dispose();
            _enumerator = batches.GetEnumerator();
            for (long i = 0; i < position.Index; i++)
            {
                if (!_enumerator.MoveNext())
                {
                    throw new PeftException($"cannot resume from batch {position.Index} of the data stream: it ends after {i} batches");
                }
            }
            Position = position;
        }

        internal override IEnumerable<Batch> InStorageOrder() => batches;
    }
}
