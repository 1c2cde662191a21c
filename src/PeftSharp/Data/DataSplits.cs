namespace PeftSharp.Data;

/// <summary>A training set and an optional validation set that share one label mapping.</summary>
public sealed record TrainValidation(Dataset Train, Dataset? Validation)
{
    /// <summary>The classes of both parts (null for non-classification data).</summary>
    public ClassLabels? Labels => Train.Labels;
}

/// <summary>Train/validation splits: from two files, or a seeded fraction of one file.</summary>
public static class DataSplits
{
    /// <summary>
    /// Reads the training file, then the validation file (if any) with the training file's label mapping, so class ids
    /// agree. Integer labels are kept as they are; the class count is the larger of the two files'. Both files must
    /// have the same format.
    /// </summary>
    /// <exception cref="DataFileException">Either file cannot be read, the formats differ, or a validation label is not a training class.</exception>
    public static TrainValidation FromFiles(string trainPath, string? validationPath, DataReadOptions? options = null)
    {
        options ??= new DataReadOptions();
        var train = DataReader.Read(trainPath, options);
        if (validationPath == null)
        {
            return new TrainValidation(train, null);
        }
        var validationOptions = options with { Format = options.Format ?? train.Format };
        if (train.Labels is { Numeric: false } names && options.LabelNames == null)
        {
            validationOptions = validationOptions with { LabelNames = names.Names };
        }
        var validation = DataReader.Read(validationPath, validationOptions);
        if (train.Labels is { Numeric: true } && validation.Labels is { Numeric: true } && validation.Labels.Count != train.Labels.Count)
        {
            var both = ClassLabels.Numbered(Math.Max(train.Labels.Count, validation.Labels.Count));
            train = train with { Labels = both };
            validation = validation with { Labels = both };
        }
        return new TrainValidation(train, validation);
    }

    /// <summary>
    /// Splits one dataset: a seeded permutation (<see cref="SeededShuffle.Permutation"/>) picks
    /// round(<paramref name="validationFraction"/> × count) rows for validation, at least 1 and leaving at least 1 for
    /// training; both parts keep the file order (the loader shuffles training batches itself).
    /// </summary>
    public static TrainValidation Split(Dataset dataset, double validationFraction, int seed)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (!(validationFraction > 0 && validationFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "the validation fraction must be in (0, 1)");
        }
        int n = dataset.Count;
        if (n < 2)
        {
            throw new PeftException($"{dataset.Source}: {n} example(s) cannot be split into training and validation");
        }
        int take = Math.Clamp((int)Math.Round(validationFraction * n, MidpointRounding.AwayFromZero), 1, n - 1);
        var inValidation = new bool[n];
        foreach (int i in SeededShuffle.Permutation(n, seed).Take(take))
        {
            inValidation[i] = true;
        }
        var train = new List<Example>(n - take);
        var validation = new List<Example>(take);
        for (int i = 0; i < n; i++)
        {
            (inValidation[i] ? validation : train).Add(dataset.Examples[i]);
        }
        return new TrainValidation(
            dataset with { Source = dataset.Source + " [train]", Examples = train },
            dataset with { Source = dataset.Source + " [validation]", Examples = validation, SkippedRows = 0, SkippedReasons = [] });
    }
}
