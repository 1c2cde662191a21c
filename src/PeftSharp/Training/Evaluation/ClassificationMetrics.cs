namespace PeftSharp.Training.Evaluation;

/// <summary>Accuracy and macro-F1 over predicted and true class indices.</summary>
public static class ClassificationMetrics
{
    /// <summary>Fraction of positions where <paramref name="predicted"/> equals <paramref name="expected"/>.</summary>
    public static double Accuracy(IReadOnlyList<long> predicted, IReadOnlyList<long> expected)
    {
        CheckLengths(predicted, expected);
        return (double)predicted.Zip(expected).Count(p => p.First == p.Second) / expected.Count;
    }

    /// <summary>
    /// Unweighted mean of the per-class F1 scores, over the classes that occur in either list (scikit-learn's
    /// <c>f1_score(average="macro")</c>; a class with no true positive scores 0, its <c>zero_division</c> default).
    /// </summary>
    public static double MacroF1(IReadOnlyList<long> predicted, IReadOnlyList<long> expected)
    {
        CheckLengths(predicted, expected);
        var classes = predicted.Concat(expected).Distinct().ToList();
        double total = 0;
        foreach (var c in classes)
        {
            long tp = 0, fp = 0, fn = 0;
            for (var i = 0; i < expected.Count; i++)
            {
                var p = predicted[i] == c;
                var t = expected[i] == c;
                if (p && t)
                {
                    tp++;
                }
                else if (p)
                {
                    fp++;
                }
                else if (t)
                {
                    fn++;
                }
            }
            total += tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
        }
        return total / classes.Count;
    }

    private static void CheckLengths(IReadOnlyList<long> predicted, IReadOnlyList<long> expected)
    {
        if (predicted.Count != expected.Count || expected.Count == 0)
        {
            throw new PeftException($"classification metrics need two equally long, non-empty lists; got {predicted.Count} predictions and {expected.Count} labels");
        }
    }
}
