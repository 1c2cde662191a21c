namespace PeftSharp.Data;

/// <summary>Reproducible orderings: Fisher–Yates over <c>new System.Random(seed)</c>, the same on every run and machine.</summary>
public static class SeededShuffle
{
    /// <summary>
    /// A permutation of 0 … count-1: starting from the identity, for i = count-1 down to 1, swap i with
    /// j = random.Next(i + 1) (Durstenfeld's Fisher–Yates).
    /// </summary>
    public static int[] Permutation(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        for (int i = 0; i < count; i++)
        {
            order[i] = i;
        }
        var random = new Random(seed);
        for (int i = count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The items in the order of <see cref="Permutation"/>; the input is not changed.</summary>
    public static List<T> Shuffle<T>(IReadOnlyList<T> items, int seed)
    {
        ArgumentNullException.ThrowIfNull(items);
        return Permutation(items.Count, seed).Select(i => items[i]).ToList();
    }
}
