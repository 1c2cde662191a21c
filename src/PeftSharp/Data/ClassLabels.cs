namespace PeftSharp.Data;

/// <summary>
/// The classes of a classification file: <see cref="Names"/>[id] is the name of class id. Integer labels keep their
/// values as ids (names "0", "1", … up to the largest); label names are given ids in ordinal sort order, so the ids
/// do not depend on row order (GLUE RTE: entailment = 0, not_entailment = 1, as in GLUE's ClassLabel).
/// </summary>
/// <param name="Names">Class names by id.</param>
/// <param name="Numeric">True when the file's labels were integers rather than names.</param>
public sealed record ClassLabels(IReadOnlyList<string> Names, bool Numeric)
{
    /// <summary>Number of classes (a classifier's <c>num_labels</c>).</summary>
    public int Count => Names.Count;

    /// <summary>The id of a class name, or null when it is not one of <see cref="Names"/>.</summary>
    public int? IdOf(string name)
    {
        for (int i = 0; i < Names.Count; i++)
        {
            if (string.Equals(Names[i], name, StringComparison.Ordinal))
            {
                return i;
            }
        }
        return null;
    }

    /// <summary>Classes 0 … count-1 named by their numbers.</summary>
    public static ClassLabels Numbered(int count) =>
        new(Enumerable.Range(0, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(), true);
}
